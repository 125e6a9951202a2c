// An HTTP/2 upstream's answer head as the exchange reads any answer: the
// HEADERS' status and fields become an http::ResponseHead directly, with no
// HTTP/1.1 text in between (docs/http2.md "HTTP/2 to upstreams"). A pure
// function: the fields are copied into memory the caller owns (nghttp2's
// buffers die when its callback returns), and the head's body says how the
// stream's DATA reaches the exchange: as they are (content-length, or no body
// at all), or framed chunked (no length: the trailers go in the last chunk).
//
// Called by the core that owns the stream (h2_up.cc); no state.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hms/http/parser.h"

namespace hms::proxy {

enum class H2HeadResult : uint8_t {
  kOk,
  kTooManyFields,  // more than http::kMaxHeaders fields
  kTooLarge,       // the fields' bytes do not fit the room given
  kBadLength,      // a content-length that is not a number, or two that differ
  kBadStatus,      // not a final status of 200-599 (an HTTP/1.1 status line's range)
};

// Fills `out` from an answer's HEADERS (`end_stream`: no DATA follows) to a
// request with `method`, copying names and values into buf[0, room). The
// framing the exchange relays by (RFC 9110 §6.4.1, §8.6):
// - an answer to HEAD, or a 304, has no body; its content-length is the one
//   a GET would get and passes as sent;
// - a 204 has no body and no framing field;
// - HEADERS that end the stream: an empty body of content-length 0;
// - a content-length: that many DATA bytes, relayed as they are;
// - none: DATA framed chunked (kChunked), the trailers in the last chunk.
// transfer-encoding never comes from HTTP/2 (RFC 9113 §8.2.2); any is dropped.
H2HeadResult H2ResponseHead(uint16_t status, const http::Header* fields, uint16_t count,
                            bool end_stream, http::Method method, char* buf, size_t room,
                            http::ResponseHead* out) noexcept;

}  // namespace hms::proxy
