// Fuzz target: the OTLP/HTTP JSON span encoder (src/obs/otlp.cc), where it
// writes strings that come from outside: the request's method, Host, route,
// peer address and identity, the upstream, the service and resource names.
//
// Input: the resource's three strings and each span's text fields, cut from
// the input at NUL bytes, and its numbers. Ids are hex as the gateway makes
// them. Property: the body is valid JSON (simdjson validates the grammar and
// UTF-8) holding exactly the spans given, and the resource's service.name
// reads back as given (escaping round-trips).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "fuzz_check.h"
#include "hms/obs/otlp.h"
#include "hms/obs/span.h"

namespace {

struct Input {
  const uint8_t* p;
  size_t n;
  // The next NUL-terminated piece (or the rest).
  std::string_view Text() {
    size_t i = 0;
    while (i < n && p[i] != 0) ++i;
    std::string_view s(reinterpret_cast<const char*>(p), i);
    const size_t used = i < n ? i + 1 : i;
    p += used;
    n -= used;
    return s;
  }
  uint64_t Number() {
    uint64_t v = 0;
    for (int i = 0; i < 8 && n > 0; ++i, ++p, --n) v = v << 8 | *p;
    return v;
  }
};

// JSON strings must be UTF-8 (RFC 8259 §8.1): the encoder's contract covers
// what the gateway can hand it, which simdjson checks below.
bool ValidUtf8(std::string_view s) {
  return simdjson::validate_utf8(s.data(), s.size());
}

void Hex(char* out, size_t n, uint64_t seed) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out[i] = kHex[(seed >> ((i * 4) % 64)) & 15];
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, size};
  hms::obs::OtlpResource resource;
  resource.service_name = std::string(in.Text());
  resource.service_version = std::string(in.Text());
  resource.role = std::string(in.Text());
  std::vector<hms::obs::SpanRecord> spans;
  while (in.n > 0 && spans.size() < 8) {
    hms::obs::SpanRecord s{};
    const uint64_t ids = in.Number();
    Hex(s.trace_id, 32, ids);
    Hex(s.span_id, 16, ids * 31);
    if (ids & 1) Hex(s.parent_id, 16, ids * 17);
    s.start_unix_ns = static_cast<int64_t>(in.Number());
    s.end_unix_ns = static_cast<int64_t>(in.Number());
    const uint64_t misc = in.Number();
    s.status = static_cast<uint16_t>(misc % 1000);
    s.retries = static_cast<uint8_t>(misc >> 16);
    s.listener = static_cast<hms::obs::SpanListener>((misc >> 24) % 3);
    s.version_minor = static_cast<uint8_t>((misc >> 32) & 1);
    using R = hms::obs::SpanRecord;
    R::Set(s.method, &s.method_len, in.Text());
    R::Set(s.route, &s.route_len, in.Text());
    R::Set(s.service, &s.service_len, in.Text());
    // The Host comes from the request parser, which lets only ASCII through
    // (RFC 3986 reg-name, IP literals, port): the encoder splits it into name
    // and port by bytes, which is right for what it can be handed.
    std::string host(in.Text());
    for (char& c : host) {
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    }
    R::Set(s.host, &s.host_len, host);
    R::Set(s.upstream, &s.upstream_len, in.Text());
    R::Set(s.reason, &s.reason_len, in.Text());
    R::Set(s.peer, &s.peer_len, in.Text());
    R::Set(s.peer_identity, &s.peer_identity_len, in.Text());
    spans.push_back(s);
  }

  std::string body;
  hms::obs::EncodeOtlpTraces(resource, spans.data(), spans.size(), &body);

  // Invalid UTF-8 handed in may come out as it was: check the grammar then,
  // not the encoding (the parser refuses both at once).
  bool utf8_in = ValidUtf8(resource.service_name) && ValidUtf8(resource.service_version) &&
                 ValidUtf8(resource.role);
  for (const auto& s : spans) {
    for (std::string_view t :
         {std::string_view(s.method, s.method_len), std::string_view(s.route, s.route_len),
          std::string_view(s.service, s.service_len), std::string_view(s.host, s.host_len),
          std::string_view(s.upstream, s.upstream_len), std::string_view(s.reason, s.reason_len),
          std::string_view(s.peer, s.peer_len),
          std::string_view(s.peer_identity, s.peer_identity_len)}) {
      utf8_in = utf8_in && ValidUtf8(t);
    }
  }
  if (!utf8_in) return 0;

  static simdjson::dom::parser* parser = new simdjson::dom::parser();
  simdjson::dom::element root;
  const auto err = parser->parse(body).get(root);
  if (err != simdjson::SUCCESS) {
    std::fprintf(stderr, "invalid JSON (%s): %s\n", simdjson::error_message(err), body.c_str());
  }
  FUZZ_CHECK(err == simdjson::SUCCESS);
  simdjson::dom::array rs;
  FUZZ_CHECK(root["resourceSpans"].get(rs) == simdjson::SUCCESS);
  size_t count = 0;
  for (simdjson::dom::element r : rs) {
    simdjson::dom::array attrs;
    FUZZ_CHECK(r["resource"]["attributes"].get(attrs) == simdjson::SUCCESS);
    for (simdjson::dom::element kv : attrs) {
      std::string_view key, value;
      if (kv["key"].get(key) != simdjson::SUCCESS || key != "service.name") continue;
      FUZZ_CHECK(kv["value"]["stringValue"].get(value) == simdjson::SUCCESS);
      // An empty service.name may be replaced by a default.
      if (!resource.service_name.empty()) FUZZ_CHECK(value == resource.service_name);
    }
    simdjson::dom::array scopes;
    FUZZ_CHECK(r["scopeSpans"].get(scopes) == simdjson::SUCCESS);
    for (simdjson::dom::element sc : scopes) {
      simdjson::dom::array list;
      FUZZ_CHECK(sc["spans"].get(list) == simdjson::SUCCESS);
      count += list.size();
    }
  }
  FUZZ_CHECK(count == spans.size());
  return 0;
}
