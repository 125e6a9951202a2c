#include "hms/obs/ui_data.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "hms/common/json_escape.h"

namespace hms::obs {

namespace {

// "12.5", or "null" when the value is unknown (negative).
std::string Number(double v, const char* format = "%.1f") {
  if (v < 0) return "null";
  char b[32];
  std::snprintf(b, sizeof b, format, v);
  return b;
}

// Per second over dt_ns; -1 (null) without a window.
double Rate(uint64_t now, uint64_t then, uint64_t dt_ns) {
  if (dt_ns == 0) return -1;
  return static_cast<double>(now >= then ? now - then : 0) * 1e9 / static_cast<double>(dt_ns);
}

// The thread's "comm" and its user + system time (ticks) from
// /proc/self/task/TID/stat; false when it cannot be read.
bool ReadTaskStat(const char* tid, std::string* comm, uint64_t* ticks) {
  std::ifstream f(std::string("/proc/self/task/") + tid + "/stat");
  std::string line;
  if (!std::getline(f, line)) return false;
  // "TID (COMM) STATE PPID ...": comm may hold spaces and parentheses; it
  // ends at the last ')'. utime and stime are fields 14 and 15 (proc(5)).
  const size_t open = line.find('('), close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return false;
  *comm = line.substr(open + 1, close - open - 1);
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  *ticks = utime + stime;
  return true;
}

}  // namespace

double HistogramQuantileUs(const uint64_t* cumulative, double q) noexcept {
  const uint64_t count = cumulative[kDurationBuckets];
  if (count == 0) return -1;
  const double rank = q * static_cast<double>(count);
  uint16_t b = 0;
  while (b < kDurationBuckets && static_cast<double>(cumulative[b]) < rank) ++b;
  if (b == kDurationBuckets) return static_cast<double>(kDurationBucketsUs[kDurationBuckets - 1]);
  const double lower = b == 0 ? 0.0 : static_cast<double>(kDurationBucketsUs[b - 1]);
  const double upper = static_cast<double>(kDurationBucketsUs[b]);
  const double below = b == 0 ? 0.0 : static_cast<double>(cumulative[b - 1]);
  const double in_bucket = static_cast<double>(cumulative[b]) - below;
  if (in_bucket <= 0) return upper;
  return lower + (upper - lower) * (rank - below) / in_bucket;
}

std::vector<uint64_t> CoreCpuTimes(uint32_t cores) {
  std::vector<uint64_t> out(cores, kCpuUnknown);
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  const long hz = sysconf(_SC_CLK_TCK);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string comm;
    uint64_t ticks = 0;
    unsigned core = 0;
    if (!ReadTaskStat(e->d_name, &comm, &ticks)) continue;
    if (std::sscanf(comm.c_str(), "hms-core-%u", &core) != 1 || core >= cores) continue;
    out[core] = hz > 0 ? ticks * (1'000'000'000ull / static_cast<uint64_t>(hz)) : 0;
  }
  closedir(d);
  return out;
}

UiData::Sample UiData::Take(const UiInput& in) {
  Sample s;
  s.clock_ns = in.clock_ns;
  const CoreTotals& t = in.metrics.totals;
  for (const RequestCount& rc : t.requests) {
    if (s.routes.empty() || s.routes.back().key != rc.route_key) s.routes.push_back({rc.route_key});
    RouteSample& r = s.routes.back();
    r.requests += rc.count;
    if (rc.status >= 400 && rc.status < 500) r.errors_4xx += rc.count;
    if (rc.status >= 500) r.errors_5xx += rc.count;
  }
  for (const DurationHistogram& h : Histograms(t.durations)) {
    auto it = std::lower_bound(s.routes.begin(), s.routes.end(), h.route_key,
                               [](const RouteSample& r, uint32_t k) { return r.key < k; });
    if (it == s.routes.end() || it->key != h.route_key) it = s.routes.insert(it, {h.route_key});
    std::copy(std::begin(h.cumulative), std::end(h.cumulative), it->cumulative);
  }
  for (const CoreMetrics* c : in.metrics.cores) {
    uint64_t n = 0;
    if (c != nullptr) c->requests.ForEach([&](uint32_t, uint16_t, uint64_t k) { n += k; });
    s.core_requests.push_back(n);
  }
  s.core_cpu_ns = in.core_cpu_ns;
  return s;
}

const UiData::Sample* UiData::Base(const Sample& now) {
  while (history_.size() >= 2 && now.clock_ns - history_[1].clock_ns >= window_ns_) {
    history_.pop_front();
  }
  const Sample* base =
      !history_.empty() && history_.front().clock_ns < now.clock_ns ? &history_.front() : nullptr;
  // deque::push_back keeps references to the other elements valid.
  if (history_.empty() || now.clock_ns - history_.back().clock_ns >= kMinSpacingNs) {
    history_.push_back(now);
  }
  return base;
}

namespace {

// The newest refusals over every core, newest first.
std::string RefusalsJson(const UiInput& in) {
  struct Row {
    Refusal r;
    size_t core;
  };
  std::vector<Row> rows;
  Refusal got[UiData::kRefusalsShown];
  const auto& cores = in.metrics.cores;
  for (size_t i = 0; i < cores.size(); ++i) {
    if (cores[i] == nullptr) continue;
    const size_t n = cores[i]->refusals.Latest(got, UiData::kRefusalsShown);
    for (size_t k = 0; k < n; ++k) rows.push_back({got[k], i});
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const Row& a, const Row& b) { return a.r.unix_ms > b.r.unix_ms; });
  if (rows.size() > UiData::kRefusalsShown) rows.resize(UiData::kRefusalsShown);
  std::string o = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Refusal& r = rows[i].r;
    const auto [service, route] = in.metrics.route_labels
                                      ? in.metrics.route_labels(r.route_key)
                                      : std::pair<std::string, std::string>{"none", "none"};
    o += (i ? ",{" : "{") + std::string("\"unix_ms\":") + std::to_string(r.unix_ms) +
         ",\"core\":" + std::to_string(rows[i].core) + ",\"status\":" + std::to_string(r.status) +
         ",\"reason\":" + JsonString(r.reason) + ",\"method\":" + JsonString(r.method) +
         ",\"service\":" + JsonString(service) + ",\"route\":" + JsonString(route) +
         ",\"trace_id\":" + JsonString(r.trace_id) + "}";
  }
  return o + "]";
}

std::string CoresJson(const UiInput& in, const std::vector<uint64_t>& requests,
                      const std::vector<uint64_t>* base_requests,
                      const std::vector<uint64_t>* base_cpu, uint64_t dt_ns) {
  std::string o = "[";
  const auto& cores = in.metrics.cores;
  for (size_t i = 0; i < cores.size(); ++i) {
    const CoreMetrics* c = cores[i];
    double rps = -1, cpu = -1;
    if (base_requests != nullptr && i < base_requests->size()) {
      rps = Rate(requests[i], (*base_requests)[i], dt_ns);
    }
    if (base_cpu != nullptr && i < base_cpu->size() && i < in.core_cpu_ns.size() && dt_ns > 0 &&
        in.core_cpu_ns[i] != kCpuUnknown && (*base_cpu)[i] != kCpuUnknown) {
      cpu = Rate(in.core_cpu_ns[i], (*base_cpu)[i], dt_ns) / 1e9 * 100.0;
    }
    o += (i ? "," : "") + std::string("{\"core\":") + std::to_string(i) +
         ",\"connections\":" + std::to_string(c ? c->connections_active.Get() : 0) +
         ",\"requests\":" + std::to_string(requests[i]) +
         ",\"snapshot\":" + std::to_string(c ? c->snapshot_version.Get() : 0) +
         ",\"req_per_s\":" + Number(rps) + ",\"cpu_pct\":" + Number(cpu) + "}";
  }
  return o + "]";
}

std::string BreakersJson(const std::vector<BreakerRow>& breakers) {
  std::string o = "[";
  for (size_t i = 0; i < breakers.size(); ++i) {
    const BreakerRow& b = breakers[i];
    // next_probe_s in whole seconds, as /status; next_probe_ms for the page.
    o += (i ? ",{" : "{") + std::string("\"service\":") + JsonString(b.service) +
         ",\"state\":\"" + BreakerStateName(b.state) +
         "\",\"consecutive_failures\":" + std::to_string(b.consecutive_failures) +
         ",\"next_probe_s\":" + std::to_string(b.next_probe_in_ns / 1'000'000'000ull) +
         ",\"next_probe_ms\":" + std::to_string(b.next_probe_in_ns / 1'000'000ull) +
         ",\"opened_total\":" + std::to_string(b.opened_total) + "}";
  }
  return o + "]";
}

std::string EndpointsJson(const std::vector<EndpointRow>& endpoints) {
  const auto flag = [](bool v) { return v ? "true" : "false"; };
  std::string o = "[";
  for (size_t i = 0; i < endpoints.size(); ++i) {
    const EndpointRow& e = endpoints[i];
    o += (i ? ",{" : "{") + std::string("\"service\":") + JsonString(e.service) +
         ",\"address\":" + JsonString(e.address) +
         ",\"healthy\":" + flag(!e.ejected && !e.check_failing) +
         ",\"check_failing\":" + flag(e.check_failing) + ",\"ejected\":" + flag(e.ejected) +
         ",\"ejected_for_ms\":" + std::to_string(e.ejected_for_ns / 1'000'000ull) +
         ",\"ejections_total\":" + std::to_string(e.ejections_total) + "}";
  }
  return o + "]";
}

}  // namespace

const UiData::RouteSample& UiData::RouteIn(const Sample& s, uint32_t key) {
  static const RouteSample kNone;
  auto it = std::lower_bound(s.routes.begin(), s.routes.end(), key,
                             [](const RouteSample& r, uint32_t k) { return r.key < k; });
  return it != s.routes.end() && it->key == key ? *it : kNone;
}

std::string UiData::RouteJson(const RouteSample& now, const RouteSample* then, uint64_t dt_ns) {
  std::string o = "\"requests\":" + std::to_string(now.requests) +
                  ",\"errors_4xx\":" + std::to_string(now.errors_4xx) +
                  ",\"errors_5xx\":" + std::to_string(now.errors_5xx);
  if (then == nullptr) {
    return o + ",\"req_per_s\":null,\"errors_4xx_per_s\":null,\"errors_5xx_per_s\":null"
               ",\"window_requests\":0,\"p50_ms\":null,\"p90_ms\":null,\"p99_ms\":null";
  }
  // The window's own histogram: the difference of two cumulative ones.
  uint64_t window[kDurationBuckets + 1];
  for (uint16_t b = 0; b <= kDurationBuckets; ++b) {
    window[b] = now.cumulative[b] - std::min(now.cumulative[b], then->cumulative[b]);
  }
  const auto ms = [&](double q) {
    const double us = HistogramQuantileUs(window, q);
    return Number(us < 0 ? -1 : us / 1000.0, "%.3f");
  };
  return o + ",\"req_per_s\":" + Number(Rate(now.requests, then->requests, dt_ns)) +
         ",\"errors_4xx_per_s\":" + Number(Rate(now.errors_4xx, then->errors_4xx, dt_ns)) +
         ",\"errors_5xx_per_s\":" + Number(Rate(now.errors_5xx, then->errors_5xx, dt_ns)) +
         ",\"window_requests\":" + std::to_string(window[kDurationBuckets]) +
         ",\"p50_ms\":" + ms(0.5) + ",\"p90_ms\":" + ms(0.9) + ",\"p99_ms\":" + ms(0.99);
}

std::string UiData::Render(const UiInput& in) {
  Sample now = Take(in);
  const Sample* base = Base(now);
  const uint64_t dt = base != nullptr ? now.clock_ns - base->clock_ns : 0;
  const auto route = [&](uint32_t key) {
    return RouteJson(RouteIn(now, key), base ? &RouteIn(*base, key) : nullptr, dt);
  };
  std::string o = "{\"clock_ms\":" + std::to_string(in.clock_ns / 1'000'000) +
                  ",\"unix_ms\":" + std::to_string(in.unix_ms) +
                  ",\"role\":" + JsonString(in.role) + ",\"config\":" + JsonString(in.config) +
                  ",\"snapshot\":" + std::to_string(in.snapshot) +
                  ",\"window_s\":" + Number(base ? static_cast<double>(dt) / 1e9 : -1, "%.3f");
  o += ",\"cores\":" + CoresJson(in, now.core_requests, base ? &base->core_requests : nullptr,
                                 base ? &base->core_cpu_ns : nullptr, dt);
  o += ",\"routes\":[";
  for (size_t i = 0; i < in.routes.size(); ++i) {
    const UiRoute& r = in.routes[i];
    o += (i ? ",{" : "{") + std::string("\"service\":") + JsonString(r.service) +
         ",\"route\":" + JsonString(r.route) + "," + route(r.key);
    if (!r.rate_limit.empty()) o += ",\"rate_limit\":" + JsonString(r.rate_limit);
    if (r.has_tokens) o += ",\"tokens_left\":" + std::to_string(r.tokens_left);
    o += "}";
  }
  o += "],\"unmatched\":{" + route(kNoRoute) + "}";
  o += ",\"breakers\":" + BreakersJson(in.metrics.breakers);
  o += ",\"endpoints\":" + EndpointsJson(in.metrics.endpoints);
  o += ",\"refusals\":" + RefusalsJson(in) + "}\n";
  return o;
}

}  // namespace hms::obs
