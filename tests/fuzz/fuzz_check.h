// Shared by the fuzz targets (docs/fuzzing.md): a property that must hold
// for every input. It aborts in every build type (assert() is compiled out
// in release builds, where the replay tests run), so libFuzzer records the
// input as a crash and the replay driver fails.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
