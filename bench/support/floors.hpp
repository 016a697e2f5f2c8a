// floors.hpp — the two latency floors, as steps both benchmark programs share.
//
// Cache-line ping-pong: the parent writes `ping`, the child (tight spin, no
// pause: the fastest a poller can notice) copies it into `pong`; one round
// trip moves each line once each way. Futex ping-pong: the same with both
// sides parked in FUTEX_WAIT on shared (not private) futex words, a wake made
// only once the peer has parked — the protocol of the ring's own wake-ups
// (a seq word and a waiters count on one line, as layout::WakeLine).
//
// floors_bench runs each alone; ring_bench interleaves one floor round trip
// with each ring round trip between the same two processes, so a ratio stays
// honest when a virtual machine moves its vCPUs between benchmarks.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>

#include "support/two_process.hpp"

namespace shmbus::bench {

// ---- cache-line ping-pong ------------------------------------------------------------------

struct CacheLinePair {
  alignas(128) std::uint64_t ping;  // written by the parent only
  alignas(128) std::uint64_t pong;  // written by the child only
};

inline constexpr std::uint64_t kStopPing = ~std::uint64_t{0};

// Child: waits (tight spin) for the ping after `last` and answers it. False on
// the stop ping.
[[nodiscard]] inline bool answer_cache_line(CacheLinePair& pair, std::uint64_t& last) noexcept {
  std::uint64_t seen;
  while ((seen = load_acquire(pair.ping)) == last) {
  }
  if (seen == kStopPing) return false;
  last = seen;
  store_release(pair.pong, seen);
  return true;
}

// Parent: round trip number `round` (1, 2, …). False when the child exited
// without answering.
[[nodiscard]] inline bool cache_line_round_trip(CacheLinePair& pair, std::uint64_t round,
                                                ChildProcess& child) {
  store_release(pair.ping, round);
  for (std::uint32_t n = 1; load_acquire(pair.pong) != round; ++n) {
    if ((n & 0xFFFFFu) == 0 && child.exited()) return false;
  }
  return true;
}

inline void stop_cache_line(CacheLinePair& pair) noexcept { store_release(pair.ping, kStopPing); }

// ---- futex ping-pong -----------------------------------------------------------------------

struct FutexWord {
  alignas(128) std::uint32_t seq;  // the futex word: bumped by every wake
  std::uint32_t waiters;           // parked (or about to park) on it
};
struct FutexPair {
  FutexWord ping;  // the child parks here
  FutexWord pong;  // the parent parks here
};

// Shared futex (no FUTEX_PRIVATE_FLAG), as the library's: keyed on the page.
inline void futex_wait(std::uint32_t* word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout) {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  struct timespec rel {};
  rel.tv_sec = static_cast<time_t>(secs.count());
  rel.tv_nsec = static_cast<long>((timeout - secs).count());
  (void)::syscall(SYS_futex, word, FUTEX_WAIT, expected, &rel, nullptr, 0);
}
inline void futex_wake(std::uint32_t* word) {
  (void)::syscall(SYS_futex, word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

// Parks on `w` until its seq differs from `last`, announced in `waiters` first
// (seq_cst increment then re-check: the Dekker pair of the waker's check, as
// the ring's wait_for_data). Returns the new seq, or `last` after `timeout`.
inline std::uint32_t park_until_changed(FutexWord& w, std::uint32_t last,
                                        std::chrono::nanoseconds timeout) {
  using namespace std::chrono_literals;
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

// Bumps the word and wakes one waiter, as the ring's wake_consumers.
inline void wake(FutexWord& w) {
  std::atomic_ref<std::uint32_t>(w.seq).fetch_add(1);
  futex_wake(&w.seq);
}

// Child: parks until the ping after `last`, then answers once the parent has
// announced itself on `pong` (it did so right after its wake, long before
// ours can arrive). False on stop or when the parent stopped.
[[nodiscard]] inline bool answer_futex(FutexPair& pair, std::uint32_t& last,
                                       const Control& control) {
  using namespace std::chrono_literals;
  const std::uint32_t seen = park_until_changed(pair.ping, last, 10s);
  if (seen == last || control.stop_requested()) return false;
  last = seen;
  if (!spin_until([&] { return load_acquire(pair.pong.waiters) != 0; }, 2s)) return false;
  wake(pair.pong);
  return true;
}

// Parent: waits (untimed) until the child sleeps in FUTEX_WAIT on `ping`,
// then times one round trip into `rtt`. False when the child never parked or
// never answered.
[[nodiscard]] inline bool futex_round_trip(FutexPair& pair, std::uint32_t& pong_last,
                                           const ProcState& child_state,
                                           BenchClock::duration& rtt) {
  using namespace std::chrono_literals;
  if (!spin_until([&] { return load_acquire(pair.ping.waiters) != 0 && child_state.parked(); },
                  2s)) {
    return false;
  }
  const auto t0 = BenchClock::now();
  wake(pair.ping);
  const std::uint32_t seen = park_until_changed(pair.pong, pong_last, 2s);
  rtt = BenchClock::now() - t0;
  if (seen == pong_last) return false;
  pong_last = seen;
  return true;
}

// Wakes a child parked in answer_futex so it sees the stop request.
inline void stop_futex(FutexPair& pair, Control& control) {
  control.request_stop();
  wake(pair.ping);
}

}  // namespace shmbus::bench
