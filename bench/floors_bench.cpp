// floors_bench — what the hardware and the kernel cost, measured in the same run
// as ring_bench, so every shmbus figure can be read as a ratio to its floor.
//
//   BM_CacheLinePingPong  two processes on two cores bounce one cache line each
//                         way through shared memory (tight spin, no pause): the
//                         floor of busy-poll latency.
//   BM_FutexPingPong      the same round trip with both sides truly parked:
//                         FUTEX_WAIT / FUTEX_WAKE on shared (not private) futex
//                         words, each wake made only once the peer is asleep.
//                         The floor of parking latency.
//   BM_Memcpy/64          copying the payload once (a receiver's read_message
//                         copies it into private memory).
//   BM_Pause/1000         what 1000 pause instructions cost on this CPU (the
//                         library's spin-then-park spins for a 10 us time budget,
//                         reading the clock every 32 pauses: wait/futex.hpp).
//
// Latency figures are one-way (round trip / 2), in the manual time column and
// as p50_ns / p99_ns counters from one sample per round trip.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "support/floors.hpp"
#include "support/percentiles.hpp"
#include "support/pin.hpp"
#include "support/scale.hpp"
#include "support/two_process.hpp"

namespace shmbus::bench {
namespace {

constexpr int kWarmupRounds = 2000;

// ---- cache-line ping-pong ------------------------------------------------------------------

int serve_cache_line(CacheLinePair& pair, Control& control) {
  control.set_ready();
  std::uint64_t last = 0;
  while (answer_cache_line(pair, last)) {
  }
  return 0;
}

void BM_CacheLinePingPong(benchmark::State& state) {
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin the parent to CPU 0");
  SharedBlock<CacheLinePair> pair;
  SharedBlock<Control> control;
  ChildProcess child = ChildProcess::start(kChildCpu, [&pair_ref = *pair, &control_ref = *control] {
    return serve_cache_line(pair_ref, control_ref);
  });
  if (auto why = wait_ready(*control, child); !why.empty()) return state.SkipWithError(why.c_str());

  std::uint64_t round = 0;
  bool ok = true;
  for (int i = 0; i < kWarmupRounds && ok; ++i) ok = cache_line_round_trip(*pair, ++round, child);
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    const auto t0 = BenchClock::now();
    ok = ok && cache_line_round_trip(*pair, ++round, child);
    const auto t1 = BenchClock::now();
    if (!ok) {
      state.SkipWithError("the child stopped answering");
      break;
    }
    const double one_way_ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / 2;
    samples.push_back(one_way_ns);
    state.SetIterationTime(one_way_ns * 1e-9);
  }
  stop_cache_line(*pair);
  (void)child.reap();
  state.SetItemsProcessed(state.iterations());
  report_latency(state, samples);
}
BENCHMARK(BM_CacheLinePingPong)
    ->UseManualTime()
    ->Iterations(scaled(200000))
    ->Unit(benchmark::kNanosecond);

// ---- futex ping-pong -----------------------------------------------------------------------

int serve_futex(FutexPair& pair, Control& control) {
  control.set_ready();
  std::uint32_t last = 0;
  while (answer_futex(pair, last, control)) {
  }
  return 0;
}

void BM_FutexPingPong(benchmark::State& state) {
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin the parent to CPU 0");
  SharedBlock<FutexPair> pair;
  SharedBlock<Control> control;
  ChildProcess child = ChildProcess::start(kChildCpu, [&pair_ref = *pair, &control_ref = *control] {
    return serve_futex(pair_ref, control_ref);
  });
  if (auto why = wait_ready(*control, child); !why.empty()) return state.SkipWithError(why.c_str());
  ProcState child_state(child.pid());

  std::uint32_t pong_last = 0;
  BenchClock::duration rtt{};
  bool ok = child_state.ok();
  for (int i = 0; i < kWarmupRounds / 10 && ok; ++i)
    ok = futex_round_trip(*pair, pong_last, child_state, rtt);
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    ok = ok && futex_round_trip(*pair, pong_last, child_state, rtt);
    if (!ok) {
      state.SkipWithError("the child stopped answering (or never parked)");
      break;
    }
    const double one_way_ns = std::chrono::duration<double, std::nano>(rtt).count() / 2;
    samples.push_back(one_way_ns);
    state.SetIterationTime(one_way_ns * 1e-9);
  }
  state.SetLabel(std::string("parked signal: ") + child_state.signal());
  stop_futex(*pair, *control);
  (void)child.reap();
  state.SetItemsProcessed(state.iterations());
  report_latency(state, samples);
}
BENCHMARK(BM_FutexPingPong)
    ->UseManualTime()
    ->Iterations(scaled(20000))
    ->Unit(benchmark::kNanosecond);

// ---- one copy of the payload ---------------------------------------------------------------

void BM_Memcpy(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  std::vector<std::byte> from(bytes, std::byte{0x5a});
  std::vector<std::byte> to(bytes);
  for (auto _ : state) {
    benchmark::DoNotOptimize(from.data());
    std::memcpy(to.data(), from.data(), bytes);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Memcpy)->Arg(64)->MinTime(0.05);

// ---- the cost of a pause instruction ------------------------------------------------------------

void BM_Pause(benchmark::State& state) {
  const auto pauses = state.range(0);
  for (auto _ : state) {
    for (std::int64_t i = 0; i < pauses; ++i) cpu_relax();
  }
  state.counters["seconds_per_pause"] =
      benchmark::Counter(static_cast<double>(state.iterations() * pauses),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Pause)->Arg(1000)->MinTime(0.05)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace shmbus::bench

BENCHMARK_MAIN();
