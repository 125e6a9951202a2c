#include "hms/obs/otlp.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstring>
#include <map>
#include <string>
#include <string_view>

namespace hms::obs {
namespace {

SpanRecord Span() {
  SpanRecord s{};
  std::memcpy(s.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", 32);
  std::memcpy(s.span_id, "00f067aa0ba902b7", 16);
  std::memcpy(s.parent_id, "b7ad6b7169203331", 16);
  s.start_unix_ns = 1'764'395'563'120'000'001;
  s.end_unix_ns = 1'764'395'563'121'214'000;
  s.status = 200;
  s.listener = SpanListener::kEdge;
  s.version_minor = 1;
  SpanRecord::Set(s.method, &s.method_len, "GET");
  SpanRecord::Set(s.route, &s.route_len, "/sum/{a}/{b}");
  SpanRecord::Set(s.service, &s.service_len, "calc-svc");
  SpanRecord::Set(s.host, &s.host_len, "api.example.com:8080");
  SpanRecord::Set(s.upstream, &s.upstream_len, "127.0.0.1:7002");
  SpanRecord::Set(s.peer, &s.peer_len, "127.0.0.1");
  return s;
}

const OtlpResource kResource{"hms-gateway", "0.1.0", "gateway"};

// The body as a DOM, and a span's attributes as key → (type, value).
struct Decoded {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string text;
};

void Decode(const std::string& body, Decoded* d) {
  d->text = body;
  ASSERT_EQ(d->parser.parse(d->text).get(d->root), simdjson::SUCCESS) << body;
}

std::map<std::string, std::pair<std::string, std::string>> Attributes(simdjson::dom::element e) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (simdjson::dom::element kv : e["attributes"].get_array()) {
    std::string_view key = kv["key"].get_string();
    simdjson::dom::object value = kv["value"].get_object();
    EXPECT_EQ(value.size(), 1u) << key;  // an AnyValue holds exactly one of its fields
    for (auto field : value) {
      EXPECT_TRUE(field.key == "stringValue" || field.key == "intValue") << field.key;
      // intValue is an int64: a decimal string in the protobuf JSON mapping.
      out[std::string(key)] = {std::string(field.key),
                               std::string(field.value.get_string().value())};
    }
  }
  return out;
}

TEST(Otlp, EncodesTheExportTraceServiceRequestShape) {
  SpanRecord spans[2] = {Span(), Span()};
  spans[1].span_id[15] = '8';
  std::string body;
  EncodeOtlpTraces(kResource, spans, 2, &body);
  Decoded d;
  Decode(body, &d);

  simdjson::dom::array rs = d.root["resourceSpans"].get_array();
  ASSERT_EQ(rs.size(), 1u);
  auto resource = Attributes(rs.at(0)["resource"]);
  EXPECT_EQ(resource["service.name"],
            (std::pair<std::string, std::string>{"stringValue", "hms-gateway"}));
  EXPECT_EQ(resource["service.version"].second, "0.1.0");
  EXPECT_EQ(resource["hms.role"].second, "gateway");
  simdjson::dom::array scopes = rs.at(0)["scopeSpans"].get_array();
  ASSERT_EQ(scopes.size(), 1u);
  EXPECT_EQ(std::string_view(scopes.at(0)["scope"]["name"].get_string()), "hms-gateway");
  simdjson::dom::array list = scopes.at(0)["spans"].get_array();
  ASSERT_EQ(list.size(), 2u);

  simdjson::dom::element s = list.at(0);
  EXPECT_EQ(std::string_view(s["traceId"].get_string()), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(std::string_view(s["spanId"].get_string()), "00f067aa0ba902b7");
  EXPECT_EQ(std::string_view(s["parentSpanId"].get_string()), "b7ad6b7169203331");
  EXPECT_EQ(std::string_view(list.at(1)["spanId"].get_string()), "00f067aa0ba902b8");
  EXPECT_EQ(std::string_view(s["name"].get_string()), "GET /sum/{a}/{b}");
  EXPECT_EQ(int64_t(s["kind"].get_int64()), 2);  // SPAN_KIND_SERVER
  // fixed64 nanoseconds: decimal strings, exact (a double would round them).
  EXPECT_EQ(std::string_view(s["startTimeUnixNano"].get_string()), "1764395563120000001");
  EXPECT_EQ(std::string_view(s["endTimeUnixNano"].get_string()), "1764395563121214000");
  EXPECT_TRUE(s["status"].error() == simdjson::NO_SUCH_FIELD);  // 2xx: Unset

  auto a = Attributes(s);
  using KV = std::pair<std::string, std::string>;
  EXPECT_EQ(a["http.request.method"], (KV{"stringValue", "GET"}));
  EXPECT_EQ(a["http.route"], (KV{"stringValue", "/sum/{a}/{b}"}));
  EXPECT_EQ(a["http.response.status_code"], (KV{"intValue", "200"}));
  EXPECT_EQ(a["server.address"], (KV{"stringValue", "api.example.com"}));
  EXPECT_EQ(a["server.port"], (KV{"intValue", "8080"}));
  EXPECT_EQ(a["network.protocol.version"], (KV{"stringValue", "1.1"}));
  EXPECT_EQ(a["network.peer.address"], (KV{"stringValue", "127.0.0.1"}));
  EXPECT_EQ(a["hms.listener"], (KV{"stringValue", "edge"}));
  EXPECT_EQ(a["hms.service"], (KV{"stringValue", "calc-svc"}));
  EXPECT_EQ(a["hms.upstream.address"], (KV{"stringValue", "127.0.0.1:7002"}));
  // Left out when there is nothing to say.
  for (const char* absent : {"http.request.resend_count", "error.type", "hms.stamp",
                             "hms.peer.identity", "http.request.method_original"}) {
    EXPECT_EQ(a.count(absent), 0u) << absent;
  }
}

TEST(Otlp, RootSpanHasNoParent) {
  SpanRecord s = Span();
  s.parent_id[0] = '\0';
  std::string body;
  EncodeOtlpTraces(kResource, &s, 1, &body);
  EXPECT_EQ(body.find("parentSpanId"), std::string::npos) << body;
}

TEST(Otlp, ServerErrorsCarryStatusErrorAndTheStamp) {
  SpanRecord s = Span();
  s.status = 504;
  s.retries = 2;
  SpanRecord::Set(s.reason, &s.reason_len, "upstream_timeout");
  std::string body;
  EncodeOtlpTraces(kResource, &s, 1, &body);
  Decoded d;
  Decode(body, &d);
  simdjson::dom::element span = d.root["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"].at(0);
  EXPECT_EQ(int64_t(span["status"]["code"].get_int64()), 2);  // STATUS_CODE_ERROR
  EXPECT_EQ(std::string_view(span["status"]["message"].get_string()), "upstream_timeout");
  auto a = Attributes(span);
  EXPECT_EQ(a["http.request.resend_count"].second, "2");
  EXPECT_EQ(a["error.type"].second, "upstream_timeout");
  EXPECT_EQ(a["hms.stamp"].second, "upstream_timeout");

  // 4xx is the caller's: status stays Unset, the stamp still says who answered.
  s.status = 429;
  SpanRecord::Set(s.reason, &s.reason_len, "rate_limited");
  EncodeOtlpTraces(kResource, &s, 1, &body);
  Decoded d4;
  Decode(body, &d4);
  span = d4.root["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"].at(0);
  EXPECT_TRUE(span["status"].error() == simdjson::NO_SUCH_FIELD);
  a = Attributes(span);
  EXPECT_EQ(a.count("error.type"), 0u);
  EXPECT_EQ(a["hms.stamp"].second, "rate_limited");

  // A 5xx the upstream sent: error.type is the status code.
  s.status = 503;
  s.reason_len = 0;
  EncodeOtlpTraces(kResource, &s, 1, &body);
  Decoded d5;
  Decode(body, &d5);
  a = Attributes(d5.root["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"].at(0));
  EXPECT_EQ(a["error.type"].second, "503");
}

TEST(Otlp, SidecarSpansHaveNoRouteTemplate) {
  SpanRecord s = Span();
  s.listener = SpanListener::kInbound;
  SpanRecord::Set(s.route, &s.route_len, "(inbound)");
  SpanRecord::Set(s.host, &s.host_len, "[::1]:15002");
  std::string body;
  EncodeOtlpTraces(OtlpResource{"calc-svc", "0.1.0", "sidecar"}, &s, 1, &body);
  Decoded d;
  Decode(body, &d);
  simdjson::dom::element span = d.root["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"].at(0);
  EXPECT_EQ(std::string_view(span["name"].get_string()), "GET");
  auto a = Attributes(span);
  EXPECT_EQ(a.count("http.route"), 0u);
  EXPECT_EQ(a["hms.listener"].second, "inbound");
  EXPECT_EQ(a["server.address"].second, "::1");
  EXPECT_EQ(a["server.port"].second, "15002");
}

TEST(Otlp, UnknownMethodsAndTextNeedingEscapes) {
  SpanRecord s = Span();
  SpanRecord::Set(s.method, &s.method_len, "PURGE");
  SpanRecord::Set(s.route, &s.route_len, "/a\"b\\c");
  std::string body;
  EncodeOtlpTraces(OtlpResource{"svc \"x\"", "", ""}, &s, 1, &body);
  Decoded d;
  Decode(body, &d);
  simdjson::dom::element span = d.root["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"].at(0);
  EXPECT_EQ(std::string_view(span["name"].get_string()), "HTTP /a\"b\\c");
  auto a = Attributes(span);
  EXPECT_EQ(a["http.request.method"].second, "_OTHER");
  EXPECT_EQ(a["http.request.method_original"].second, "PURGE");
  EXPECT_EQ(a["http.route"].second, "/a\"b\\c");
  EXPECT_EQ(Attributes(d.root["resourceSpans"].at(0)["resource"])["service.name"].second,
            "svc \"x\"");
}

TEST(Otlp, EmptyBatchIsStillAValidRequest) {
  std::string body = "garbage";
  EncodeOtlpTraces(kResource, nullptr, 0, &body);
  Decoded d;
  Decode(body, &d);
  EXPECT_EQ(d.root["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"].get_array().size(), 0u);
}

}  // namespace
}  // namespace hms::obs
