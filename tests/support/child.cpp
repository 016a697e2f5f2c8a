#include "support/child.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "support/wait_until.hpp"

namespace shmbus::test {

Child Child::spawn(const std::string& role, const std::vector<std::string>& args) {
  std::vector<std::string> all{role};
  all.insert(all.end(), args.begin(), args.end());
  return exec(SHMBUS_TEST_CHILD, all);
}

Child Child::exec(const std::string& program, const std::vector<std::string>& args,
                  const std::vector<std::pair<std::string, std::string>>& env) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    std::perror("Child::spawn: pipe2");
    std::abort();
  }
  std::vector<std::string> argv_storage{program};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // The environment is built before fork: the child may only make async-signal-safe calls.
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    bool replaced = false;
    for (const auto& [name, value] : env) replaced |= entry.rfind(name + "=", 0) == 0;
    if (!replaced) env_storage.push_back(entry);
  }
  for (const auto& [name, value] : env) env_storage.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("Child::spawn: fork");
    std::abort();
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(120);  // the parent died before prctl took effect
    ::dup2(fds[1], STDOUT_FILENO);            // dup2 clears O_CLOEXEC on the copy
    if (program != SHMBUS_TEST_CHILD) ::dup2(fds[1], STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    std::perror("Child::exec: execve");
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent: no race with an early kill
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  return Child(pid, fds[0]);
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      out_fd_(std::exchange(other.out_fd_, -1)),
      reaped_(other.reaped_),
      status_(other.status_),
      output_(std::move(other.output_)) {}

Child::~Child() {
  if (pid_ > 0 && !reaped_) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (out_fd_ >= 0) ::close(out_fd_);
}

void Child::drain() {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(out_fd_, buf, sizeof buf);
    if (n <= 0) return;
    output_.append(buf, static_cast<std::size_t>(n));
  }
}

bool Child::reached(const std::string& point) { return printed("reached " + point); }

bool Child::printed(const std::string& prefix) {
  drain();
  std::size_t at = 0;
  while (at < output_.size()) {
    if (output_.compare(at, prefix.size(), prefix) == 0) return true;
    const std::size_t next = output_.find('\n', at);
    if (next == std::string::npos) return false;
    at = next + 1;
  }
  return false;
}

bool Child::said(const std::string& text) {
  drain();
  return output_.find(text) != std::string::npos;
}

void Child::signal(int signal_number) noexcept {
  if (pid_ > 0 && !reaped_) ::kill(pid_, signal_number);
}

const std::string& Child::output() {
  drain();
  return output_;
}

void Child::kill_9() noexcept {
  if (pid_ > 0 && !reaped_) ::kill(pid_, SIGKILL);
}

int Child::wait(std::chrono::milliseconds timeout) {
  if (reaped_) return status_;
  int status = 0;
  const bool done = wait_until(timeout, [&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; });
  if (!done) return -1;
  reaped_ = true;
  ::kill(-pid_, SIGKILL);  // grandchildren, if any
  drain();
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return status_;
}

}  // namespace shmbus::test
