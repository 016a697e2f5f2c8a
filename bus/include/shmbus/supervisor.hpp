// -----------------------------------------------------------------------------
// supervisor.hpp — run child processes and restart them, OTP style
// -----------------------------------------------------------------------------
//
//   shmbus::ChildSpec mailer;
//   mailer.name = "mailer-0";
//   mailer.argv = {"/usr/bin/mailer_worker", "--bus", "orders"};
//   mailer.env = {{"SHMBUS_SERVICE", "mailer"}};
//   mailer.restart = shmbus::Restart::permanent;     // 3 restarts in 5 s, then failed
//
//   shmbus::SupervisorOptions options;
//   options.on_event = [](const shmbus::ChildEvent& e) { print(e); };  // supervision thread
//   auto supervisor = shmbus::Supervisor::start({mailer}, options);
//   if (!supervisor) return report(supervisor.error());              // bad_options, system_error
//   ...
//   for (const auto& child : supervisor->status()) show(child.name, child.pid, child.restarts);
//   supervisor->stop();     // reverse start order: SIGTERM, shutdown_grace, SIGKILL, reap
//
// One supervision thread, started by start() and alive until stop(), forks and
// execs every child, waits for them (a pidfd per child) and restarts them by
// their policy. Each child is started with PR_SET_PDEATHSIG(SIGKILL), and the
// kernel sends that signal when the *thread* that forked the child exits: since
// the forking thread lives as long as the Supervisor, a child never outlives a
// killed (or crashed) supervising process, and a stopped Supervisor has reaped
// every child — it leaves no zombie and no orphan.
//
// Restart policies (OTP): `permanent` children are always restarted;
// `transient` children only after an abnormal exit (a non-zero status or a
// signal); `temporary` children never. Restart intensity: a child that would
// need more than `max_restarts` restarts within `within` is marked `failed`
// (not restarted again); the supervisor then keeps the other children running
// (OnFailure::keep_others) or shuts all of them down (OnFailure::shut_down).
// Restarts are immediate (no back-off), as in OTP.
//
// A child whose program cannot be executed (no such file, not executable)
// exits with status 127 right after the fork: that is an abnormal exit like any
// other, so a permanent or transient child is restarted until its restart
// limit marks it failed, and its last exit (`ChildStatus::last_exit`) reads
// code 127. A failed fork counts the same way, as an exit with code 127.
//
// Each child leads its own process group, so a terminal's Ctrl-C reaches only
// the supervising process (which then stops children in order), and stop()
// signals the whole group: helpers a child started (`sh -c '...; sleep 1'`)
// are terminated with it; when a child exits on its own, whatever it left
// running in its group is killed (SIGKILL) before it is reaped.
// PR_SET_PDEATHSIG covers only the direct children: when the supervising
// process is killed, a child's own descendants are not signalled unless the
// child arranges it.
//
// Children inherit the supervisor's environment plus their spec's `env`
// (which overrides a variable of the same name), its working directory and its
// open descriptors that lack FD_CLOEXEC; their signal mask is cleared and every
// signal disposition reset to the default.
//
// Thread safety: status(), active() and stop() may be called from any thread.
// The event callback runs on the supervision thread; it may call status() and
// active(), but must not call stop() (stop() joins that thread) and should
// return quickly (no child is reaped or restarted while it runs).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

#include "shmbus/error.hpp"

namespace shmbus {

// When an exited child is started again.
enum class Restart : std::uint8_t {
  permanent,  // always
  transient,  // only after an abnormal exit (non-zero status, or killed by a signal)
  temporary,  // never
};

// What the supervisor does when a child exceeds its restart intensity.
enum class OnFailure : std::uint8_t {
  keep_others,  // the child is marked failed; the others keep running
  shut_down,    // the child is marked failed; every other child is stopped
};

// One child process. `argv[0]` is the program: a path, or a name looked up in
// the supervisor's PATH at each start.
struct ChildSpec {
  std::string name;                                         // unique, non-empty
  std::vector<std::string> argv;                            // non-empty
  std::vector<std::pair<std::string, std::string>> env;     // added to the inherited one
  Restart restart = Restart::permanent;
  std::uint32_t max_restarts = 3;                           // restarts allowed within `within`
  std::chrono::milliseconds within{5000};
  std::chrono::milliseconds shutdown_grace{2000};           // SIGTERM → SIGKILL at stop
};

// How a child process ended.
struct ExitStatus {
  int code = 0;    // the exit status when `signal` is 0
  int signal = 0;  // the terminating signal, or 0 for a normal exit

  // A zero exit status: the only exit a transient child is not restarted after.
  [[nodiscard]] bool normal() const noexcept { return signal == 0 && code == 0; }
};

enum class ChildState : std::uint8_t {
  running,  // a process is alive (pid is set)
  exited,   // ended and not restarted by its policy (transient after exit 0, temporary)
  failed,   // exceeded its restart intensity
  stopped,  // terminated by stop() or by an OnFailure::shut_down
};

// A snapshot of one child, in start order.
struct ChildStatus {
  std::string name;
  pid_t pid = 0;                                        // the live process; 0 when not running
  ChildState state = ChildState::running;
  std::uint32_t restarts = 0;                           // total since start()
  std::optional<ExitStatus> last_exit;                  // the latest ended process
  std::chrono::steady_clock::time_point started_at{};   // of the current (or latest) process
  std::chrono::milliseconds uptime{0};                  // of the current process, else 0
};

// What the supervision thread reports through SupervisorOptions::on_event.
struct ChildEvent {
  enum class Kind : std::uint8_t {
    started,    // first start (pid set)
    exited,     // a process ended (pid: the ended one, 0 for a failed fork; exit set);
                // followed by restarted, failed, or nothing
    restarted,  // started again after an exit (pid set, restarts counted)
    failed,     // restart intensity exceeded: not restarted again
    stopped,    // terminated at shut-down (pid: the ended one; exit set)
  };
  Kind kind;
  std::string name;
  pid_t pid = 0;
  std::uint32_t restarts = 0;           // the child's count after this event
  std::optional<ExitStatus> exit;       // for exited, failed, stopped
};

struct SupervisorOptions {
  OnFailure on_failure = OnFailure::keep_others;
  std::function<void(const ChildEvent&)> on_event;  // optional; on the supervision thread
};

class Supervisor {
 public:
  // Starts the supervision thread and, from it, every child in order; returns
  // once each has been forked (a child whose exec fails shows up as an exit
  // with code 127 shortly after). Fails with:
  //  - bad_options: no children, a child without a name or argv, or two
  //    children with one name;
  //  - system_error: the eventfd, the thread, or pidfd_open (Linux ≥ 5.3)
  //    could not be created.
  [[nodiscard]] static Result<Supervisor> start(std::vector<ChildSpec> children,
                                                SupervisorOptions options = {});

  Supervisor(Supervisor&&) noexcept;
  Supervisor& operator=(Supervisor&&) noexcept;
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  ~Supervisor();  // stop()

  // A consistent snapshot of every child, in start order. Never fails.
  [[nodiscard]] std::vector<ChildStatus> status() const;

  // False once the supervisor shut down: after stop(), or after a child
  // exceeded its restart intensity under OnFailure::shut_down (every child is
  // then stopped and reaped by the time this reads false).
  [[nodiscard]] bool active() const;

  // Stops every running child in reverse start order — SIGTERM to its process
  // group, up to its shutdown_grace, then SIGKILL to the group — reaps it,
  // and joins the supervision thread. Idempotent; never fails. Must not be
  // called from the event callback.
  void stop();

 private:
  struct Impl;
  explicit Supervisor(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

[[nodiscard]] const char* to_string(ChildState state) noexcept;
[[nodiscard]] const char* to_string(ChildEvent::Kind kind) noexcept;

}  // namespace shmbus
