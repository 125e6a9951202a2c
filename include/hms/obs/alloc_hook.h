// Counting heap allocations per core (STYLE §4: a test asserts none on the
// steady-state data path). hms-gateway's operator new bumps the counter of the
// calling thread, if that thread registered one; cores register
// CoreMetrics::heap_allocations at start.
#pragma once

#include "hms/obs/metrics.h"

namespace hms::obs {

inline thread_local Counter* g_thread_alloc_counter = nullptr;

}  // namespace hms::obs
