// The one assertion macro of the C++ tests: report file:line and keep going, so a run lists every
// failure; main() returns non-zero when `failures` > 0.
#pragma once
#include <cstdio>

static int failures = 0;
#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                                    \
    }                                                                                \
  } while (0)
