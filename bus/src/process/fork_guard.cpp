#include "process/fork_guard.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

namespace shmbus::detail {

namespace {
constexpr int kMaxLockFds = 256;
int g_lock_fds[kMaxLockFds];      // guarded by g_mutex
std::mutex g_mutex;               // held across fork() by the prepare handler
std::atomic<std::uint32_t> g_fork_epoch{0};
std::once_flag g_install_once;

void before_fork() { g_mutex.lock(); }
void after_fork_in_parent() { g_mutex.unlock(); }
void after_fork_in_child() {
  for (int& fd : g_lock_fds) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  g_fork_epoch.fetch_add(1, std::memory_order_relaxed);
  g_mutex.unlock();
}

void install() {
  for (int& fd : g_lock_fds) fd = -1;
  ::pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child);
}
}  // namespace

int open_lock_fd(const std::string& shm_name) noexcept {
  std::call_once(g_install_once, install);
  std::lock_guard<std::mutex> lock(g_mutex);
  int* free_slot = nullptr;
  for (int& fd : g_lock_fds) {
    if (fd < 0) {
      free_slot = &fd;
      break;
    }
  }
  if (free_slot == nullptr) {
    errno = EMFILE;
    return -1;
  }
  const int fd = ::shm_open(("/" + shm_name).c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd >= 0) *free_slot = fd;
  return fd;
}

void close_lock_fd(int fd) noexcept {
  std::call_once(g_install_once, install);
  std::lock_guard<std::mutex> lock(g_mutex);
  for (int& slot : g_lock_fds) {
    if (slot == fd) slot = -1;
  }
  ::close(fd);
}

std::uint32_t fork_epoch() noexcept { return g_fork_epoch.load(std::memory_order_relaxed); }

}  // namespace shmbus::detail
