// gc.hpp — find and remove the buses nobody uses any more (`shmbus gc`).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "shmbus/error.hpp"

namespace shmbus::tools {

struct GcReport {
  std::vector<std::string> removed;  // "bus 'x' (no process attached)", …
  std::vector<std::string> kept;     // with the reason
};

// Removes every bus whose process table holds no live process (the kernel's
// lock bytes say so), every bus abandoned half-built by a dead creator, and
// every segment left of a bus whose control segment is gone. Segments younger
// than `min_age` are left alone: a bus being created has its state and blob
// segments before its control segment, and its creator's slot only after it.
// A bus of another layout version is kept (its processes may be alive).
// `only`: these buses (empty: every bus). Fails with system_error when
// /dev/shm cannot be read.
[[nodiscard]] Result<GcReport> collect_stale_buses(bool dry_run, std::chrono::seconds min_age,
                                                   const std::vector<std::string>& only = {});

}  // namespace shmbus::tools
