#include "process/fork_guard.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

namespace shmbus::detail {

namespace {
constexpr int kMaxLockFds = 256;  // attached buses per process; more are not guarded
std::atomic<int> g_lock_fds[kMaxLockFds];
std::once_flag g_install_once;

void close_lock_fds_in_child() {
  for (auto& slot : g_lock_fds) {
    const int fd = slot.exchange(-1, std::memory_order_relaxed);
    if (fd >= 0) ::close(fd);
  }
}
}  // namespace

void register_lock_fd(int fd) noexcept {
  std::call_once(g_install_once, [] {
    for (auto& slot : g_lock_fds) slot.store(-1, std::memory_order_relaxed);
    ::pthread_atfork(nullptr, nullptr, &close_lock_fds_in_child);
  });
  for (auto& slot : g_lock_fds) {
    int empty = -1;
    if (slot.compare_exchange_strong(empty, fd, std::memory_order_relaxed)) return;
  }
}

void unregister_lock_fd(int fd) noexcept {
  for (auto& slot : g_lock_fds) {
    int expected = fd;
    if (slot.compare_exchange_strong(expected, -1, std::memory_order_relaxed)) return;
  }
}

}  // namespace shmbus::detail
