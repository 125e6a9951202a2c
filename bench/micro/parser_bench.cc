// HTTP/1.1 parser micro-benchmarks: a ~600-byte browser request (the shape
// picohttpparser's bench uses), a small 3-field request, a response head, and
// chunked decoding of a 64 KiB body in 4 KiB chunks, and the path
// canonicalization every request goes through before routing (a canonical
// path: one scan; a path needing work: the full RFC 3986 normalization).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "hms/http/parser.h"
#include "hms/http/path.h"

namespace {

using hms::http::ChunkedDecoder;
using hms::http::Method;
using hms::http::ParseRequest;
using hms::http::ParseResponse;
using hms::http::RequestHead;
using hms::http::ResponseHead;

constexpr char kBrowserRequest[] =
    "GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n"
    "Host: www.kittyhell.com\r\n"
    "User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_6_3; ja-JP-mac; rv:1.9.2.3) "
    "Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n"
    "Accept-Encoding: gzip,deflate\r\n"
    "Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n"
    "Keep-Alive: 115\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; "
    "__utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; "
    "__utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|utmcct=/reader/|"
    "utmcmd=referral\r\n"
    "\r\n";

constexpr char kSmallRequest[] =
    "GET /sum/1/2 HTTP/1.1\r\n"
    "Host: calc-svc\r\n"
    "User-Agent: wrk\r\n"
    "Accept: */*\r\n"
    "\r\n";

constexpr char kResponse[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 17\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    "Server: uvicorn\r\n"
    "\r\n";

// The machine is shared: the fastest repetition is the least disturbed one,
// so every benchmark reports a "min" aggregate beside mean and median.
double Min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

void RunParseRequest(benchmark::State& state, const char* req, size_t len) {
  auto head = std::make_unique<RequestHead>();
  for (auto _ : state) {
    benchmark::DoNotOptimize(req);
    const int rc = ParseRequest(req, len, 8192, head.get());
    if (rc != static_cast<int>(len)) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(rc);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * len));
}

void BM_ParseRequest_Browser(benchmark::State& state) {
  RunParseRequest(state, kBrowserRequest, sizeof(kBrowserRequest) - 1);
}
BENCHMARK(BM_ParseRequest_Browser)->ComputeStatistics("min", Min);

void BM_ParseRequest_Small(benchmark::State& state) {
  RunParseRequest(state, kSmallRequest, sizeof(kSmallRequest) - 1);
}
BENCHMARK(BM_ParseRequest_Small)->ComputeStatistics("min", Min);

void BM_ParseResponse(benchmark::State& state) {
  auto head = std::make_unique<ResponseHead>();
  constexpr size_t kLen = sizeof(kResponse) - 1;
  for (auto _ : state) {
    const char* p = kResponse;
    benchmark::DoNotOptimize(p);
    const int rc = ParseResponse(p, kLen, 8192, Method::kGet, head.get());
    if (rc != static_cast<int>(kLen)) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(rc);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_ParseResponse)->ComputeStatistics("min", Min);

void BM_ChunkedDecode(benchmark::State& state) {
  const size_t chunk = static_cast<size_t>(state.range(0));
  constexpr size_t kTotal = 64 * 1024;
  std::string body;
  char line[32];
  for (size_t at = 0; at < kTotal; at += chunk) {
    std::snprintf(line, sizeof(line), "%zx;ext=1\r\n", chunk);
    body += line;
    body.append(chunk, 'd');
    body += "\r\n";
  }
  body += "0\r\nX-Trailer: t\r\n\r\n";
  for (auto _ : state) {
    ChunkedDecoder dec;
    ChunkedDecoder::Step step;
    size_t pos = 0;
    while (!dec.done()) {
      if (!dec.Next(body.data() + pos, body.size() - pos, &step) || step.consumed == 0) {
        state.SkipWithError("decode failed");
        break;
      }
      pos += step.consumed;
    }
    benchmark::DoNotOptimize(dec.data_bytes());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_ChunkedDecode)->Arg(64)->Arg(4096)->ComputeStatistics("min", Min);

// CanonicalizeTarget on a parsed request: what StartExchange pays per request.
void RunCanonicalize(benchmark::State& state, const char* req) {
  auto head = std::make_unique<RequestHead>();
  const size_t len = std::strlen(req);
  if (ParseRequest(req, len, 8192, head.get()) != static_cast<int>(len)) {
    state.SkipWithError("parse failed");
    return;
  }
  std::vector<char> scratch(head->target.size() + 1);
  hms::http::CanonicalTarget t;
  hms::http::PathError e;
  for (auto _ : state) {
    benchmark::DoNotOptimize(head.get());
    const bool ok = hms::http::CanonicalizeTarget(*head, hms::http::PathOptions{}, scratch.data(),
                                                  scratch.size(), &t, &e);
    if (!ok) state.SkipWithError("refused");
    benchmark::DoNotOptimize(t);
    benchmark::ClobberMemory();
  }
}

// A typical API path, already canonical: the fast scan only.
void BM_CanonicalPath_Canonical(benchmark::State& state) {
  RunCanonicalize(state, "GET /api/v1/users/12345/orders?limit=20 HTTP/1.1\r\nHost: h\r\n\r\n");
}
BENCHMARK(BM_CanonicalPath_Canonical)->ComputeStatistics("min", Min);

// The browser request's 62-byte path (no query), already canonical.
void BM_CanonicalPath_CanonicalLong(benchmark::State& state) {
  RunCanonicalize(state, kBrowserRequest);
}
BENCHMARK(BM_CanonicalPath_CanonicalLong)->ComputeStatistics("min", Min);

// A path needing every kind of work: escapes to decode and upper-case, dot
// segments, a repeated slash; the query is copied after it.
void BM_CanonicalPath_NeedsWork(benchmark::State& state) {
  RunCanonicalize(state,
                  "GET /api/v1/./users//%31%32345/x/../orders%3f?limit=20 HTTP/1.1\r\nHost: h\r\n\r\n");
}
BENCHMARK(BM_CanonicalPath_NeedsWork)->ComputeStatistics("min", Min);

}  // namespace

BENCHMARK_MAIN();
