// Fleet-scope pieces off the network (docs/resilience.md, "Fleet scope"): the
// cost a core pays per lease call besides the round trip to Redis, and per
// request on the leased path.
#include <benchmark/benchmark.h>

#include <string>

#include "hms/fleet/gcra_script.h"
#include "hms/fleet/redis_client.h"
#include "hms/fleet/resp.h"
#include "hms/policy/lease.h"

namespace {

using hms::core::Instant;

void BM_Resp_ParseGcraReply(benchmark::State& state) {
  const std::string reply = "*3\r\n:16\r\n:0\r\n:2999817\r\n";
  hms::fleet::Reply r;
  for (auto _ : state) {
    benchmark::DoNotOptimize(hms::fleet::ParseReply(reply, &r));
    benchmark::DoNotOptimize(r.elements[0].integer);
  }
}
BENCHMARK(BM_Resp_ParseGcraReply);

void BM_Resp_WriteEvalsha(benchmark::State& state) {
  const std::string sha(40, 'a');
  char out[256];
  const hms::fleet::Arg args[] = {"EVALSHA", sha, "1", "hms:rl:calc-svc:/sum/{a}/{b}",
                                  hms::fleet::Arg::Int(3'000'000), hms::fleet::Arg::Int(20),
                                  hms::fleet::Arg::Int(16)};
  for (auto _ : state) benchmark::DoNotOptimize(hms::fleet::WriteCommand(args, out));
}
BENCHMARK(BM_Resp_WriteEvalsha);

// One lease call through the client: queue it, take the bytes, feed the
// reply, pop the completion.
void BM_RedisClient_CallAndReply(benchmark::State& state) {
  hms::fleet::RedisClient c(hms::fleet::ClientOptions{}, hms::fleet::kGcraScript);
  c.Connected(1);
  c.Sent(c.Output().size());
  c.Received("$40\r\n" + std::string(40, 'a') + "\r\n", 1);
  const std::string reply = "*3\r\n:16\r\n:0\r\n:2999817\r\n";
  const int64_t args[] = {3'000'000, 20, 16};
  hms::fleet::Completion done;
  uint64_t tag = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(c.Call(++tag, "hms:rl:calc-svc:/sum/{a}/{b}", args, 2));
    c.Sent(c.Output().size());
    c.Received(reply, 2);
    benchmark::DoNotOptimize(c.PopCompletion(&done));
  }
}
BENCHMARK(BM_RedisClient_CallAndReply);

// A request admitted from the core's leased stock.
void BM_Lease_TakeFromStock(benchmark::State& state) {
  hms::policy::LeaseParams p;
  hms::policy::CoreLease l;
  Instant now = 1'000'000'000;
  for (auto _ : state) {
    if (l.tokens == 0) l.tokens = 1'000'000, l.tokens_until = UINT64_MAX;
    benchmark::DoNotOptimize(hms::policy::TakeToken(l, now, p));
    benchmark::DoNotOptimize(hms::policy::StartAsk(l, now, p));
    now += 1000;
  }
}
BENCHMARK(BM_Lease_TakeFromStock);

}  // namespace

BENCHMARK_MAIN();
