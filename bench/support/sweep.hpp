// sweep.hpp — a transport measured over the payload sizes: registers its
// one-way latency benchmarks (busy and parked, header-only and read-all) and
// its throughput benchmarks, with iteration counts that follow the size.
//
//   register_sweep<peers::UdsPeer>({.copies = 2}, max_payload_bytes());
//
// names: BM_OneWay_<kName>/bytes:N/parked:P/read_all:R and
// BM_Stream_<kName>/bytes:N/read_all:R — what bench/report/copy_share.py reads
// (a new peer adds its kName to PATHS there). Each latency benchmark gets
// about kLatencyBudget seconds of messages, estimated from a fixed cost per
// message and the bytes it moves through memory (PathCost), at least 20 and at
// most 20,000 busy / 2,000 parked; SHMBUS_BENCH_SCALE multiplies the counts.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "peers/peer.hpp"
#include "support/one_way.hpp"
#include "support/scale.hpp"

namespace shmbus::bench {

// The payload sizes of every sweep: 64 B, 4 KiB, 64 KiB, 1 MiB, 16 MiB, 64 MiB.
inline constexpr std::size_t kSizes[] = {64, 4u << 10, 64u << 10, 1u << 20, 16u << 20, 64u << 20};

// ---- iteration counts ---------------------------------------------------------------------

// How many bytes a message moves through memory on the way, in payloads: a
// copy path writes it once into the ring; a kernel peer copies it in and out;
// a share path moves none. Reading every byte adds one.
struct PathCost {
  double copies;
};

inline constexpr double kBytesPerSecond =
    10e9;  // memory bandwidth for estimates (memcpy here: ~20 GB/s)
inline constexpr double kLatencyBudget = 0.4;  // seconds of messages per latency benchmark
inline constexpr double kStreamBatchSeconds = 0.05;

[[nodiscard]] inline double message_seconds(PathCost cost, std::size_t bytes, bool read_all,
                                            bool parked) {
  // with the floor round trip, and when parked the two waits for a sleeping child
  const double fixed = parked ? 150e-6 : 2e-6;
  const double copies = cost.copies + (read_all ? 1.0 : 0.0);
  return fixed + copies * static_cast<double>(bytes) / kBytesPerSecond;
}

[[nodiscard]] inline std::int64_t latency_iterations(PathCost cost, std::size_t bytes,
                                                     bool read_all, bool parked) {
  const double n = kLatencyBudget / message_seconds(cost, bytes, read_all, parked);
  const double most = parked ? 2000 : 20000;
  return scaled(static_cast<std::int64_t>(std::clamp(n, 20.0, most)));
}

[[nodiscard]] inline int latency_warmup(std::int64_t iterations, bool parked) {
  return parked ? 20 : static_cast<int>(std::clamp<std::int64_t>(iterations / 10, 8, 500));
}

[[nodiscard]] inline std::int64_t stream_batch(PathCost cost, std::size_t bytes, bool read_all) {
  const double per_message = 0.1e-6 + (cost.copies + (read_all ? 1.0 : 0.0)) *
                                          static_cast<double>(bytes) / kBytesPerSecond;
  return static_cast<std::int64_t>(std::clamp(kStreamBatchSeconds / per_message, 4.0, 16384.0));
}

// ---- registration -------------------------------------------------------------------------

template <class Transport>
void register_sweep(PathCost cost, std::uint64_t max_bytes) {
  const std::string path = Transport::kName;
  for (const std::size_t bytes : kSizes) {
    if (bytes > max_bytes) continue;
    for (const bool parked : {false, true}) {
      for (const bool read_all : {false, true}) {
        const std::string name = "BM_OneWay_" + path + "/bytes:" + std::to_string(bytes) +
                                 "/parked:" + (parked ? "1" : "0") +
                                 "/read_all:" + (read_all ? "1" : "0");
        const std::int64_t iterations = latency_iterations(cost, bytes, read_all, parked);
        const int warmup = latency_warmup(iterations, parked);
        const TransportSpec spec{
            .bytes = bytes, .wait = parked ? PeerWait::park : PeerWait::busy_poll, .stream = false};
        const Read read = read_all ? Read::all : Read::header;
        benchmark::RegisterBenchmark(name.c_str(),
                                     [spec, read, warmup](benchmark::State& state) {
                                       run_latency<Transport>(state, spec, read, warmup);
                                     })
            ->UseManualTime()
            ->Iterations(iterations)
            ->Unit(benchmark::kNanosecond);
      }
    }
  }
  for (const std::size_t bytes : kSizes) {
    if (bytes > max_bytes) continue;
    for (const bool read_all : {false, true}) {
      const std::string name = "BM_Stream_" + path + "/bytes:" + std::to_string(bytes) +
                               "/read_all:" + (read_all ? "1" : "0");
      const std::int64_t batch = stream_batch(cost, bytes, read_all);
      const TransportSpec spec{.bytes = bytes, .wait = PeerWait::busy_poll, .stream = true};
      const Read read = read_all ? Read::all : Read::header;
      benchmark::RegisterBenchmark(name.c_str(),
                                   [spec, read, batch](benchmark::State& state) {
                                     run_stream<Transport>(state, spec, read, batch);
                                   })
          ->UseManualTime()
          ->Iterations(scaled(8))
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace shmbus::bench
