// futex.hpp — shared futex waits and wakes on words inside a segment.
//
// Never FUTEX_PRIVATE_FLAG: the kernel keys a shared futex on the page, so a
// waiter and a waker reach each other through different mapping addresses,
// and a word in a read-only mapping can be waited on.
#pragma once

#include <chrono>
#include <cstdint>

#include "shmbus/wait.hpp"

namespace shmbus::detail {

// Sleeps while *word == expected, until woken or `deadline` (CLOCK_MONOTONIC,
// absolute). Returns on any wake, spurious ones included: callers re-check.
void futex_wait(const std::uint32_t* word, std::uint32_t expected, Deadline deadline) noexcept;

// Wakes up to `count` waiters of `word`.
void futex_wake(const std::uint32_t* word, int count) noexcept;
// Moves `word` on and wakes everyone parked on it: a waiter that read the
// word before the bump finds it changed and does not sleep (doorbells).
void ring_all(std::uint32_t& word) noexcept;

// One iteration of a spin loop: tells the core a spin-wait is running.
inline void cpu_relax() noexcept { __builtin_ia32_pause(); }

// How long spin_then_park spins before it parks. Time, not a count of pause
// instructions: one pause costs 5 to 140 cycles depending on the CPU.
inline constexpr std::chrono::microseconds kSpinBudget{10};

// Spins until `ready()` holds (true) or the spin budget is spent (false).
template <class Ready>
[[nodiscard]] bool spin_until(Ready&& ready) noexcept {
  const Deadline give_up = Clock::now() + kSpinBudget;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    if (Clock::now() >= give_up) return ready();
  }
}

}  // namespace shmbus::detail
