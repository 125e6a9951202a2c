#include "hms/control/span_exporter.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "hms/core/clock.h"
#include "http_client.h"

namespace hms::control {

SpanExporter::SpanExporter(SpanExportOptions options, std::vector<obs::SpanRing*> rings, LogFn log)
    : options_(std::move(options)), rings_(std::move(rings)), log_(std::move(log)) {
  rings_.erase(std::remove(rings_.begin(), rings_.end(), nullptr), rings_.end());
  client_ = std::make_unique<HttpClient>(
      std::vector<HttpTarget>{HttpTarget{options_.host, options_.port}}, options_.timeout_ms);
  size_t capacity = 0;
  for (obs::SpanRing* r : rings_) capacity += r->capacity();
  batch_.reserve(capacity);
}

SpanExporter::~SpanExporter() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

Result<bool> SpanExporter::Start() {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    return Error{std::string("span exporter: eventfd: ") + std::strerror(errno), Side::kInternal};
  }
  // No cancel descriptor for the client: a request in flight when Stop()
  // comes is let finish (bounded by timeout_ms) rather than cut, so the
  // spans it carries are not lost at shutdown.
  thread_ = std::thread([this] { Run(); });
  return true;
}

void SpanExporter::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof one);
  (void)n;  // a full counter still wakes the thread
  thread_.join();
}

void SpanExporter::Run() {
  pthread_setname_np(pthread_self(), "hms-spans");
  while (!stop_.load(std::memory_order_acquire)) {
    pollfd p{wake_fd_, POLLIN, 0};
    poll(&p, 1, options_.interval_ms);
    if (stop_.load(std::memory_order_acquire)) break;
    Pass(false);
  }
  // The last spans (those of the drain) get one more try even after a failure.
  retry_after_ms_ = 0;
  Pass(true);
  client_->Close();
}

void SpanExporter::Pass(bool final) {
  batch_.clear();
  for (obs::SpanRing* r : rings_) r->Drain(&batch_, r->capacity());
  if (batch_.empty()) return;
  if (core::NowMs() < retry_after_ms_) {
    dropped_.fetch_add(batch_.size(), std::memory_order_relaxed);
    dropped_in_outage_ += batch_.size();
    return;
  }
  for (size_t from = 0; from < batch_.size(); from += options_.max_batch) {
    const size_t to = std::min(batch_.size(), from + options_.max_batch);
    if (Send(from, to)) continue;
    // The rest of this pass is dropped with the failed batch: the collector
    // is down or slow, and trying again at once would only add delay.
    const size_t rest = batch_.size() - to;
    dropped_.fetch_add(rest, std::memory_order_relaxed);
    dropped_in_outage_ += rest;
    if (!final) retry_after_ms_ = core::NowMs() + options_.backoff_ms;
    return;
  }
}

bool SpanExporter::Send(size_t from, size_t to) {
  const size_t n = to - from;
  obs::EncodeOtlpTraces(options_.resource, batch_.data() + from, n, &body_);
  Result<HttpResponse> r = client_->Post(options_.path, body_);
  std::string error;
  if (!r.ok()) {
    error = r.error().message;
  } else if (r->status < 200 || r->status > 299) {
    error = "HTTP " + std::to_string(r->status) + ": " + r->body.substr(0, 200);
  }
  const std::string where =
      "http://" + HttpTarget{options_.host, options_.port}.Text() + options_.path;
  if (error.empty()) {
    exported_.fetch_add(n, std::memory_order_relaxed);
    if (failing_) {
      failing_ = false;
      log_("span export to " + where + " works again (" + std::to_string(dropped_in_outage_) +
           " spans dropped meanwhile)");
    }
    return true;
  }
  failed_.fetch_add(1, std::memory_order_relaxed);
  dropped_.fetch_add(n, std::memory_order_relaxed);
  if (!failing_) {
    // Once per outage: a dead collector must not flood the log.
    failing_ = true;
    dropped_in_outage_ = 0;
    log_("span export to " + where + " failed, dropping spans until it answers: " + error);
  }
  dropped_in_outage_ += n;
  return false;
}

}  // namespace hms::control
