// two_process.hpp — the parent/child harness of the cross-process benchmarks.
//
// The parent is the Google Benchmark process: it pins itself to kParentCpu,
// creates the bus, forks one child and times round trips (UseManualTime).
// The child (fork → pin to kChildCpu → attach → serve → _exit) never touches
// any object of the parent: a forked child attaches again (bus.hpp), and it
// ends with _exit so no destructor or stdio buffer of the parent runs twice.
// The parent reaps it at the end of the benchmark (SIGKILL after a timeout),
// and the bus, named after the parent's pid, is removed: no process and no
// /dev/shm file outlives a benchmark, whatever went wrong.
//
//   bench::SharedBlock<bench::Control> control;
//   bench::ChildProcess child = bench::ChildProcess::start(bench::kChildCpu, [&control] {
//     ... attach, control->set_ready(), serve until control->stop_requested() ...
//     return 0;
//   });
//   if (!control->wait_ready(child)) state.SkipWithError(control->error);
//
// Memory ordering: the control words are plain integers in a MAP_SHARED
// anonymous mapping, accessed through std::atomic_ref (shmbus style: shared
// structs hold no std::atomic). Release/acquire on `ready` publishes the
// child's setup; `stop` needs no more than that either.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "support/pin.hpp"

namespace shmbus::bench {

using BenchClock = std::chrono::steady_clock;

// One spin-wait iteration (the same instruction the library spins with).
inline void cpu_relax() noexcept { __builtin_ia32_pause(); }

// Spins (with pause) until `done()` or `timeout`; the clock is read every 256
// spins only, so the check stays off the fast path.
template <class Done>
[[nodiscard]] bool spin_until(Done&& done, std::chrono::nanoseconds timeout) {
  const auto until = BenchClock::now() + timeout;
  for (std::uint32_t i = 1;; ++i) {
    if (done()) return true;
    if (i % 256 == 0 && BenchClock::now() >= until) return done();
    cpu_relax();
  }
}

// A T in a MAP_SHARED anonymous mapping: the parent and a forked child see the
// same object. T must be trivially destructible.
template <class T>
class SharedBlock {
 public:
  SharedBlock() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    value_ = new (p) T{};
  }
  SharedBlock(const SharedBlock&) = delete;
  SharedBlock& operator=(const SharedBlock&) = delete;
  ~SharedBlock() { ::munmap(value_, sizeof(T)); }
  T* operator->() const noexcept { return value_; }
  T& operator*() const noexcept { return *value_; }

 private:
  T* value_;
};

template <class T>
[[nodiscard]] inline T load_acquire(const T& word) noexcept {
  return __atomic_load_n(&word, __ATOMIC_ACQUIRE);
}
template <class T>
inline void store_release(T& word, T value) noexcept {
  std::atomic_ref<T>(word).store(value, std::memory_order_release);
}

// Start/stop handshake and an error text, each hot word on its own 128 bytes.
struct Control {
  alignas(128) std::uint32_t ready;  // 1: the child is set up; 2: it failed (see error)
  alignas(128) std::uint32_t stop;
  alignas(128) std::uint64_t progress;  // benchmark-specific (records consumed, …)
  alignas(128) char error[256];

  void set_ready() noexcept { store_release(ready, std::uint32_t{1}); }
  void set_failed(const std::string& what) noexcept {
    std::snprintf(error, sizeof(error), "child: %s", what.c_str());
    store_release(ready, std::uint32_t{2});
  }
  void request_stop() noexcept { store_release(stop, std::uint32_t{1}); }
  [[nodiscard]] bool stop_requested() const noexcept { return load_acquire(stop) != 0; }
};

// A forked child running one function on its own core. Move-only. reap()
// lets it finish (the normal end of a benchmark); the destructor, reached
// without reap() only on an error path, kills it at once and reaps it.
class ChildProcess {
 public:
  static constexpr std::chrono::seconds kReapTimeout{5};

  // Forks; the child pins itself to `cpu`, runs `body()` (returns an exit
  // code) and _exits. A child whose parent dies gets SIGKILL (PR_SET_PDEATHSIG).
  template <class Body>
  [[nodiscard]] static ChildProcess start(int cpu, Body&& body) {
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(120);  // the parent died before the prctl
      int code = 121;
      if (pin_to_cpu(cpu)) {
        try {
          code = body();
        } catch (...) {
          code = 122;
        }
      }
      ::_exit(code);
    }
    return ChildProcess(pid);
  }

  ChildProcess(ChildProcess&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}
  ChildProcess& operator=(ChildProcess&&) = delete;
  ~ChildProcess() { (void)reap(std::chrono::nanoseconds::zero()); }

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool started() const noexcept { return pid_ > 0; }

  // Whether the child has exited (then it is reaped and its status kept).
  [[nodiscard]] bool exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      status_ = status;
      pid_ = -1;
      return true;
    }
    return false;
  }

  // Waits up to `timeout` for the child to exit, then kills it. Returns its
  // exit code, or -1 when it had to be killed or did not exit normally.
  int reap(std::chrono::nanoseconds timeout = kReapTimeout) {
    if (pid_ > 0) {
      const auto until = BenchClock::now() + timeout;
      while (!exited()) {
        if (BenchClock::now() >= until) {
          ::kill(pid_, SIGKILL);
          int status = 0;
          ::waitpid(pid_, &status, 0);
          status_ = -1;
          pid_ = -1;
          break;
        }
        ::usleep(1000);
      }
    }
    if (status_ == -1 || !WIFEXITED(status_)) return -1;
    return WEXITSTATUS(status_);
  }

 private:
  explicit ChildProcess(pid_t pid) noexcept : pid_(pid) {}
  pid_t pid_ = -1;
  int status_ = 0;
};

// Waits for the child's ready flag. On failure returns the reason.
[[nodiscard]] inline std::string wait_ready(
    Control& control, ChildProcess& child,
    std::chrono::nanoseconds timeout = std::chrono::seconds(5)) {
  if (!child.started()) return "fork failed";
  std::uint32_t state = 0;
  const bool answered = spin_until(
      [&] {
        state = load_acquire(control.ready);
        return state != 0 || child.exited();
      },
      timeout);
  if (state == 1) return {};
  if (state == 2) return control.error;
  return answered ? "child exited before it was ready (pinning to CPU " +
                        std::to_string(kChildCpu) + " failed?)"
                  : "child not ready within the timeout";
}

// Whether a process is asleep in a futex wait, asked of the kernel: the
// honest "the peer has parked" signal of the parking benchmarks (a waiters
// word only says it is about to park, and /proc/<pid>/stat already says 'S'
// between set_current_state and schedule()). /proc/<pid>/wchan names the
// blocking function only once the task is off the run queue ("0" while it
// runs); where wchan cannot be read, the stat state 'S' is used instead.
// Descriptors stay open: each check is one pread.
class ProcState {
 public:
  explicit ProcState(pid_t pid) {
    const std::string dir = "/proc/" + std::to_string(pid);
    wchan_fd_ = ::open((dir + "/wchan").c_str(), O_RDONLY | O_CLOEXEC);
    stat_fd_ = ::open((dir + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
    char buf[64];
    if (wchan_fd_ >= 0 && ::pread(wchan_fd_, buf, sizeof(buf), 0) <= 0) {
      ::close(wchan_fd_);
      wchan_fd_ = -1;
    }
  }
  ProcState(const ProcState&) = delete;
  ProcState& operator=(const ProcState&) = delete;
  ~ProcState() {
    if (wchan_fd_ >= 0) ::close(wchan_fd_);
    if (stat_fd_ >= 0) ::close(stat_fd_);
  }
  [[nodiscard]] bool ok() const noexcept { return wchan_fd_ >= 0 || stat_fd_ >= 0; }
  // Which signal parked() uses: "wchan" or "stat".
  [[nodiscard]] const char* signal() const noexcept { return wchan_fd_ >= 0 ? "wchan" : "stat"; }

  // True while the process sleeps in any kernel wait (a read on a socket or a
  // pipe, a futex…): wchan names a function; without wchan, state 'S'.
  [[nodiscard]] bool asleep() const noexcept {
    char buf[128];
    if (wchan_fd_ >= 0) {
      const ssize_t n = ::pread(wchan_fd_, buf, sizeof(buf) - 1, 0);
      return n >= 1 && !(n == 1 && buf[0] == '0');
    }
    return parked();
  }

  // True while the process sleeps in a futex wait (wchan "futex…"), or, without
  // wchan, while its state is 'S'.
  [[nodiscard]] bool parked() const noexcept {
    char buf[128];
    if (wchan_fd_ >= 0) {
      const ssize_t n = ::pread(wchan_fd_, buf, sizeof(buf) - 1, 0);
      return n >= 5 && std::strncmp(buf, "futex", 5) == 0;
    }
    const ssize_t n = ::pread(stat_fd_, buf, sizeof(buf) - 1, 0);
    if (n <= 0) return false;
    buf[n] = '\0';
    const char* paren = std::strrchr(buf, ')');  // the command name may hold spaces
    return paren != nullptr && paren[1] == ' ' && paren[2] == 'S';
  }

 private:
  int wchan_fd_ = -1;
  int stat_fd_ = -1;
};

// A bus name unique to this process and call: "bench-<pid>-<n>".
[[nodiscard]] inline std::string unique_bus_name() {
  static int counter = 0;
  return "bench-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

}  // namespace shmbus::bench
