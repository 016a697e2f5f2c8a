// pin.hpp — pin the calling thread to one CPU (rigtorp's pinThread).
//
// The two sides of a cross-process benchmark run on different cores: the
// parent (timing side) on kParentCpu, the forked child on kChildCpu. Without
// pinning the scheduler may put both on one core, and a ping-pong then
// measures context switches instead of cache-line transfers.
#pragma once

#include <sched.h>

namespace shmbus::bench {

inline constexpr int kParentCpu = 0;
inline constexpr int kChildCpu = 1;

// Pins the calling thread to `cpu`. False when the CPU does not exist or the
// call is refused (the benchmark reports it instead of measuring something else).
[[nodiscard]] inline bool pin_to_cpu(int cpu) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof(set), &set) == 0;
}

}  // namespace shmbus::bench
