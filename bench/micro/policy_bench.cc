// Resilience stamps on a core's hot path (docs/resilience.md): what one
// decision costs alone, and with 2 threads sharing one route's bucket.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "hms/core/clock.h"
#include "hms/policy/breaker.h"
#include "hms/policy/rate_limit.h"
#include "hms/policy/retry_budget.h"
#include "hms/policy/token_bucket.h"

namespace {

using namespace hms;

constexpr core::Instant kT0 = 1'000'000'000'000ull;

// The single-owner reference bucket: no shared memory at all.
void BM_TokenBucket_TryTake(benchmark::State& state) {
  policy::TokenBucket b(1'000'000, 1'000'000'000);
  core::Instant now = kT0;
  for (auto _ : state) benchmark::DoNotOptimize(b.TryTake(now += 1000));
}
BENCHMARK(BM_TokenBucket_TryTake);

// Admitted requests: one compare-and-swap on the route's word per request.
// With 2 threads the word's cache line moves between the cores.
policy::RateLimitState* g_shared = nullptr;
void BM_RateLimit_Admit(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_shared = new policy::RateLimitState(policy::Limit{1, 1'000'000'000});
  }
  // A rate of a token per nanosecond and a huge burst: every request is admitted.
  policy::CoreRateLimiter core(g_shared);
  core::Instant now = kT0;
  for (auto _ : state) benchmark::DoNotOptimize(core.TryTake(now += 1000));
}
BENCHMARK(BM_RateLimit_Admit)->Threads(1)->Threads(2)->UseRealTime();

// Refused requests (a flood at an exhausted route): answered from the core's
// remembered refusal, without reading the shared word.
void BM_RateLimit_Refuse(benchmark::State& state) {
  static policy::RateLimitState* shared = nullptr;
  if (state.thread_index() == 0) {
    shared = new policy::RateLimitState(policy::Limit::Every(20, 60'000'000'000ull, 20));
  }
  policy::CoreRateLimiter core(shared);
  core::Instant now = kT0;
  for (int i = 0; i < 20; ++i) (void)core.TryTake(now);
  for (auto _ : state) benchmark::DoNotOptimize(core.TryTake(now += 1));
}
BENCHMARK(BM_RateLimit_Refuse)->Threads(1)->Threads(2)->UseRealTime();

// `per: client_ip`: hash the key, find its slot among 8, take a token.
void BM_RateLimit_Keyed_10kClients(benchmark::State& state) {
  policy::RateLimitState shared(policy::Limit{1, 1'000'000'000}, 16384);
  policy::CoreRateLimiter core(&shared);
  std::vector<std::string> keys;
  for (int i = 0; i < 10'000; ++i)
    keys.push_back("10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256));
  core::Instant now = kT0;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(core.TryTake(now += 1000, keys[i]));
    if (++i == keys.size()) i = 0;
  }
}
BENCHMARK(BM_RateLimit_Keyed_10kClients);

// A closed breaker on every request: one load.
void BM_Breaker_AdmitClosed(benchmark::State& state) {
  static policy::Breaker* b = nullptr;
  if (state.thread_index() == 0) b = new policy::Breaker({3, 30'000'000'000ull});
  core::Instant now = kT0;
  for (auto _ : state) {
    const policy::BreakerAdmission a = b->Admit(now += 1000);
    b->OnSuccess(a.is_probe);
    benchmark::DoNotOptimize(a);
  }
}
BENCHMARK(BM_Breaker_AdmitClosed)->Threads(1)->Threads(2)->UseRealTime();

// Counting a request in the retry budget: a store to the core's own line.
void BM_RetryBudget_OnRequest(benchmark::State& state) {
  static policy::RetryBudget* b = nullptr;
  if (state.thread_index() == 0) b = new policy::RetryBudget(2, {});
  policy::CoreRetryBudget core(b, static_cast<uint32_t>(state.thread_index()));
  core::Instant now = kT0;
  for (auto _ : state) core.OnRequest(now += 1000);
}
BENCHMARK(BM_RetryBudget_OnRequest)->Threads(1)->Threads(2)->UseRealTime();

// A retry decision: sums 2 cores × 10 seconds of counts, then one swap.
void BM_RetryBudget_TryRetry(benchmark::State& state) {
  policy::RetryBudget b(2, {});
  policy::CoreRetryBudget core(&b, 0);
  core::Instant now = kT0;
  for (auto _ : state) {
    core.OnRequest(now += 1000);
    benchmark::DoNotOptimize(core.TryRetry(now));
  }
}
BENCHMARK(BM_RetryBudget_TryRetry);

}  // namespace
BENCHMARK_MAIN();
