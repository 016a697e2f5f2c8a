// child.hpp — real child processes for multi-process and fault tests.
//
// Child::spawn() forks and execs `shmbus_test_child <role> args…` in its own
// process group, with PR_SET_PDEATHSIG(SIGKILL) so it cannot outlive the test
// binary. The child's stdout is a pipe owned by the Child: the child reports
// "reached <point>" (kill points) and "ready", "done …" lines on it. The
// destructor kills the whole group with SIGKILL and reaps it, so a failed
// test leaves no process behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace shmbus::test {

class Child {
 public:
  [[nodiscard]] static Child spawn(const std::string& role, const std::vector<std::string>& args = {});
  // Any program (the shmbus tool, a worker): stdout and stderr both go to
  // the pipe; `env` is added to the test's environment.
  [[nodiscard]] static Child exec(const std::string& program, const std::vector<std::string>& args,
                                  const std::vector<std::pair<std::string, std::string>>& env = {});
  Child(Child&& other) noexcept;
  Child& operator=(Child&&) = delete;
  ~Child();

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  // Whether the child printed the line "reached <point>" (non-blocking).
  [[nodiscard]] bool reached(const std::string& point);
  // Whether the child printed a line starting with `prefix` (non-blocking).
  [[nodiscard]] bool printed(const std::string& prefix);
  // Whether the output so far contains `text` anywhere (non-blocking).
  [[nodiscard]] bool said(const std::string& text);
  // Everything read from the child's stdout so far.
  [[nodiscard]] const std::string& output();

  // SIGKILL to the child (not reaped: it may linger as a zombie until wait()).
  void kill_9() noexcept;
  // Any signal to the child alone (SIGTERM, SIGINT: an ordered shutdown).
  void signal(int signal_number) noexcept;
  // Reaps the child, waiting up to `timeout`. Returns the exit status, or
  // 128 + signal for a killed child, or -1 if it is still running.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  [[nodiscard]] bool reaped() const noexcept { return reaped_; }

 private:
  Child(pid_t pid, int out_fd) noexcept : pid_(pid), out_fd_(out_fd) {}
  void drain();
  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool reaped_ = false;
  int status_ = -1;
  std::string output_;
};

}  // namespace shmbus::test
