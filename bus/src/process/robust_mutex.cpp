#include "process/robust_mutex.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include "shmbus/detail/test_hook.hpp"

namespace shmbus::detail {

static_assert(sizeof(pthread_mutex_t) <= 64, "layout/registry.hpp reserves 64 bytes");

void RobustMutex::initialize(void* storage) noexcept {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(static_cast<pthread_mutex_t*>(storage), &attr);
  pthread_mutexattr_destroy(&attr);
}

Result<void> RobustMutex::lock() {
  const int rc = pthread_mutex_lock(mutex_);
  if (rc == 0) return {};
  if (rc == EOWNERDEAD) {
    // The previous holder died inside its critical section: mend what it
    // may have left half-done, then let others in again.
    if (repair_) repair_();
    pthread_mutex_consistent(mutex_);
    return {};
  }
  return fail(Errc::system_error,
              std::string("registry mutex: pthread_mutex_lock: ") + std::strerror(rc));
}

void RobustMutex::unlock() noexcept { pthread_mutex_unlock(mutex_); }

}  // namespace shmbus::detail
