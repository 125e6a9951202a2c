// The fleet rate limit's one Redis script (docs/resilience.md, "Fleet scope"):
// GCRA over one key, run atomically by Redis in one round trip. Constant
// text; any thread.
//
//   EVAL(SHA) <script> 1 KEY interval_us burst want
//
// KEY holds the bucket's "theoretical arrival time" (TAT, µs on Redis's own
// clock, read with TIME inside the script, so the gateways' clocks never
// matter). A token is due every interval_us; at most `burst` are banked. The
// script grants the largest n <= want that fits (the lease: n = 0 when the
// bucket is empty) and answers an array of three integers:
//
//   {granted, retry_after_us, reset_us}
//
// retry_after_us: until the next token is due (0 when one is available now);
// reset_us: until the bucket is full again. The key expires when the bucket is
// full, so idle limits cost Redis nothing. Arguments out of range answer an
// error ("ERR gcra: ...").
#pragma once

#include <string_view>

namespace hms::fleet {

inline constexpr std::string_view kGcraScript = R"lua(
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
if not interval or interval < 1 or not burst or burst < 1 or not want or want < 0 then
  return redis.error_reply('ERR gcra: want interval_us >= 1, burst >= 1, want >= 0')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then tat = now end
local room = math.floor((now + burst * interval - tat) / interval)
local granted = math.min(want, math.max(room, 0))
if granted > 0 then
  tat = tat + granted * interval
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX',
             string.format('%d', math.ceil((tat - now) / 1000) + 1))
end
local retry = tat + interval - burst * interval - now
if retry < 0 then retry = 0 end
return {granted, retry, tat - now}
)lua";

}  // namespace hms::fleet
