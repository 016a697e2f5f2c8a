#include "wait/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <ctime>

namespace shmbus::detail {

void futex_wait(const std::uint32_t* word, std::uint32_t expected, Deadline deadline) noexcept {
  const auto since_epoch = deadline.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  struct timespec at {};
  at.tv_sec = static_cast<time_t>(secs.count());
  at.tv_nsec = static_cast<long>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs).count());
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, which is
  // steady_clock's clock on Linux: no drift from re-computing relative waits.
  // Deadline::max(): wait without a timeout (an idle waiter never wakes on a timer).
  const bool forever = deadline == Deadline::max();
  (void)::syscall(SYS_futex, const_cast<std::uint32_t*>(word), FUTEX_WAIT_BITSET, expected,
                  forever ? nullptr : &at, nullptr, FUTEX_BITSET_MATCH_ANY);
}

void ring_all(std::uint32_t& word) noexcept {
  std::atomic_ref<std::uint32_t>(word).fetch_add(1, std::memory_order_seq_cst);
  futex_wake(&word, INT_MAX);
}

void futex_wake(const std::uint32_t* word, int count) noexcept {
  (void)::syscall(SYS_futex, const_cast<std::uint32_t*>(word), FUTEX_WAKE, count, nullptr,
                  nullptr, 0);
}

}  // namespace shmbus::detail
