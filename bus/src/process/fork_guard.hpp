// fork_guard.hpp — a forked child must not keep its parent's slot alive.
//
// OFD locks belong to the open file description, which fork() shares with the
// child: without this, a parent killed after fork() would look alive for as
// long as its child lives. A pthread_atfork child handler closes every lock
// descriptor in the child (exec closes them anyway: O_CLOEXEC), and opening a
// lock descriptor is atomic with respect to fork(). A forked child that wants
// the bus attaches again and gets its own slot; using the parent's Bus object
// there is a bug that aborts (fork_epoch()).
#pragma once

#include <cstdint>
#include <string>

namespace shmbus::detail {

// Opens /dev/shm/<shm_name> read-write, O_CLOEXEC, and registers it to be
// closed in forked children. Returns -1 with errno set (EMFILE when 256 lock
// descriptors are open in this process).
[[nodiscard]] int open_lock_fd(const std::string& shm_name) noexcept;
void close_lock_fd(int fd) noexcept;

// Incremented in every child that fork() creates: state joined under another
// epoch belongs to an ancestor.
[[nodiscard]] std::uint32_t fork_epoch() noexcept;

}  // namespace shmbus::detail
