// H2ResponseHead (h2_answer.h).
#include "src/proxy/h2_answer.h"

#include <cstring>
#include <string_view>

#include "hms/http/field_names.h"

namespace hms::proxy {

namespace {

// A content-length value: digits only, at most 2^63-1 (as the HTTP/1.1 parser).
bool LengthOf(std::string_view v, uint64_t* n) noexcept {
  if (v.empty() || v.size() > 18) return false;  // 18 digits stay below 2^63
  uint64_t x = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + static_cast<uint64_t>(c - '0');
  }
  *n = x;
  return true;
}

}  // namespace

H2HeadResult H2ResponseHead(uint16_t status, const http::Header* fields, uint16_t count,
                            bool end_stream, http::Method method, char* buf, size_t room,
                            http::ResponseHead* out) noexcept {
  // nghttp2 holds :status to three digits only; an HTTP/1.1 answer's status
  // line is held to 100-599 (http::ParseResponse), and 1xx are interim.
  if (status < 200 || status > 599) return H2HeadResult::kBadStatus;
  if (count > http::kMaxHeaders) return H2HeadResult::kTooManyFields;
  const bool bodiless = method == http::Method::kHead || status == 304;
  out->version_minor = 1;
  out->status = status;
  out->reason = {};
  out->keep_alive = true;
  out->error = http::ParseError::kNone;
  out->content_length = 0;
  bool has_length = false;
  uint64_t length = 0;
  uint16_t kept = 0;
  size_t used = 0;
  for (uint16_t i = 0; i < count; ++i) {
    const http::Header& f = fields[i];
    if (http::EqualsIgnoreCase(f.name, "transfer-encoding")) continue;
    if (http::EqualsIgnoreCase(f.name, "content-length")) {
      uint64_t n = 0;
      if (!LengthOf(f.value, &n) || (has_length && n != length)) return H2HeadResult::kBadLength;
      has_length = true;
      length = n;
      // Written once from the body's length (RewriteResponseHead); kept as
      // sent only where there is no body to frame.
      if (!bodiless) continue;
    }
    if (room - used < f.name.size() + f.value.size()) return H2HeadResult::kTooLarge;
    char* name = buf + used;
    std::memcpy(name, f.name.data(), f.name.size());
    used += f.name.size();
    char* value = buf + used;
    std::memcpy(value, f.value.data(), f.value.size());
    used += f.value.size();
    out->headers[kept++] = http::Header{std::string_view(name, f.name.size()),
                                        std::string_view(value, f.value.size())};
  }
  out->header_count = kept;
  if (bodiless || status == 204) {
    out->body = http::BodyKind::kNone;
  } else if (end_stream) {
    out->body = http::BodyKind::kContentLength;  // content-length: 0
  } else if (has_length) {
    out->body = http::BodyKind::kContentLength;
    out->content_length = length;
  } else {
    out->body = http::BodyKind::kChunked;
  }
  return H2HeadResult::kOk;
}

}  // namespace hms::proxy
