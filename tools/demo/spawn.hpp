// spawn.hpp — start and stop the demo's worker processes.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace shmbus::demo {

// The directory of the running executable (the workers are built beside it).
[[nodiscard]] std::string own_directory();

// fork + exec `program args…`; the child dies with the demo (PR_SET_PDEATHSIG).
// Returns the pid, or -1 (errno set).
[[nodiscard]] pid_t spawn(const std::string& program, const std::vector<std::string>& args);

// Waits for `pid`; returns a phrase for how it ended ("exited 0", "killed by signal 9").
[[nodiscard]] std::string reap(pid_t pid);
// As reap(), without waiting: nullopt while `pid` runs.
[[nodiscard]] std::optional<std::string> reap_if_ended(pid_t pid);

}  // namespace shmbus::demo
