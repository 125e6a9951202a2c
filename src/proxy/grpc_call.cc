// gRPC calls through the engine (docs/http2.md "gRPC"): a request whose
// content-type is application/grpc is marked at its start; its grpc-timeout
// shortens the deadline and is written back toward the upstream with the
// time each attempt has; the gateway's own answers go as gRPC (HTTP 200,
// trailers-only, grpc-status by the fault table); a trailers-only failure
// from the upstream is retried only on the statuses the service lists.
#include <cstring>

#include "hms/h2/grpc.h"
#include "src/proxy/wire.h"
#include "src/proxy/worker.h"

namespace hms::proxy {

namespace {

// The fault whose answer carries `reason` (the first row that does): local
// answers arrive as an Answer. A reason of the parser's own refinements
// (malformed heads) is a malformed request.
policy::Fault FaultByReason(std::string_view reason) {
  for (size_t i = 0; i < static_cast<size_t>(policy::Fault::kCount); ++i) {
    const auto f = static_cast<policy::Fault>(i);
    if (policy::Classify(f).status != 0 && policy::Classify(f).reason == reason) return f;
  }
  return policy::Fault::kMalformedRequest;
}

}  // namespace

void Worker::WriteGrpcAnswer(Exchange& ex, Downstream& down, const policy::Answer& answer,
                             std::string_view trace_id, const char* extra_header) {
  h2::GrpcAnswerBuffer buf;
  http::Header fields[h2::kGrpcFieldCount];
  const policy::Fault fault =
      answer_fault_ != policy::Fault::kNone ? answer_fault_ : FaultByReason(answer.reason);
  const uint16_t n = h2::GrpcAnswerFields(fault, answer, &buf, fields);
  char* dst = down.Reserve(2048);
  Writer w(dst, 2048);
  w.S("HTTP/1.1 200 OK\r\n");
  for (uint16_t i = 0; i < n; ++i) w.S(fields[i].name).S(": ").S(fields[i].value).S("\r\n");
  w.S("x-trace-id: ").S(trace_id).S("\r\ncontent-length: 0\r\n");
  if (extra_header != nullptr) w.S(extra_header);
  if (down.closing()) w.S("connection: close\r\n");
  w.S("\r\n");
  if (w.overflow()) {
    // The message is bounded (kGrpcAnswerBytes), the extra fields too:
    // only a pathological combination gets here; the status alone goes.
    Writer bare(dst, 2048);
    bare.S("HTTP/1.1 200 OK\r\n").S(fields[0].name).S(": ").S(fields[0].value).S("\r\n");
    bare.S(fields[1].name).S(": ").S(fields[1].value).S("\r\ncontent-length: 0\r\n\r\n");
    w = bare;
  }
  down.Commit(w.size());
  ex.bytes_out += w.size();
}

void Worker::FillGrpcTimeout(Exchange& ex, uint64_t attempt_ms) {
  if (ex.grpc_timeout_field == 0) return;
  char* field = ex.head->data() + ex.grpc_timeout_field;
  const size_t len = h2::FormatGrpcTimeout(core::Millis(attempt_ms), field);
  std::memset(field + len, ' ', h2::kGrpcTimeoutBytes - len);
}

uint32_t Worker::GrpcFailureOf(const Exchange& ex, const http::ResponseHead& r) {
  const bool bodiless = r.body == http::BodyKind::kNone ||
                        (r.body == http::BodyKind::kContentLength && r.content_length == 0);
  if (!ex.grpc || !bodiless) return 0;
  const std::string_view v = http::FindHeader(r.headers, r.header_count, "grpc-status");
  h2::GrpcStatus s;
  if (v.empty() || !h2::ParseGrpcStatus(v, &s)) return 0;
  return static_cast<uint32_t>(s);
}

}  // namespace hms::proxy
