// The span exporter (docs/observability.md "Spans"): one thread beside the
// control thread that drains every core's SpanRing every 20 ms and sends the
// spans to an OTLP/HTTP collector as JSON (`POST /v1/traces`), in batches.
//
// Nothing waits for it: the cores only ever write into their rings (a full
// ring drops the span, counted by the core), and the export request runs on
// this thread with the HttpClient's blocking calls bounded by a timeout, so a
// slow collector never holds up a reload, the admin API or a request. A batch
// the collector does not accept (refused, timed out, non-2xx) is dropped and
// counted, never queued again; after a failure the exporter waits a second
// before the next attempt, dropping (and counting) what the rings hand it
// meanwhile, so a dead collector costs one failed connect per second.
//
// Owned by the control thread: Start, Stop and the destructor are called
// from it; the counters may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hms/common/result.h"
#include "hms/obs/otlp.h"
#include "hms/obs/span.h"

namespace hms::control {

class HttpClient;

struct SpanExportOptions {
  std::string host;  // the collector (IPv6 without brackets)
  uint16_t port = 4318;
  std::string path = "/v1/traces";
  int timeout_ms = 500;    // one export request: connect, send, the whole answer
  int interval_ms = 20;    // how often the rings are drained
  size_t max_batch = 512;  // spans per request (about 1 KiB of JSON each)
  int backoff_ms = 1000;   // after a failed request, no new one for this long
  obs::OtlpResource resource;
};

class SpanExporter {
 public:
  using LogFn = std::function<void(const std::string&)>;

  // `rings` are the cores' (null entries are skipped); they must outlive Stop().
  SpanExporter(SpanExportOptions options, std::vector<obs::SpanRing*> rings, LogFn log);
  ~SpanExporter();  // Stop()
  SpanExporter(const SpanExporter&) = delete;
  SpanExporter& operator=(const SpanExporter&) = delete;

  // Starts the thread.
  Result<bool> Start();
  // Ends the thread: a request in flight is let finish, then the rings are
  // drained once more and sent (each request bounded by timeout_ms; the
  // first failure drops the rest).
  void Stop();

  // Spans the collector accepted (a 2xx answer).
  uint64_t exported() const { return exported_.load(std::memory_order_relaxed); }
  // Spans dropped because their export failed or came during the backoff.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // Export requests that failed.
  uint64_t failed_requests() const { return failed_.load(std::memory_order_relaxed); }

 private:
  void Run();
  // Drains the rings and exports what they held. `final`: the shutdown pass.
  void Pass(bool final);
  // Sends batch_[from, to); false when the request failed.
  bool Send(size_t from, size_t to);

  SpanExportOptions options_;
  std::vector<obs::SpanRing*> rings_;
  LogFn log_;
  std::unique_ptr<HttpClient> client_;
  std::thread thread_;
  int wake_fd_ = -1;  // eventfd: Stop() wakes the thread from its wait between passes
  std::atomic<bool> stop_{false};
  std::vector<obs::SpanRecord> batch_;
  std::string body_;
  int64_t retry_after_ms_ = 0;  // monotonic ms before which nothing is sent
  bool failing_ = false;        // the last request failed (logged once per outage)
  uint64_t dropped_in_outage_ = 0;
  std::atomic<uint64_t> exported_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> failed_{0};
};

}  // namespace hms::control
