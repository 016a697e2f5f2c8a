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
//   BM_StateGet/bytes:N      state.get(key) of a value of N bytes, one process,
//                            batches of 1,000 gets: ns per get (target < 100 ns).
//
// Paths (support/shmbus_paths.hpp, peers/): copy (Service::cast of the bytes:
// copied into a ring cell), loan (a blob-pool block written in place, cast by
// reference), state (a StateRef in a 64-byte record, resolved and read in
// place), uds (a Unix domain socket), pipe. The three shmbus paths go through
// the same untyped service, so they differ only by how the payload travels.
//
// Payload sizes: 64 B, 4 KiB, 64 KiB, 1 MiB, 16 MiB, 64 MiB;
// SHMBUS_BENCH_MAX_BYTES=1M leaves out the larger ones (a quick run), and
// SHMBUS_BENCH_SCALE multiplies every iteration count (support/scale.hpp).
// Iteration counts follow the size: each benchmark gets about 0.4 s of
// messages (at least 20, at most 20,000 busy / 2,000 parked), so the 64 MiB
// copy runs a handful and the whole program a few minutes.
// bench/report/copy_share.py prints the copy-vs-share table and the targets.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "peers/pipe.hpp"
#include "peers/uds.hpp"
#include "support/one_way.hpp"
#include "support/pattern.hpp"
#include "support/percentiles.hpp"
#include "support/scale.hpp"
#include "support/shmbus_paths.hpp"
#include "support/state_path.hpp"
#include "support/sweep.hpp"

namespace shmbus::bench {
namespace {

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
    const double ns = std::chrono::duration<double, std::nano>(BenchClock::now() - t0).count() /
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

constexpr std::int64_t kGetsPerSample = 1000;

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

// state.get(key) of a value of `bytes`, in batches of 1,000 gets (one clock
// read costs tens of ns here): ns per get. Each get pins the version and its
// view unpins it when it goes, as a reader's get-use-drop does.
void state_get(benchmark::State& state, std::size_t bytes) {
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin to CPU 0");
  const std::string name = unique_bus_name();
  CreateOptions options;
  options.label = "bench-state-get";
  options.max_processes = 8;
  options.max_in_flight = 4;
  options.state_capacity = kShareStateCapacity;
  auto bus = Bus::create(name, options);
  if (!bus) return state.SkipWithError(bus.error().message().c_str());
  struct Remove {
    std::string name;
    ~Remove() { (void)Bus::remove(name); }
  } remove{name};
  {
    auto writer = bus->state(StateAccess::read_write);
    if (!writer) return state.SkipWithError(writer.error().message().c_str());
    auto put = writer->begin_put("value", bytes);
    if (!put) return state.SkipWithError(put.error().message().c_str());
    fill_pattern(put->bytes());
    if (auto ref = put->publish(); !ref) return state.SkipWithError(ref.error().message().c_str());
  }
  auto reader = bus->state(StateAccess::read_only);
  if (!reader) return state.SkipWithError(reader.error().message().c_str());
  bool all_found = true;
  time_per_call(state, bytes, kGetsPerSample, [&] {
    auto view = reader->get("value");
    all_found = all_found && view.has_value() && view->bytes().size() == bytes;
    if (view) benchmark::DoNotOptimize(view->bytes().data());
  });
  if (!all_found) state.SkipWithError("a get failed or returned another size");
}

void register_floors(std::uint64_t max_bytes) {
  for (const std::size_t bytes : kSizes) {
    if (bytes > max_bytes) continue;
    const std::int64_t iterations = scaled(static_cast<std::int64_t>(
        std::clamp(0.2 / (2.0 * static_cast<double>(bytes) / kBytesPerSecond *
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

void register_state_get(std::uint64_t max_bytes) {
  for (const std::size_t bytes : kSizes) {
    if (bytes > max_bytes) continue;
    benchmark::RegisterBenchmark(("BM_StateGet/bytes:" + std::to_string(bytes)).c_str(),
                                 [bytes](benchmark::State& s) { state_get(s, bytes); })
        ->UseManualTime()
        ->Iterations(scaled(2000))
        ->Unit(benchmark::kNanosecond);
  }
}

}  // namespace
}  // namespace shmbus::bench

int main(int argc, char** argv) {
  using namespace shmbus::bench;
  const std::uint64_t max_bytes = max_payload_bytes();
  register_floors(max_bytes);
  register_state_get(max_bytes);
  register_sweep<ShmbusCopy>({.copies = 1}, max_bytes);
  register_sweep<ShmbusLoan>({.copies = 0}, max_bytes);
  register_sweep<ShmbusState>({.copies = 0}, max_bytes);
  register_sweep<peers::UdsPeer>({.copies = 2}, max_bytes);
  register_sweep<peers::PipePeer>({.copies = 2}, max_bytes);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
