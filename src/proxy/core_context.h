// What a room of the data path is given of its core: references to the
// core's shared tools (the ring, the provided-buffer ring, the block pool,
// the input store, the timer wheel, the metrics), the pass's time, the
// tuning the core started with, and who the core is. A room (the fleet's
// Redis link, the health checks) keeps its own state and completion switch
// and reaches the core through this, not through the whole Worker.
//
// Made once by the Worker before its thread starts and bound to its members
// for the worker's life; read and used by that core's thread only. Holding
// references, it copies nothing and allocates nothing.
#pragma once

#include <cstdint>

#include "hms/config/config.h"
#include "hms/core/block_pool.h"
#include "hms/core/clock.h"
#include "hms/core/ring.h"
#include "hms/core/timer_wheel.h"
#include "hms/obs/metrics.h"
#include "src/proxy/connection.h"

namespace hms::proxy {

// xorshift64*: backoff jitter and load-balancing picks, not secrets.
inline uint64_t NextRandom(uint64_t* state) noexcept {
  uint64_t& s = *state;
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 0x2545F4914F6CDD1Dull;
}

struct CoreContext {
  core::Ring& ring;
  core::BufferRing& buffers;
  core::BlockPool& blocks;
  InputStore& inputs;  // what connections received and hold
  core::TimerWheel& timers;
  obs::CoreMetrics& metrics;
  const core::Instant& now;             // the pass's monotonic time (one pass, one time)
  const config::GatewayConfig& config;  // the tuning this core was started with
  const bool& draining;                 // the core drains: nothing new is started
  uint64_t& rng;                        // the core's one random state (NextRandom)
  uint32_t index;                       // this core, of `cores`
  uint32_t cores;

  uint64_t Random() const noexcept { return NextRandom(&rng); }
};

}  // namespace hms::proxy
