// -----------------------------------------------------------------------------
// wait.hpp — deadlines and how a waiting side spends its time
// -----------------------------------------------------------------------------
//
// Deadlines are absolute CLOCK_MONOTONIC (std::chrono::steady_clock on Linux):
// a deadline survives being passed through layers without shrinking by the
// time each layer took.
#pragma once

#include <chrono>

namespace shmbus {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

[[nodiscard]] inline Deadline deadline_in(Clock::duration d) noexcept { return Clock::now() + d; }

enum class WaitMode : std::uint8_t {
  busy_poll,       // never sleeps: lowest latency, burns a core while it waits
  park,            // sleeps on a futex in the segment at once
  spin_then_park,  // spins a few microseconds, then parks
};

// A parked waiter wakes at least this often to re-check on its own, so a
// producer that died between commit and wake only delays a record, and dead
// claimers and consumers are found without anyone's help.
inline constexpr std::chrono::milliseconds kParkRecheckInterval{50};

}  // namespace shmbus
