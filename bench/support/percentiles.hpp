// percentiles.hpp — p50/p99 user counters from recorded samples.
//
// Google Benchmark reports means; latency is judged by its distribution. Each
// two-process latency benchmark records one sample per round trip (one-way =
// round trip / 2, in nanoseconds; the call benchmarks keep whole round trips)
// and reports them here as user counters.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
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

// Sets <prefix>p50_ns, p99_ns, p999_ns, min_ns and max_ns (one-way nanoseconds).
inline void report_latency(benchmark::State& state, std::vector<double>& samples,
                           const std::string& prefix = "") {
  if (samples.empty()) return;
  state.counters[prefix + "p50_ns"] = quantile(samples, 0.50);
  state.counters[prefix + "p99_ns"] = quantile(samples, 0.99);
  state.counters[prefix + "p999_ns"] = quantile(samples, 0.999);
  state.counters[prefix + "min_ns"] = *std::min_element(samples.begin(), samples.end());
  state.counters[prefix + "max_ns"] = *std::max_element(samples.begin(), samples.end());
}

// As report_latency for `samples`, plus floor_p50_ns / floor_p99_ns from the
// floor round trips interleaved with them, and ratio_p50 / ratio_p99.
inline void report_latency_and_floor(benchmark::State& state, std::vector<double>& samples,
                                     std::vector<double>& floor_samples) {
  if (samples.empty() || floor_samples.empty()) return;
  report_latency(state, samples);
  const double floor_p50 = quantile(floor_samples, 0.50);
  const double floor_p99 = quantile(floor_samples, 0.99);
  state.counters["floor_p50_ns"] = floor_p50;
  state.counters["floor_p99_ns"] = floor_p99;
  if (floor_p50 > 0) state.counters["ratio_p50"] = quantile(samples, 0.50) / floor_p50;
  if (floor_p99 > 0) state.counters["ratio_p99"] = quantile(samples, 0.99) / floor_p99;
}

// For round-trip samples (call benchmarks: ns per round trip, not halved):
// rtt_p50_ns … rtt_max_ns, floor_rtt_p50_ns … from the floor round trips
// interleaved with them, and p50_ratio_to_floor / p99_ratio_to_floor.
inline void report_round_trip_and_floor(benchmark::State& state, std::vector<double>& samples,
                                        std::vector<double>& floor_samples) {
  if (samples.empty() || floor_samples.empty()) return;
  report_latency(state, samples, "rtt_");
  report_latency(state, floor_samples, "floor_rtt_");
  const double floor_p50 = quantile(floor_samples, 0.50);
  const double floor_p99 = quantile(floor_samples, 0.99);
  if (floor_p50 > 0) state.counters["p50_ratio_to_floor"] = quantile(samples, 0.50) / floor_p50;
  if (floor_p99 > 0) state.counters["p99_ratio_to_floor"] = quantile(samples, 0.99) / floor_p99;
}

}  // namespace shmbus::bench
