// fork_guard.hpp — a forked child must not keep its parent's slot alive.
//
// OFD locks belong to the open file description, which fork() shares with the
// child: without this, a parent killed after fork() would look alive for as
// long as its child lives. A pthread_atfork child handler closes every lock
// descriptor in the child (exec closes them anyway: O_CLOEXEC). A forked
// child that wants the bus attaches again and gets its own slot.
#pragma once

namespace shmbus::detail {

void register_lock_fd(int fd) noexcept;
void unregister_lock_fd(int fd) noexcept;

}  // namespace shmbus::detail
