// robust_mutex.hpp — a process-shared mutex that survives its holder's death.
//
// For rare admin work only (registering services, joining pools); hot paths
// are lock-free. Over pthread_mutex_t with PTHREAD_PROCESS_SHARED and
// PTHREAD_MUTEX_ROBUST: when a holder dies, the next locker gets EOWNERDEAD,
// repairs the guarded state (the `repair` callback), and marks the mutex
// consistent. Never Boost's interprocess_mutex: Boost 1.81 leaves it unusable
// after EOWNERDEAD.
//
// Crash: a holder killed anywhere inside its critical section leaves the
// state half-changed; the kernel's robust list hands EOWNERDEAD to the next
// locker, which runs `repair` before anything else reads the state.
#pragma once

#include <pthread.h>

#include <cstdint>
#include <functional>

#include "shmbus/error.hpp"

namespace shmbus::detail {

class RobustMutex {
 public:
  // Initializes the mutex in `storage` (>= sizeof(pthread_mutex_t) bytes,
  // zero-filled, in a segment nobody else uses yet).
  static void initialize(void* storage) noexcept;

  RobustMutex(void* storage, std::function<void()> repair) noexcept
      : mutex_(static_cast<pthread_mutex_t*>(storage)), repair_(std::move(repair)) {}

  // Locks, repairing after a dead holder. Fails with system_error (the mutex
  // is not recoverable: a holder died and its successor also died in repair).
  [[nodiscard]] Result<void> lock();
  void unlock() noexcept;

 private:
  pthread_mutex_t* mutex_;
  std::function<void()> repair_;
};

// Holds a RobustMutex for a scope.
class RobustLock {
 public:
  explicit RobustLock(RobustMutex& mutex) : mutex_(mutex), result_(mutex.lock()) {}
  ~RobustLock() {
    if (result_) mutex_.unlock();
  }
  RobustLock(const RobustLock&) = delete;
  RobustLock& operator=(const RobustLock&) = delete;
  [[nodiscard]] const Result<void>& result() const noexcept { return result_; }

 private:
  RobustMutex& mutex_;
  Result<void> result_;
};

}  // namespace shmbus::detail
