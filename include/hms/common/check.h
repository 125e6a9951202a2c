// HMS_CHECK: impossible states crash loudly (STYLE §2), in every build type.
#pragma once

#include <cstdio>
#include <cstdlib>

#define HMS_CHECK(cond)                                                                    \
  do {                                                                                     \
    if (__builtin_expect(!(cond), 0)) {                                                    \
      std::fprintf(stderr, "%s:%d: HMS_CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)
