// scale.hpp — iteration counts of the two-process benchmarks.
//
// Two-process benchmarks run a fixed number of iterations (one fork per
// benchmark, no Google Benchmark re-runs to estimate a count), sized so the
// whole suite's default run stays well under two minutes. SHMBUS_BENCH_SCALE
// (a positive number, default 1) multiplies every count, e.g. 10 for a final
// report taken on a quiet machine.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>

namespace shmbus::bench {

[[nodiscard]] inline std::int64_t scaled(std::int64_t iterations) {
  double scale = 1.0;
  if (const char* text = std::getenv("SHMBUS_BENCH_SCALE")) {
    const double parsed = std::strtod(text, nullptr);
    if (parsed > 0) scale = parsed;
  }
  return std::max<std::int64_t>(1,
                                static_cast<std::int64_t>(static_cast<double>(iterations) * scale));
}

}  // namespace shmbus::bench
