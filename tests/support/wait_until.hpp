// wait_until.hpp — tests wait for conditions, never for time.
#pragma once

#include <chrono>
#include <thread>

namespace shmbus::test {

// Polls `predicate` until it holds or `timeout` passes; returns its last value.
// The poll backs off from a yield to 1 ms, so a waiting test costs little CPU.
template <class Predicate>
[[nodiscard]] bool wait_until(std::chrono::milliseconds timeout, Predicate&& predicate) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int round = 0;; ++round) {
    if (predicate()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return predicate();
    if (round < 100) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(round < 1000 ? 50 : 1000));
    }
  }
}

}  // namespace shmbus::test
