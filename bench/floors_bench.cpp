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
//   BM_SpinBudget         what the library's spin-then-park budget (2000 pause
//                         instructions, wait/ and mailbox.cpp) lasts on this CPU.
//
// Latency figures are one-way (round trip / 2), in the manual time column and
// as p50_ns / p99_ns counters from one sample per round trip.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <vector>

#include <benchmark/benchmark.h>

#include "support/percentiles.hpp"
#include "support/pin.hpp"
#include "support/scale.hpp"
#include "support/two_process.hpp"

namespace shmbus::bench {
namespace {

using namespace std::chrono_literals;

constexpr int kWarmupRounds = 2000;

// ---- cache-line ping-pong ------------------------------------------------------------------

struct CacheLinePair {
  alignas(128) std::uint64_t ping;  // written by the parent only
  alignas(128) std::uint64_t pong;  // written by the child only
};

constexpr std::uint64_t kStopPing = ~std::uint64_t{0};

int serve_cache_line(CacheLinePair& pair, Control& control) {
  control.set_ready();
  std::uint64_t last = 0;
  for (;;) {
    std::uint64_t seen;
    while ((seen = load_acquire(pair.ping)) == last) {
    }
    if (seen == kStopPing) return 0;
    last = seen;
    store_release(pair.pong, seen);
  }
}

void BM_CacheLinePingPong(benchmark::State& state) {
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin the parent to CPU 0");
  SharedBlock<CacheLinePair> pair;
  SharedBlock<Control> control;
  ChildProcess child = ChildProcess::start(
      kChildCpu, [&pair_ref = *pair, &control_ref = *control] { return serve_cache_line(pair_ref, control_ref); });
  if (auto why = wait_ready(*control, child); !why.empty()) return state.SkipWithError(why.c_str());

  std::uint64_t round = 0;
  // One round trip; false when the child stopped answering.
  const auto round_trip = [&]() -> bool {
    ++round;
    store_release(pair->ping, round);
    for (std::uint32_t n = 1; load_acquire(pair->pong) != round; ++n) {
      if ((n & 0xFFFFFu) == 0 && child.exited()) return false;
    }
    return true;
  };

  bool ok = true;
  for (int i = 0; i < kWarmupRounds && ok; ++i) ok = round_trip();
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    const auto t0 = BenchClock::now();
    ok = ok && round_trip();
    const auto t1 = BenchClock::now();
    if (!ok) {
      state.SkipWithError("the child stopped answering");
      break;
    }
    const double one_way_ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / 2;
    samples.push_back(one_way_ns);
    state.SetIterationTime(one_way_ns * 1e-9);
  }
  store_release(pair->ping, kStopPing);
  (void)child.reap();
  state.SetItemsProcessed(state.iterations());
  report_latency(state, samples);
}
BENCHMARK(BM_CacheLinePingPong)->UseManualTime()->Iterations(scaled(200000))->Unit(benchmark::kNanosecond);

// ---- futex ping-pong -----------------------------------------------------------------------

// As layout::WakeLine: a futex word and its waiter count share a line.
struct FutexWord {
  alignas(128) std::uint32_t seq;
  std::uint32_t waiters;
};
struct FutexPair {
  FutexWord ping;  // the child parks here
  FutexWord pong;  // the parent parks here
};

// Shared futex (no FUTEX_PRIVATE_FLAG), as the library's: keyed on the page.
void futex_wait(std::uint32_t* word, std::uint32_t expected, std::chrono::nanoseconds timeout) {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  struct timespec rel {};
  rel.tv_sec = static_cast<time_t>(secs.count());
  rel.tv_nsec = static_cast<long>((timeout - secs).count());
  (void)::syscall(SYS_futex, word, FUTEX_WAIT, expected, &rel, nullptr, 0);
}
void futex_wake(std::uint32_t* word) {
  (void)::syscall(SYS_futex, word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

// Parks on `w` until its seq differs from `last`, announcing itself in
// `waiters` first (the Dekker pair of the waker's waiters check, as the ring's
// wait_for_data). Returns the new seq, or `last` after `timeout`.
std::uint32_t park_until_changed(FutexWord& w, std::uint32_t last, std::chrono::nanoseconds timeout) {
  const auto until = BenchClock::now() + timeout;
  std::atomic_ref<std::uint32_t>(w.waiters).fetch_add(1);
  std::uint32_t seen;
  while ((seen = std::atomic_ref<std::uint32_t>(w.seq).load()) == last) {
    if (BenchClock::now() >= until) break;
    futex_wait(&w.seq, last, 100ms);
  }
  std::atomic_ref<std::uint32_t>(w.waiters).fetch_sub(1);
  return seen;
}

// Bumps the word and wakes one waiter (only called once the peer has parked).
void wake(FutexWord& w) {
  std::atomic_ref<std::uint32_t>(w.seq).fetch_add(1);
  futex_wake(&w.seq);
}

int serve_futex(FutexPair& pair, Control& control) {
  control.set_ready();
  std::uint32_t last = 0;
  for (;;) {
    const std::uint32_t seen = park_until_changed(pair.ping, last, 10s);
    if (seen == last || control.stop_requested()) return 0;
    last = seen;
    // Answer only once the parent is parked too (at least announced: it
    // announced itself right after its wake, long before ours arrives).
    if (!spin_until([&] { return load_acquire(pair.pong.waiters) != 0; }, 2s)) return 1;
    wake(pair.pong);
  }
}

void BM_FutexPingPong(benchmark::State& state) {
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin the parent to CPU 0");
  SharedBlock<FutexPair> pair;
  SharedBlock<Control> control;
  ChildProcess child = ChildProcess::start(
      kChildCpu, [&pair_ref = *pair, &control_ref = *control] { return serve_futex(pair_ref, control_ref); });
  if (auto why = wait_ready(*control, child); !why.empty()) return state.SkipWithError(why.c_str());
  ProcState child_state(child.pid());

  std::uint32_t pong_last = 0;
  // Waits (untimed) until the child is asleep in FUTEX_WAIT, then one round trip.
  const auto round_trip = [&](BenchClock::time_point& t0, BenchClock::time_point& t1) -> bool {
    if (!spin_until([&] { return load_acquire(pair->ping.waiters) != 0 && child_state.parked(); },
                    2s)) {
      return false;
    }
    t0 = BenchClock::now();
    wake(pair->ping);
    const std::uint32_t seen = park_until_changed(pair->pong, pong_last, 2s);
    t1 = BenchClock::now();
    if (seen == pong_last) return false;
    pong_last = seen;
    return true;
  };

  bool ok = child_state.ok();
  BenchClock::time_point t0, t1;
  for (int i = 0; i < kWarmupRounds / 10 && ok; ++i) ok = round_trip(t0, t1);
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    ok = ok && round_trip(t0, t1);
    if (!ok) {
      state.SkipWithError("the child stopped answering (or never parked)");
      break;
    }
    const double one_way_ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / 2;
    samples.push_back(one_way_ns);
    state.SetIterationTime(one_way_ns * 1e-9);
  }
  state.SetLabel(std::string("parked signal: ") + child_state.signal());
  control->request_stop();
  wake(pair->ping);
  (void)child.reap();
  state.SetItemsProcessed(state.iterations());
  report_latency(state, samples);
}
BENCHMARK(BM_FutexPingPong)->UseManualTime()->Iterations(scaled(10000))->Unit(benchmark::kNanosecond);

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

// ---- the spin-then-park budget ------------------------------------------------------------

void BM_SpinBudget(benchmark::State& state) {
  const auto pauses = state.range(0);
  for (auto _ : state) {
    for (std::int64_t i = 0; i < pauses; ++i) cpu_relax();
  }
  state.counters["seconds_per_pause"] = benchmark::Counter(
      static_cast<double>(state.iterations() * pauses),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SpinBudget)->Arg(2000)->MinTime(0.05)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace shmbus::bench

BENCHMARK_MAIN();
