// cpu_wait.hpp — how long a process waited for a CPU while a benchmark ran
// (/proc/<pid>/schedstat): a figure taken while another process held the
// core says more about the machine than about what it measures.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "support/two_process.hpp"

namespace shmbus::bench {

// Nanoseconds a process has spent on a CPU, and runnable but waiting for one
// (/proc/<pid>/schedstat). A benchmark whose processes waited for a CPU ran
// on a busy machine: its figure says more about the machine than about shmbus.
struct SchedStat {
  double on_cpu_ns = 0;
  double waiting_ns = 0;
};

[[nodiscard]] inline SchedStat read_schedstat(pid_t pid) {
  SchedStat out;
  const std::string path = "/proc/" + std::to_string(pid) + "/schedstat";
  if (std::FILE* f = std::fopen(path.c_str(), "r")) {
    if (std::fscanf(f, "%lf %lf", &out.on_cpu_ns, &out.waiting_ns) != 2) out = {};
    std::fclose(f);
  }
  return out;
}

// The share of an interval (from construction to share()) that a process
// spent runnable but waiting for a CPU: near 0 on a quiet machine.
class CpuWait {
 public:
  explicit CpuWait(pid_t pid) : pid_(pid), start_(read_schedstat(pid)), t0_(BenchClock::now()) {}
  [[nodiscard]] double share() const {
    const double wall = std::chrono::duration<double, std::nano>(BenchClock::now() - t0_).count();
    return wall > 0 ? (read_schedstat(pid_).waiting_ns - start_.waiting_ns) / wall : 0.0;
  }

 private:
  pid_t pid_;
  SchedStat start_;
  BenchClock::time_point t0_;
};

}  // namespace shmbus::bench
