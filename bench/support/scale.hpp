// scale.hpp — iteration counts of the two-process benchmarks.
//
// Two-process benchmarks run a fixed number of iterations (one fork per
// benchmark, no Google Benchmark re-runs to estimate a count), sized so the
// whole suite's default run stays well under two minutes. SHMBUS_BENCH_SCALE
// (a positive number, default 1) multiplies every count, e.g. 10 for a final
// report taken on a quiet machine. SHMBUS_BENCH_MAX_BYTES (a byte count,
// with an optional K, M or G suffix: "1M") leaves out the payload sizes above
// it, for a quick run of the size sweeps.
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

// The largest payload a size sweep runs (SHMBUS_BENCH_MAX_BYTES), or `fallback`.
[[nodiscard]] inline std::uint64_t max_payload_bytes(std::uint64_t fallback = ~std::uint64_t{0}) {
  const char* text = std::getenv("SHMBUS_BENCH_MAX_BYTES");
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const double parsed = std::strtod(text, &end);
  if (end == text || parsed <= 0) return fallback;
  double unit = 1;
  switch (*end) {
    case 'k': case 'K': unit = 1024.0; break;
    case 'm': case 'M': unit = 1024.0 * 1024; break;
    case 'g': case 'G': unit = 1024.0 * 1024 * 1024; break;
    default: break;
  }
  return static_cast<std::uint64_t>(parsed * unit);
}

}  // namespace shmbus::bench
