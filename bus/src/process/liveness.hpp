// liveness.hpp — kernel-backed answers to "is that process still there?"
#pragma once

#include <cstdint>
#include <optional>
#include <sys/types.h>

namespace shmbus::detail {

// Field 22 of /proc/<pid>/stat (clock ticks after boot), or nullopt when the
// process does not exist or is a zombie/dead (state Z or X): a process is
// identified by (pid, start time), never by pid alone.
[[nodiscard]] std::optional<std::uint64_t> process_start_time(pid_t pid) noexcept;

// True when (pid, start_time) names a running, non-zombie process.
[[nodiscard]] bool process_alive(pid_t pid, std::uint64_t start_time) noexcept;

// OFD lock on one byte of `fd` (F_OFD_SETLK, write lock). Non-blocking: false
// when another open file description holds it.
[[nodiscard]] bool ofd_try_lock(int fd, std::uint64_t byte) noexcept;
void ofd_unlock(int fd, std::uint64_t byte) noexcept;
// True when some open file description other than `fd`'s holds the byte.
[[nodiscard]] bool ofd_is_locked(int fd, std::uint64_t byte) noexcept;

}  // namespace shmbus::detail
