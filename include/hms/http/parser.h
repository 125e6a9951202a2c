// Stateless, in-place HTTP/1.1 head parser for requests and responses, strict
// where RFC 9112 matters for a proxy's safety (DESIGN §6).
//
// The parser never copies: names, values, method and target are views into the
// caller's buffer, valid while that buffer is. It keeps no state between calls:
// the caller re-parses from the start of the head when more bytes arrive
// (heads are small; re-parsing is cheaper than carrying state). Any thread may
// call it; it never allocates.
//
// Return shape (STYLE §3): > 0 is the size of the complete head in bytes
// (through the blank line); kPartial means "need more bytes"; kError means the
// head is invalid and `out->error` says which rule refused it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hms::http {

inline constexpr int kPartial = -2;
inline constexpr int kError = -1;
inline constexpr int kMaxHeaders = 100;

enum class ParseError : uint8_t {
  kNone = 0,
  kBadRequestLine,       // 400: malformed method / target / spacing
  kBadVersion,           // 400 (505 is not used: we answer 400 to any non-HTTP/1.x)
  kBadStatusLine,        // 502 (responses only)
  kInvalidHeaderName,    // 400: empty name or a non-token character
  kSpaceBeforeColon,     // 400: RFC 9112 §5.1
  kObsFold,              // 400: RFC 9112 §5.2 (line starting with SP/HTAB)
  kBareCr,               // 400: CR not followed by LF
  kBareLf,               // 400: LF without CR (RFC 9112 §2.2 allows rejecting)
  kInvalidHeaderValue,   // 400: a CTL other than HTAB in a value
  kTooManyHeaders,       // 431: more than kMaxHeaders fields
  kHeadersTooLarge,      // 431: head longer than max_header_bytes
  kBothLengthAndChunked, // 400: Content-Length and Transfer-Encoding together
  kDuplicateContentLength,  // 400: several differing Content-Length values
  kBadContentLength,     // 400: not 1*DIGIT, or overflow
  kTransferEncodingNotChunked,  // 400: TE present but the last coding is not chunked
  kMissingHost,          // 400: HTTP/1.1 request without Host
  kDuplicateHost,        // 400: more than one Host
  kBadHost,              // 400: Host value with characters outside RFC 3986 reg-name/IP/port
  kBadChunkSize,         // 400 (request) / 502 (response): not hex, or over 2^63
  kBadChunkFraming,      // 400 / 502: missing CRLF after chunk data, bad extension, bad trailer
};

// Stable lowercase token for x-hms-reason and logs, e.g. "space_before_colon".
std::string_view ParseErrorReason(ParseError e) noexcept;
// HTTP status a gateway answers for a request that failed with `e` (400 or 431).
int ParseErrorStatus(ParseError e) noexcept;

enum class Method : uint8_t { kGet, kHead, kPost, kPut, kDelete, kPatch, kOptions, kTrace, kConnect, kOther };

// Idempotent per RFC 9110 §9.2.2.
bool IsIdempotent(Method m) noexcept;

struct Header {
  std::string_view name;   // as sent; compare with EqualsIgnoreCase
  std::string_view value;  // leading/trailing SP/HTAB trimmed
};

enum class BodyKind : uint8_t {
  kNone,           // no body (requests without CL/TE; responses to HEAD, 1xx, 204, 304)
  kContentLength,  // exactly content_length bytes
  kChunked,        // chunked framing; see ChunkedDecoder
  kUntilClose,     // responses only: delimited by the upstream closing
};

struct RequestHead {
  std::string_view method_text;
  Method method = Method::kOther;
  std::string_view target;  // request-target as sent (origin-form, absolute-form, '*')
  std::string_view path;    // target without the query; for absolute-form, the path part
  std::string_view query;   // after '?', without it; empty when none
  uint8_t version_minor = 1;  // HTTP/1.<minor>: 0 or 1
  uint16_t header_count = 0;
  Header headers[kMaxHeaders];
  // Framing and semantics derived from the fields above.
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;        // HTTP/1.1 default, "Connection: close" / 1.0 rules applied
  bool expect_continue = false;  // "Expect: 100-continue"
  std::string_view host;         // the Host field value (empty for HTTP/1.0 without Host)
  ParseError error = ParseError::kNone;
};

struct ResponseHead {
  uint8_t version_minor = 1;
  uint16_t status = 0;
  std::string_view reason;
  uint16_t header_count = 0;
  Header headers[kMaxHeaders];
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;  // false when the upstream said "Connection: close" or is 1.0 without keep-alive
  ParseError error = ParseError::kNone;
};

// Parses a request head from buf[0, len). max_header_bytes bounds the head:
// when no complete head lies within the first max_header_bytes bytes the result
// is kError with kHeadersTooLarge.
//
// Decisions where RFC 9112 leaves a choice (DESIGN §6 asks for strictness):
// - Empty lines (CRLF only) before the request-line are skipped and counted in
//   the returned length.
// - The request-target must be VCHARs only; a '#' (fragment) is refused.
//   absolute-form sets `host` to the target's authority (RFC 9112 §3.2.2);
//   CONNECT needs authority-form host:port; '*' only with OPTIONS.
// - Content-Length: identical values (repeated fields or a list) fold into
//   `content_length`; a forwarder should write one Content-Length from it
//   rather than pass the raw fields on. "Content-Length: 0" gives
//   kContentLength with 0. Values above 2^63-1 are kBadContentLength.
// - Transfer-Encoding in a request must be exactly "chunked" (one coding,
//   once); in any HTTP/1.0 message it is refused (RFC 9112 §6.1: faulty
//   framing).
// - Expect: 100-continue is ignored from HTTP/1.0 clients (RFC 9110 §10.1.1).
int ParseRequest(const char* buf, size_t len, size_t max_header_bytes, RequestHead* out) noexcept;

// Parses a response head. `request_method` decides body rules (HEAD → no body),
// as do 1xx/204/304 statuses. Interim 1xx responses parse as complete heads with
// BodyKind::kNone; the caller skips them.
//
// Other codings may precede chunked in a response ("gzip, chunked"); a
// Transfer-Encoding not ending in chunked is refused rather than read until
// close. A 2xx answer to CONNECT has no body (the connection becomes a
// tunnel). kUntilClose sets keep_alive = false. A missing SP before an empty
// reason ("HTTP/1.1 204\r\n") is accepted.
int ParseResponse(const char* buf, size_t len, size_t max_header_bytes, Method request_method,
                  ResponseHead* out) noexcept;

// Validates chunked framing without copying (RFC 9112 §7.1). The proxy forwards
// chunked bodies byte for byte; the decoder finds where the body ends and which
// bytes are chunk data (for de-chunking to an HTTP/1.0 client). Feed it the
// bytes after the head in order, step by step.
//
// Each step takes bytes of one kind: either framing only (size line, CRLFs,
// trailers; data_len == 0) or chunk data only (data_offset == 0, data_len ==
// consumed). With n > 0 a step always consumes something until done(); the
// step that completes the body stops right after its final CRLF, so bytes of
// a pipelined next message are never taken. Chunk sizes up to 2^63 are
// accepted; extensions and trailer fields are validated, not reported.
class ChunkedDecoder {
 public:
  struct Step {
    size_t consumed = 0;     // bytes of input used by this step (framing and data)
    size_t data_offset = 0;  // chunk data within the consumed range, when data_len > 0
    size_t data_len = 0;
  };
  // One step over p[0, n). consumed == 0 means more input is needed (n was too
  // small to make progress). Returns false on a framing error (see error()).
  bool Next(const char* p, size_t n, Step* step) noexcept;
  bool done() const noexcept { return state_ == State::kDone; }
  ParseError error() const noexcept { return error_; }
  uint64_t data_bytes() const noexcept { return data_bytes_; }
  void Reset() noexcept { *this = ChunkedDecoder(); }

 private:
  enum class State : uint8_t { kSize, kExt, kSizeLf, kData, kDataCr, kDataLf, kTrailer, kTrailerLf, kDone, kError };
  // Position inside a chunk-ext (RFC 9112 §7.1.1) while state_ == kExt.
  enum class Ext : uint8_t { kBeforeSemi, kBeforeName, kName, kAfterName, kBeforeValue, kToken, kQuoted, kQuotedEscape, kAfterQuoted };
  // Position inside a trailer field line while state_ == kTrailer.
  enum class Trailer : uint8_t { kName, kValue };
  // A size line (with extensions) or a trailer line longer than this, or a
  // trailer section longer than kMaxTrailerBytes, is refused: each line is
  // held by no buffer of ours, but an endless one would keep the exchange
  // alive without progress.
  static constexpr uint32_t kMaxLineBytes = 4096;
  static constexpr uint32_t kMaxTrailerBytes = 16384;

  bool Fail(ParseError e) noexcept;
  bool StepSize(char c) noexcept;
  bool StepExt(char c) noexcept;
  bool EndExtValue(char c) noexcept;
  bool StepTrailer(char c) noexcept;

  State state_ = State::kSize;
  Ext ext_ = Ext::kBeforeSemi;
  Trailer trailer_ = Trailer::kName;
  ParseError error_ = ParseError::kNone;
  uint64_t remaining_ = 0;   // chunk size being read, then data bytes left in the chunk
  uint64_t data_bytes_ = 0;  // total data bytes so far
  uint32_t line_bytes_ = 0;  // bytes in the current size/trailer line (bounded)
  uint32_t trailer_bytes_ = 0;  // bytes of the trailer section so far (bounded)
  bool size_digits_ = false;
  bool trailer_empty_line_ = true;
};

// Case-insensitive ASCII comparison for field names and tokens.
bool EqualsIgnoreCase(std::string_view a, std::string_view b) noexcept;

// The parser's own rules, for heads that arrive in other framing (HTTP/2's
// fields, include/hms/h2/request_head.h), so both versions decide alike.
// The Method of a method token (kOther for any token not listed).
Method MethodFromText(std::string_view method) noexcept;
// A Host value: host [":" port], the host an IP-literal or a reg-name with
// pct-encoding (RFC 3986 §3.2.2), no userinfo.
bool IsValidHost(std::string_view host) noexcept;
// One Content-Length value (1*DIGIT, or a list of identical values, RFC 9110
// §8.6) folded into *length; *seen says a previous value was folded there
// already, which this one must equal. kNone, kBadContentLength or
// kDuplicateContentLength.
ParseError FoldContentLength(std::string_view value, bool* seen, uint64_t* length) noexcept;
// The value of the first field named `name` among `count` parsed fields;
// empty when there is none.
std::string_view FindHeader(const Header* headers, size_t count, std::string_view name) noexcept;

// `token` is an element of the list field value `value` (RFC 9110 §5.6.1:
// comma-separated, OWS around elements), compared case-insensitively:
// "upgrade" in "keep-alive, Upgrade".
bool ListHasToken(std::string_view value, std::string_view token) noexcept;

// Hop-by-hop fields (RFC 9110 §7.6.1): Connection, Keep-Alive, Proxy-Connection,
// TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate/Authorization,
// plus any field named in a Connection header of `connection_value`.
bool IsHopByHop(std::string_view name, std::string_view connection_value) noexcept;

}  // namespace hms::http
