// Fuzz target: the RESP2 reply reader (include/hms/fleet/resp.h) and the Redis
// client that feeds it (include/hms/fleet/redis_client.h): Redis's replies
// are outside bytes.
//
// Input layout: byte 0 is where the client's input is split in two (times
// the length / 256); the rest is the reply stream.
//
// Beyond "no crash, no overread": a reply's views lie inside the input and
// its stored elements never exceed its count or kMaxElements; every prefix of
// a complete reply is kPartial and a prefix never claims a complete reply
// when the whole is an error; the client completes each call at most once,
// whatever the split, and fails with a reason.
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "hms/fleet/gcra_script.h"
#include "hms/fleet/redis_client.h"
#include "hms/fleet/resp.h"

namespace {

using hms::fleet::Element;
using hms::fleet::ReplyType;

bool Inside(std::string_view v, std::string_view in) {
  return v.empty() || (v.data() >= in.data() && v.data() + v.size() <= in.data() + in.size());
}

void CheckElement(const Element& e, std::string_view in) {
  FUZZ_CHECK(Inside(e.text, in));
  if (e.type == ReplyType::kArray) FUZZ_CHECK(e.integer >= 0);
}

void CheckReader(std::string_view in) {
  hms::fleet::Reply r;
  const int whole = hms::fleet::ParseReply(in, &r);
  FUZZ_CHECK(whole == hms::fleet::kPartial || whole == hms::fleet::kError || whole > 0);
  if (whole > 0) {
    FUZZ_CHECK(static_cast<size_t>(whole) <= in.size());
    CheckElement(r.top, in);
    if (r.top.type == ReplyType::kArray) {
      FUZZ_CHECK(r.stored <= hms::fleet::kMaxElements);
      FUZZ_CHECK(static_cast<int64_t>(r.stored) <= r.top.integer);
    } else {
      FUZZ_CHECK(r.stored == 0);
    }
    for (uint32_t i = 0; i < r.stored; ++i) CheckElement(r.elements[i], in);
  }
  // Prefixes, at most 64 of them spread over the input (a full sweep is
  // quadratic; the unit tests sweep every byte of their cases).
  const size_t end = whole > 0 ? static_cast<size_t>(whole) : in.size();
  const size_t step = end / 64 + 1;
  for (size_t cut = 0; cut < end; cut += step) {
    hms::fleet::Reply p;
    const int n = hms::fleet::ParseReply(in.substr(0, cut), &p);
    if (whole == hms::fleet::kError) {
      FUZZ_CHECK(n == hms::fleet::kPartial || n == hms::fleet::kError);
    } else {
      FUZZ_CHECK(n == hms::fleet::kPartial);
    }
  }
}

void CheckClient(std::string_view in, size_t cut) {
  hms::fleet::ClientOptions o;
  o.password = "pw";
  o.buffer_bytes = 4096;
  o.max_in_flight = 4;
  static auto* client = new hms::fleet::RedisClient(o, hms::fleet::kGcraScript);
  hms::fleet::RedisClient& c = *client;
  c.Connected(1);
  const int64_t args[] = {1000, 10, 2};
  uint32_t calls = 0;
  for (uint64_t tag = 1; tag <= 4; ++tag) calls += c.Call(tag, "k", args, 1) ? 1 : 0;
  c.Sent(c.Output().size());
  c.Received(in.substr(0, cut), 2);
  c.Received(in.substr(cut), 3);
  c.Tick(4);
  uint32_t completions = 0;
  uint64_t seen = 0;
  hms::fleet::Completion done;
  while (c.PopCompletion(&done)) {
    ++completions;
    FUZZ_CHECK(done.tag >= 1 && done.tag <= 4);
    FUZZ_CHECK((seen & (1u << done.tag)) == 0);  // once per call
    seen |= 1u << done.tag;
    FUZZ_CHECK(done.count <= hms::fleet::kMaxCallArgs);
  }
  FUZZ_CHECK(completions <= calls);
  if (c.state() == hms::fleet::RedisClient::State::kFailed) {
    FUZZ_CHECK(c.failure() != hms::fleet::CallStatus::kOk);
  }
  c.Disconnected();
  while (c.PopCompletion(&done)) ++completions;
  FUZZ_CHECK(completions <= calls);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t cut = 0;
  if (size > 0) {
    cut = data[0];
    ++data;
    --size;
  }
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  cut = cut * size / 256;
  CheckReader(in);
  CheckClient(in, cut);
  return 0;
}
