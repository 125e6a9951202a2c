// A core's shared tools for unit tests of a room (src/proxy/core_context.h)
// without a running core: the ring and the buffer ring are never set up, so
// a room under test may arm timers and count metrics but must not submit.
#pragma once

#include <cstdint>

#include "hms/config/config.h"
#include "hms/core/block_pool.h"
#include "hms/core/clock.h"
#include "hms/core/ring.h"
#include "hms/core/timer_wheel.h"
#include "hms/obs/metrics.h"
#include "src/proxy/connection.h"
#include "src/proxy/core_context.h"

namespace hms::proxy {

struct TestCore {
  explicit TestCore(uint32_t index = 0, uint32_t cores = 1) : index(index), cores(cores) {}

  const uint32_t index;  // this core, of `cores`
  const uint32_t cores;
  config::GatewayConfig config;
  core::Ring ring;
  core::BufferRing buffers;
  core::BlockPool blocks{16384};
  InputStore inputs{buffers, blocks};
  core::Instant now = core::Millis(1'000'000);
  core::TimerWheel timers{now};
  obs::CoreMetrics metrics;
  bool draining = false;
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  CoreContext ctx{ring, buffers, blocks,   inputs, timers, metrics,
                  now,  config,  draining, rng,    index,  cores};
};

}  // namespace hms::proxy
