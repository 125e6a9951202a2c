// Request heads of HTTP/2 streams, checked as strictly as the HTTP/1.1 parser
// checks its heads (RFC 9113 §8.1-§8.3 and the gateway's own rules), and
// delivered as the http::RequestHead the engine's router already reads: the
// method, the canonical path (http::CanonicalizeTarget, the same rules as
// every HTTP/1.1 target), the authority as `host`, the fields.
//
// Extended CONNECT (RFC 8441; the session offers SETTINGS_ENABLE_CONNECT_
// PROTOCOL): `:method CONNECT` with `:protocol websocket` is delivered as the
// HTTP/1.1 upgrade it stands for, a GET of :path with `upgrade: websocket`
// and `connection: upgrade` (fields no client can send over h2: they are
// connection-specific), no body (the stream's DATA are the tunnel's bytes),
// and one field slot left for the Sec-WebSocket-Key the gateway makes.
//
// HeadBuilder takes the fields of one header block in the order HPACK decoded
// them and judges each as it comes; FinishRequest checks what only the whole
// block tells and fills the head. Names and values are views the caller keeps
// alive until the head has been used (server_session.cc holds nghttp2's
// reference-counted buffers meanwhile). No allocation, no I/O; one builder
// per session, one block at a time (RFC 9113 §4.3: header blocks are never
// interleaved); one owner thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hms/http/parser.h"
#include "hms/http/path.h"
#include "hms/policy/fault.h"

namespace hms::h2 {

// Which rule refused a header block. Each has a stable token (x-hms-reason)
// and a status; the tokens HTTP/1.1 has a rule of the same meaning for are
// spelled as its ParseErrorReason.
enum class HeadError : uint8_t {
  kNone = 0,
  kInvalidFieldName,       // empty, or a byte outside tchar (§8.2.1; RFC 9110 §5.1)
  kUppercaseFieldName,     // A-Z in a name: HTTP/2 names are lowercase (§8.2.1)
  kInvalidFieldValue,      // NUL, CR, LF or another CTL than HTAB (§8.2.1; RFC 9110 §5.5)
  kFieldValueWhitespace,   // a value starting or ending with SP/HTAB (§8.2.1)
  kConnectionSpecific,     // connection, keep-alive, proxy-connection, ... (§8.2.2)
  kBadTe,                  // te with another value than "trailers" (§8.2.2)
  kUnknownPseudo,          // a pseudo-header a request does not carry (§8.3)
  kPseudoAfterField,       // a pseudo-header after a regular field (§8.3)
  kDuplicatePseudo,        // a pseudo-header twice (§8.3.1)
  kMissingPseudo,          // no :method; no :scheme or :path outside CONNECT (§8.3.1)
  kPseudoInTrailers,       // a pseudo-header in trailers (§8.1)
  kBadMethod,              // :method not a token
  kBadScheme,              // :scheme other than http or https
  kBadAuthority,           // :authority or host not host[:port], or with userinfo (§8.3.1)
  kMissingAuthority,       // neither :authority nor host: nothing to route on
  kDuplicateHost,          // two host fields
  kAuthorityHostMismatch,  // host and :authority name different hosts (§8.3.1)
  kBadTarget,              // :path not origin-form ('*' only for OPTIONS), not VCHAR, or '#'
  kBadConnect,             // CONNECT with :scheme or :path, or without :authority (§8.5)
  kBadContentLength,       // content-length not digits (RFC 9110 §8.6)
  kDuplicateContentLength, // content-length values that differ
  kTooManyFields,          // more fields than http::kMaxHeaders (431)
  kHeaderListTooLarge,     // over max_header_list_bytes (431)
  kBadPath,                // the canonical-path rules (http/path.h): path_error() says which
  kBadProtocol,            // :protocol other than websocket, or without CONNECT (RFC 8441 §4)
};

// The x-hms-reason token, e.g. "uppercase_header_name".
std::string_view HeadErrorReason(HeadError e) noexcept;
// 431 for the size limits, 400 for the rest.
uint16_t HeadErrorStatus(HeadError e) noexcept;

class HeadBuilder {
 public:
  // Starts a block: a request's head, or (trailers) the trailer section that
  // ends a request. `max_list_bytes` bounds name + value + 32 over the block.
  void Reset(bool trailers, uint32_t max_list_bytes) noexcept;

  // One decoded field. False once the block is refused (error() says why):
  // later fields are only counted against the list size, never kept.
  bool Add(std::string_view name, std::string_view value) noexcept;

  // The request's head, from a complete block. `end_stream`: no body follows
  // (the HEADERS frame ended the stream). `scratch` receives the canonical
  // path when it needs rewriting and the joined cookie crumbs; it needs
  // ScratchNeeded() bytes. False with error() (and path_error()) when refused.
  bool FinishRequest(bool end_stream, http::PathOptions paths, char* scratch, size_t cap,
                     http::RequestHead* out) noexcept;
  size_t ScratchNeeded() const noexcept;

  // After a trailers block: its fields (pseudo-headers refused).
  const http::Header* fields() const noexcept { return fields_; }
  uint16_t field_count() const noexcept { return count_; }

  // The block was an extended CONNECT (RFC 8441): the stream is a tunnel.
  bool extended_connect() const noexcept { return has_protocol_; }
  // :method as sent (empty when missing), for refusals: HEAD is answered without a body.
  std::string_view method() const noexcept { return method_; }
  HeadError error() const noexcept { return error_; }
  http::PathError path_error() const noexcept { return path_error_; }
  // The decoded size of the block so far (name + value + 32 per field).
  uint64_t list_bytes() const noexcept { return list_bytes_; }

  // What the gateway answers for the refusal: the fault table's row
  // (malformed_request refined with the status and token of error(), or
  // bad_path), with a detail naming the rule written into `detail`.
  policy::Answer Refusal(char* detail, size_t cap) const noexcept;

 private:
  bool Fail(HeadError e) noexcept;
  bool AddPseudo(std::string_view name, std::string_view value) noexcept;
  HeadError CheckPseudo() const noexcept;
  size_t JoinCookies(char* scratch) noexcept;

  http::Header fields_[http::kMaxHeaders];
  uint16_t count_ = 0;
  uint16_t cookies_ = 0;
  uint32_t cookie_bytes_ = 0;
  uint64_t list_bytes_ = 0;
  uint32_t max_list_bytes_ = 0;
  bool trailers_ = false;
  bool regular_seen_ = false;
  HeadError error_ = HeadError::kNone;
  http::PathError path_error_ = http::PathError::kNone;
  std::string_view method_, scheme_, authority_, path_, host_, protocol_;
  bool has_method_ = false, has_scheme_ = false, has_authority_ = false, has_path_ = false;
  bool has_protocol_ = false;
  bool has_host_ = false;
  bool has_length_ = false;
  uint64_t length_ = 0;
  bool expect_continue_ = false;
};

}  // namespace hms::h2
