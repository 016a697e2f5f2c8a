// share_bench — copy vs share: what moving a payload costs between two
// processes on two cores, for payloads of 64 B … 64 MiB, shmbus's three paths
// beside two kernel peers and the floors, all in one run.
//
//   BM_OneWay_<path>/bytes:N/parked:P/read_all:R
//       one-way latency (support/one_way.hpp): t0 before the sender's first
//       step, t1 once the receiver has read the message; one floor round trip
//       (cache-line when busy, futex when parked) interleaved before each
//       message between the same two processes (floor_p50_ns, ratio_p50).
//       parked:0 — the receiver busy-polls (WaitMode::busy_poll; a peer's
//       descriptor is O_NONBLOCK and the reader spins on EAGAIN); parked:1 —
//       it sleeps (WaitMode::park; a blocking read), and every message is
//       sent only once the kernel says the receiver sleeps. read_all:0 — the
//       receiver reads word 0 (the first cache line); read_all:1 — it sums
//       every 64-bit word and checks the sum (support/pattern.hpp).
//   BM_Stream_<path>/bytes:N/read_all:R
//       throughput: batches of messages back to back, busy-polling
//       (msgs_per_s, gb_per_s of payload).
//   BM_MemcpyFloor/bytes:N   one memcpy of the payload (hot buffers), one
//                            process: the floor of the copy path.
//   BM_ReadFloor/bytes:N     summing every word of the payload, one process:
//                            what read_all:1 adds to any path.
//
// Paths: copy (Service::cast of the bytes: copied into a ring cell), uds (a
// Unix domain socket, peers/uds.hpp), pipe (peers/pipe.hpp).
//
// Payload sizes: 64 B, 4 KiB, 64 KiB, 1 MiB, 16 MiB, 64 MiB;
// SHMBUS_BENCH_MAX_BYTES=1M leaves out the larger ones (a quick run), and
// SHMBUS_BENCH_SCALE multiplies every iteration count (support/scale.hpp).
// Iteration counts follow the size: each benchmark gets about 0.4 s of
// messages (at least 10, at most 20,000 busy / 2,000 parked), so the 64 MiB
// copy runs a handful and the whole program a few minutes.
// bench/report/copy_share.py prints the copy-vs-share table and the targets.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "peers/pipe.hpp"
#include "peers/uds.hpp"
#include "support/one_way.hpp"
#include "support/pattern.hpp"
#include "support/percentiles.hpp"
#include "support/scale.hpp"
#include "support/shmbus_paths.hpp"

namespace shmbus::bench {
namespace {

constexpr std::size_t kSizes[] = {64,        4u << 10,  64u << 10,
                                  1u << 20,  16u << 20, 64u << 20};

// ---- iteration counts ---------------------------------------------------------------------

// How many bytes a message moves through memory on the way, in payloads: a
// copy path writes it once into the ring; a kernel peer copies it in and out;
// a share path moves none. Reading every byte adds one.
struct PathCost {
  double copies;
};

constexpr double kBytesPerSecond = 4e9;   // a conservative memory bandwidth for estimates
constexpr double kLatencyBudget = 0.4;    // seconds of messages per latency benchmark
constexpr double kStreamBatchSeconds = 0.05;

[[nodiscard]] double message_seconds(PathCost cost, std::size_t bytes, bool read_all,
                                     bool parked) {
  const double fixed = parked ? 80e-6 : 2e-6;  // with the floor round trip and the park wait
  const double copies = cost.copies + (read_all ? 1.0 : 0.0);
  return fixed + copies * static_cast<double>(bytes) / kBytesPerSecond;
}

[[nodiscard]] std::int64_t latency_iterations(PathCost cost, std::size_t bytes, bool read_all,
                                              bool parked) {
  const double n = kLatencyBudget / message_seconds(cost, bytes, read_all, parked);
  const double most = parked ? 2000 : 20000;
  return scaled(static_cast<std::int64_t>(std::clamp(n, 10.0, most)));
}

[[nodiscard]] int latency_warmup(std::int64_t iterations, bool parked) {
  return parked ? 20 : static_cast<int>(std::clamp<std::int64_t>(iterations / 10, 8, 500));
}

[[nodiscard]] std::int64_t stream_batch(PathCost cost, std::size_t bytes, bool read_all) {
  const double per_message =
      0.1e-6 + (cost.copies + (read_all ? 1.0 : 0.0)) * static_cast<double>(bytes) /
                   kBytesPerSecond;
  return static_cast<std::int64_t>(std::clamp(kStreamBatchSeconds / per_message, 4.0, 16384.0));
}

// ---- registration -------------------------------------------------------------------------

template <class Transport>
void register_path(PathCost cost, std::uint64_t max_bytes) {
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
        const TransportSpec spec{.bytes = bytes,
                                 .wait = parked ? PeerWait::park : PeerWait::busy_poll,
                                 .stream = false};
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

// ---- the floors of one process ------------------------------------------------------------

// Times `op` in samples of `per_sample` calls; reports p50/p99 … per call.
template <class Op>
void time_per_call(benchmark::State& state, std::size_t bytes, std::int64_t per_sample, Op&& op) {
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  for (int i = 0; i < 3; ++i) op();  // warm: caches, TLB
  for (auto _ : state) {
    const auto t0 = BenchClock::now();
    for (std::int64_t i = 0; i < per_sample; ++i) op();
    const double ns =
        std::chrono::duration<double, std::nano>(BenchClock::now() - t0).count() /
        static_cast<double>(per_sample);
    samples.push_back(ns);
    state.SetIterationTime(ns * 1e-9);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
  state.counters["payload_bytes"] = static_cast<double>(bytes);
  state.counters["calls_per_sample"] = static_cast<double>(per_sample);
  report_latency(state, samples);
}

[[nodiscard]] std::int64_t calls_per_sample(std::size_t bytes) {
  return static_cast<std::int64_t>(std::clamp<std::size_t>((64u << 10) / bytes, 1, 1000));
}

void memcpy_floor(benchmark::State& state, std::size_t bytes) {
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin to CPU 0");
  std::vector<std::byte> from(bytes), to(bytes);
  fill_pattern(from);
  fill_pattern(to);
  time_per_call(state, bytes, calls_per_sample(bytes), [&] {
    std::memcpy(to.data(), from.data(), bytes);
    benchmark::ClobberMemory();
  });
}

void read_floor(benchmark::State& state, std::size_t bytes) {
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin to CPU 0");
  std::vector<std::byte> buffer(bytes);
  fill_pattern(buffer);
  time_per_call(state, bytes, calls_per_sample(bytes), [&] {
    std::uint64_t sum = sum_words(buffer);
    benchmark::DoNotOptimize(sum);
  });
}

void register_floors(std::uint64_t max_bytes) {
  for (const std::size_t bytes : kSizes) {
    if (bytes > max_bytes) continue;
    const std::int64_t iterations = scaled(static_cast<std::int64_t>(std::clamp(
        0.2 / (2.0 * static_cast<double>(bytes) / kBytesPerSecond *
               static_cast<double>(calls_per_sample(bytes))),
        20.0, 2000.0)));
    const std::string suffix = "/bytes:" + std::to_string(bytes);
    benchmark::RegisterBenchmark(("BM_MemcpyFloor" + suffix).c_str(),
                                 [bytes](benchmark::State& s) { memcpy_floor(s, bytes); })
        ->UseManualTime()
        ->Iterations(iterations)
        ->Unit(benchmark::kNanosecond);
    benchmark::RegisterBenchmark(("BM_ReadFloor" + suffix).c_str(),
                                 [bytes](benchmark::State& s) { read_floor(s, bytes); })
        ->UseManualTime()
        ->Iterations(iterations)
        ->Unit(benchmark::kNanosecond);
  }
}

}  // namespace
}  // namespace shmbus::bench

int main(int argc, char** argv) {
  using namespace shmbus::bench;
  const std::uint64_t max_bytes = max_payload_bytes();
  register_floors(max_bytes);
  register_path<ShmbusCopy>({.copies = 1}, max_bytes);
  register_path<peers::UdsPeer>({.copies = 2}, max_bytes);
  register_path<peers::PipePeer>({.copies = 2}, max_bytes);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
