#include "hms/h2/request_head.h"

#include <cstdio>
#include <cstring>

#include "hms/common/check.h"
#include "hms/http/char_class.h"

namespace hms::h2 {
namespace {

// RFC 9113 §8.2.2: fields that only mean something for one connection, which
// HTTP/2 carries none of (te aside, judged apart).
constexpr std::string_view kConnectionSpecific[] = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
};

// §8.2.1: a name is lowercase tchar. Uppercase gets its own rule, because it
// is what a client that upper-cases HTTP/1.1 names sends.
HeadError JudgeName(std::string_view name) noexcept {
  if (name.empty()) return HeadError::kInvalidFieldName;
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') return HeadError::kUppercaseFieldName;
    if (!http::IsTokenChar(c)) return HeadError::kInvalidFieldName;
  }
  return HeadError::kNone;
}

// §8.2.1 and RFC 9110 §5.5: no NUL, CR, LF or other CTL than HTAB, and no
// whitespace at either end (HPACK carries values unframed, so a value with
// CR LF would be a second field line to an HTTP/1.1 upstream).
HeadError JudgeValue(std::string_view value) noexcept {
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return HeadError::kInvalidFieldValue;
  }
  if (!value.empty() &&
      (http::internal::IsWs(value.front()) || http::internal::IsWs(value.back()))) {
    return HeadError::kFieldValueWhitespace;
  }
  return HeadError::kNone;
}

// :path as an HTTP/1.1 request-target would be checked by the parser: VCHAR
// only, no fragment; origin-form, or '*' (OPTIONS alone, checked later).
bool TargetBytesValid(std::string_view path) noexcept {
  if (path.empty()) return false;
  for (char c : path) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '#') return false;
  }
  return path.front() == '/' || path == "*";
}

bool IsScheme(std::string_view s) noexcept {
  return http::EqualsIgnoreCase(s, "http") || http::EqualsIgnoreCase(s, "https");
}

}  // namespace

std::string_view HeadErrorReason(HeadError e) noexcept {
  switch (e) {
    case HeadError::kNone:
      return "none";
    case HeadError::kInvalidFieldName:
      return "invalid_header_name";
    case HeadError::kUppercaseFieldName:
      return "uppercase_header_name";
    case HeadError::kInvalidFieldValue:
      return "invalid_header_value";
    case HeadError::kFieldValueWhitespace:
      return "header_value_whitespace";
    case HeadError::kConnectionSpecific:
      return "connection_specific_header";
    case HeadError::kBadTe:
      return "bad_te";
    case HeadError::kUnknownPseudo:
      return "unknown_pseudo_header";
    case HeadError::kPseudoAfterField:
      return "pseudo_header_after_field";
    case HeadError::kDuplicatePseudo:
      return "duplicate_pseudo_header";
    case HeadError::kMissingPseudo:
      return "missing_pseudo_header";
    case HeadError::kPseudoInTrailers:
      return "pseudo_header_in_trailers";
    case HeadError::kBadMethod:
      return "bad_method";
    case HeadError::kBadScheme:
      return "bad_scheme";
    case HeadError::kBadAuthority:
      return "bad_host";
    case HeadError::kMissingAuthority:
      return "missing_host";
    case HeadError::kDuplicateHost:
      return "duplicate_host";
    case HeadError::kAuthorityHostMismatch:
      return "authority_host_mismatch";
    case HeadError::kBadTarget:
      return "bad_request_target";
    case HeadError::kBadConnect:
      return "bad_connect";
    case HeadError::kBadContentLength:
      return "bad_content_length";
    case HeadError::kDuplicateContentLength:
      return "duplicate_content_length";
    case HeadError::kTooManyFields:
      return "too_many_headers";
    case HeadError::kHeaderListTooLarge:
      return "headers_too_large";
    case HeadError::kBadPath:
      return "bad_path";
    case HeadError::kBadProtocol:
      return "bad_protocol";
  }
  return "unknown";
}

uint16_t HeadErrorStatus(HeadError e) noexcept {
  return (e == HeadError::kTooManyFields || e == HeadError::kHeaderListTooLarge) ? 431 : 400;
}

void HeadBuilder::Reset(bool trailers, uint32_t max_list_bytes) noexcept {
  count_ = cookies_ = 0;
  cookie_bytes_ = 0;
  list_bytes_ = 0;
  max_list_bytes_ = max_list_bytes;
  trailers_ = trailers;
  regular_seen_ = false;
  error_ = HeadError::kNone;
  path_error_ = http::PathError::kNone;
  method_ = scheme_ = authority_ = path_ = host_ = protocol_ = {};
  has_method_ = has_scheme_ = has_authority_ = has_path_ = has_host_ = has_protocol_ = false;
  has_length_ = false;
  length_ = 0;
  expect_continue_ = false;
}

bool HeadBuilder::Fail(HeadError e) noexcept {
  if (error_ == HeadError::kNone) error_ = e;  // the first rule broken is the one named
  return false;
}

bool HeadBuilder::Add(std::string_view name, std::string_view value) noexcept {
  list_bytes_ += name.size() + value.size() + 32;
  if (list_bytes_ > max_list_bytes_) Fail(HeadError::kHeaderListTooLarge);
  if (error_ != HeadError::kNone) return false;
  if (!name.empty() && name.front() == ':') return AddPseudo(name, value);
  regular_seen_ = true;
  if (HeadError e = JudgeName(name); e != HeadError::kNone) return Fail(e);
  if (HeadError e = JudgeValue(value); e != HeadError::kNone) return Fail(e);
  for (std::string_view c : kConnectionSpecific) {
    if (name == c) return Fail(HeadError::kConnectionSpecific);
  }
  if (name == "te" && !http::EqualsIgnoreCase(value, "trailers")) return Fail(HeadError::kBadTe);
  if (count_ == http::kMaxHeaders) return Fail(HeadError::kTooManyFields);
  if (!trailers_) {
    if (name == "content-length") {
      http::ParseError pe = http::FoldContentLength(value, &has_length_, &length_);
      if (pe == http::ParseError::kDuplicateContentLength)
        return Fail(HeadError::kDuplicateContentLength);
      if (pe != http::ParseError::kNone) return Fail(HeadError::kBadContentLength);
    } else if (name == "host") {
      if (has_host_) return Fail(HeadError::kDuplicateHost);
      has_host_ = true;
      host_ = value;
    } else if (name == "cookie") {
      ++cookies_;
      cookie_bytes_ += static_cast<uint32_t>(value.size());
    } else if (name == "expect") {
      expect_continue_ = http::EqualsIgnoreCase(value, "100-continue");
    }
  }
  fields_[count_++] = http::Header{name, value};
  return true;
}

bool HeadBuilder::AddPseudo(std::string_view name, std::string_view value) noexcept {
  if (trailers_) return Fail(HeadError::kPseudoInTrailers);
  if (regular_seen_) return Fail(HeadError::kPseudoAfterField);
  std::string_view* slot = nullptr;
  bool* seen = nullptr;
  if (name == ":method") {
    slot = &method_, seen = &has_method_;
  } else if (name == ":scheme") {
    slot = &scheme_, seen = &has_scheme_;
  } else if (name == ":authority") {
    slot = &authority_, seen = &has_authority_;
  } else if (name == ":path") {
    slot = &path_, seen = &has_path_;
  } else if (name == ":protocol") {
    slot = &protocol_, seen = &has_protocol_;  // extended CONNECT (RFC 8441 §4)
  } else {
    return Fail(HeadError::kUnknownPseudo);  // :status, or one no RFC defines
  }
  if (*seen) return Fail(HeadError::kDuplicatePseudo);
  *seen = true;
  *slot = value;
  return true;
}

// The rules on the pseudo-headers as a whole (§8.3.1, §8.5), and on what
// routing needs (an authority).
HeadError HeadBuilder::CheckPseudo() const noexcept {
  if (!has_method_) return HeadError::kMissingPseudo;
  if (!http::IsToken(method_)) return HeadError::kBadMethod;
  const bool connect = method_ == "CONNECT";
  if (has_protocol_) {
    // RFC 8441 §4: :protocol only on CONNECT, which then carries :scheme and
    // :path like any request; WebSocket (RFC 8441 §5) is the one protocol
    // the gateway carries.
    if (!connect || !http::EqualsIgnoreCase(protocol_, "websocket")) return HeadError::kBadProtocol;
    if (!has_scheme_ || !has_path_ || !has_authority_) return HeadError::kBadConnect;
    if (!IsScheme(scheme_)) return HeadError::kBadScheme;
    if (!TargetBytesValid(path_) || path_ == "*") return HeadError::kBadTarget;
  } else if (connect) {
    if (has_scheme_ || has_path_ || !has_authority_) return HeadError::kBadConnect;
  } else {
    if (!has_scheme_ || !has_path_) return HeadError::kMissingPseudo;
    if (!IsScheme(scheme_)) return HeadError::kBadScheme;
    if (!TargetBytesValid(path_) || (path_ == "*" && method_ != "OPTIONS")) {
      return HeadError::kBadTarget;
    }
  }
  // An empty host is "valid" to RFC 3986 but names nothing to route on.
  if (has_authority_ && (authority_.empty() || !http::IsValidHost(authority_))) {
    return HeadError::kBadAuthority;
  }
  if (has_host_ && (host_.empty() || !http::IsValidHost(host_))) return HeadError::kBadAuthority;
  if (!has_authority_ && !has_host_) return HeadError::kMissingAuthority;
  if (has_authority_ && has_host_ && !http::EqualsIgnoreCase(authority_, host_)) {
    return HeadError::kAuthorityHostMismatch;
  }
  return HeadError::kNone;
}

size_t HeadBuilder::ScratchNeeded() const noexcept {
  // The canonical path never outgrows :path (plus the "/" CanonicalizeTarget
  // may add); crumbs joined with "; " between them (RFC 9113 §8.2.3).
  const size_t join = cookies_ > 1 ? cookie_bytes_ + 2u * (cookies_ - 1u) : 0;
  return path_.size() + 1 + join;
}

// Joins the cookie crumbs into one field at the first crumb's place (an
// HTTP/1.1 upstream takes one Cookie field, RFC 6265 §5.4) and drops the rest.
size_t HeadBuilder::JoinCookies(char* scratch) noexcept {
  if (cookies_ < 2) return 0;
  size_t n = 0;
  int first = -1;
  uint16_t kept = 0;
  for (uint16_t i = 0; i < count_; ++i) {
    if (fields_[i].name != "cookie") {
      fields_[kept++] = fields_[i];
      continue;
    }
    if (first >= 0) {
      scratch[n++] = ';';
      scratch[n++] = ' ';
    } else {
      first = kept++;
    }
    std::memcpy(scratch + n, fields_[i].value.data(), fields_[i].value.size());
    n += fields_[i].value.size();
  }
  fields_[first] = http::Header{"cookie", std::string_view(scratch, n)};
  count_ = kept;
  return n;
}

bool HeadBuilder::FinishRequest(bool end_stream, http::PathOptions paths, char* scratch, size_t cap,
                                http::RequestHead* out) noexcept {
  if (error_ != HeadError::kNone) return false;
  if (HeadError e = CheckPseudo(); e != HeadError::kNone) return Fail(e);
  HMS_CHECK(cap >= ScratchNeeded());
  const size_t joined = JoinCookies(scratch);
  char* path_scratch = scratch + joined;
  http::RequestHead& r = *out;
  // The upgrade an extended CONNECT stands for (the header's contract).
  if (has_protocol_ && count_ + 3 > http::kMaxHeaders) return Fail(HeadError::kTooManyFields);
  r.method_text = has_protocol_ ? std::string_view("GET") : method_;
  r.method = http::MethodFromText(r.method_text);
  r.version_minor = 1;  // HTTP/1.1 semantics: persistent, Host-like authority
  r.host = has_authority_ ? authority_ : host_;
  r.target = method_ == "CONNECT" && !has_protocol_ ? authority_ : path_;
  const size_t q = r.target.find('?');
  r.path = q == std::string_view::npos ? r.target : r.target.substr(0, q);
  r.query = q == std::string_view::npos ? std::string_view() : r.target.substr(q + 1);
  if (r.target.front() != '/') r.path = r.query = {};  // '*' and CONNECT have no path
  http::CanonicalTarget canon;
  if (!http::CanonicalizeTarget(r, paths, path_scratch, cap - joined, &canon, &path_error_)) {
    return Fail(HeadError::kBadPath);
  }
  if (!r.path.empty()) {
    r.target = canon.origin;
    r.path = canon.path;
    r.query = canon.origin.size() > canon.path.size() ? canon.origin.substr(canon.path.size() + 1)
                                                      : std::string_view();
  }
  r.header_count = count_;
  for (uint16_t i = 0; i < count_; ++i) r.headers[i] = fields_[i];
  if (has_protocol_) {
    r.headers[r.header_count++] = http::Header{"upgrade", "websocket"};
    r.headers[r.header_count++] = http::Header{"connection", "upgrade"};
    end_stream = true;  // no body: DATA are the tunnel's
  }
  // A body's end is the stream's end; a length, when given, is checked
  // against the DATA that arrives (server_session.cc). Without one an
  // HTTP/1.1 upstream needs the body chunked: kChunked says so.
  r.body = end_stream ? http::BodyKind::kNone
                      : (has_length_ ? http::BodyKind::kContentLength : http::BodyKind::kChunked);
  r.content_length = has_length_ ? length_ : 0;
  r.keep_alive = true;
  r.expect_continue = expect_continue_ && !end_stream;
  r.error = http::ParseError::kNone;
  return true;
}

policy::Answer HeadBuilder::Refusal(char* detail, size_t cap) const noexcept {
  if (error_ == HeadError::kBadPath) {
    const std::string_view rule = http::PathErrorRule(path_error_);
    const std::string_view why = http::PathErrorText(path_error_);
    std::snprintf(detail, cap, "bad path (%.*s): %.*s", static_cast<int>(rule.size()), rule.data(),
                  static_cast<int>(why.size()), why.data());
    return policy::AnswerFor(policy::Fault::kBadPath, detail);
  }
  const std::string_view reason = HeadErrorReason(error_);
  std::snprintf(detail, cap, "malformed request: %.*s", static_cast<int>(reason.size()),
                reason.data());
  // As the HTTP/1.1 parser's errors do: the rule refines the row's status and token.
  policy::Answer a = policy::AnswerFor(policy::Fault::kMalformedRequest, detail);
  a.status = HeadErrorStatus(error_);
  a.reason = reason;
  return a;
}

}  // namespace hms::h2
