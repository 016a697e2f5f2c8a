// percentiles.hpp — p50/p99 user counters from recorded samples.
//
// Google Benchmark reports means; latency is judged by its distribution. Each
// two-process latency benchmark records one sample per round trip (one-way =
// round trip / 2, in nanoseconds) and reports them here as user counters.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include <benchmark/benchmark.h>

namespace shmbus::bench {

// The q-quantile (0 … 1) of `samples`, nearest-rank; reorders `samples`.
[[nodiscard]] inline double quantile(std::vector<double>& samples, double q) {
  if (samples.empty()) return 0.0;
  auto rank = static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1) + 0.5);
  rank = std::min(rank, samples.size() - 1);
  std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(rank),
                   samples.end());
  return samples[rank];
}

// Sets p50_ns, p99_ns, p999_ns, min_ns and max_ns (one-way nanoseconds).
inline void report_latency(benchmark::State& state, std::vector<double>& samples) {
  if (samples.empty()) return;
  state.counters["p50_ns"] = quantile(samples, 0.50);
  state.counters["p99_ns"] = quantile(samples, 0.99);
  state.counters["p999_ns"] = quantile(samples, 0.999);
  state.counters["min_ns"] = *std::min_element(samples.begin(), samples.end());
  state.counters["max_ns"] = *std::max_element(samples.begin(), samples.end());
}

}  // namespace shmbus::bench
