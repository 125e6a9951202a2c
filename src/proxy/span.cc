// A Worker's spans (docs/observability.md "Spans"): what a sampled exchange
// leaves in this core's SpanRing for the exporter thread. Copies only, into
// fixed fields: no allocation, and nothing that points into the snapshot,
// which may be gone by the time the exporter reads the record.
#include <cstring>

#include "src/proxy/worker.h"

namespace hms::proxy {

void Worker::StartSpan(Exchange& ex, const http::RequestHead& r) {
  ex.sampled = true;
  obs::SpanRecord::Set(ex.host, &ex.host_len, r.host);
}

void Worker::RecordSpan(const Client& c) {
  const Exchange& ex = c.ex;
  obs::SpanRecord* s = spans_->Claim();
  if (s == nullptr) {
    // The exporter is behind: the span goes, the request does not wait.
    metrics_.spans_dropped.Add();
    return;
  }
  std::memcpy(s->trace_id, ex.trace.trace_id, sizeof s->trace_id);
  std::memcpy(s->span_id, ex.trace.span_id, sizeof s->span_id);
  if (ex.trace.parent_id[0] != '\0') {
    std::memcpy(s->parent_id, ex.trace.parent_id, sizeof s->parent_id);
  } else {
    s->parent_id[0] = '\0';
  }
  // The wall clock is read once per pass; the duration comes from the
  // monotonic clock, so a step of the wall clock never makes it negative.
  s->end_unix_ns = now_unix_ns_;
  s->start_unix_ns = now_unix_ns_ - static_cast<int64_t>(now_ - ex.start);
  s->status = ex.status;
  s->retries = ex.retries_done;
  switch (listener_kind_[c.listener]) {
    case ListenerKind::kEdge:
      s->listener = obs::SpanListener::kEdge;
      break;
    case ListenerKind::kInbound:
      s->listener = obs::SpanListener::kInbound;
      break;
    case ListenerKind::kEgress:
      s->listener = obs::SpanListener::kEgress;
      break;
  }
  s->version_minor = ex.version_minor;
  obs::SpanRecord::Set(s->method, &s->method_len, std::string_view(ex.method_text, ex.method_len));
  obs::SpanRecord::Set(s->route, &s->route_len,
                       ex.route != nullptr ? std::string_view(ex.route->path_template) : "");
  obs::SpanRecord::Set(s->service, &s->service_len,
                       ex.cluster != nullptr ? std::string_view(ex.cluster->name) : "");
  obs::SpanRecord::Set(s->host, &s->host_len, std::string_view(ex.host, ex.host_len));
  std::string_view upstream;
  if (ex.attempts > 0 && ex.cluster != nullptr && !ex.cluster->endpoints.empty()) {
    upstream = ex.cluster->endpoints[ex.endpoint_index % ex.cluster->endpoints.size()].address;
  }
  obs::SpanRecord::Set(s->upstream, &s->upstream_len, upstream);
  obs::SpanRecord::Set(s->reason, &s->reason_len, std::string_view(ex.reason, ex.reason_len));
  obs::SpanRecord::Set(s->peer, &s->peer_len, std::string_view(c.peer, c.peer_len));
  // The caller's mTLS identity (docs/tls.md), empty over plain TCP.
  obs::SpanRecord::Set(s->peer_identity, &s->peer_identity_len,
                       ConnOf(c).tls != nullptr ? ConnOf(c).tls->peer_identity()
                                                : std::string_view());
  spans_->Publish();
  metrics_.spans_recorded.Add();
}

}  // namespace hms::proxy
