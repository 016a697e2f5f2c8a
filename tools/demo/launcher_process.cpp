#include "launcher_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

extern char** environ;

namespace shmbus::demo {

std::unique_ptr<LauncherProcess> LauncherProcess::start(
    const std::string& shmbus, const std::string& config,
    const std::vector<std::pair<std::string, std::string>>& env) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    std::perror("demo: pipe2");
    return nullptr;
  }
  std::vector<std::string> argv_storage{shmbus, "launch", config};
  std::vector<char*> argv;
  for (auto& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // Built before fork: between fork and exec only async-signal-safe calls.
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    bool overridden = false;  // getenv() finds the first entry of a name: drop ours' namesakes
    for (const auto& [name, value] : env) overridden |= entry.rfind(name + "=", 0) == 0;
    if (!overridden) env_storage.push_back(entry);
  }
  for (const auto& [name, value] : env) env_storage.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("demo: fork");
    ::close(fds[0]);
    ::close(fds[1]);
    return nullptr;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(120);
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    std::perror("demo: exec shmbus");
    ::_exit(127);
  }
  ::close(fds[1]);
  return std::unique_ptr<LauncherProcess>(new LauncherProcess(pid, fds[0]));
}

LauncherProcess::LauncherProcess(pid_t pid, int out_fd) : pid_(pid), out_fd_(out_fd) {
  reader_ = std::thread([this] { read_lines(); });
}

LauncherProcess::~LauncherProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (reader_.joinable()) reader_.join();  // the pipe closes once its writers are gone
  if (out_fd_ >= 0) ::close(out_fd_);
}

void LauncherProcess::read_lines() {
  std::string pending;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(out_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buffer, static_cast<std::size_t>(n));
    for (std::size_t end; (end = pending.find('\n')) != std::string::npos;) {
      std::string line = pending.substr(0, end);
      pending.erase(0, end + 1);
      std::printf("  launcher │ %s\n", line.c_str());
      std::fflush(stdout);
      const std::lock_guard guard(mutex_);
      lines_.push_back(std::move(line));
      changed_.notify_all();
    }
  }
  const std::lock_guard guard(mutex_);
  ended_ = true;
  changed_.notify_all();
}

std::optional<std::string> LauncherProcess::wait_for_line(const std::string& prefix,
                                                          std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  std::optional<std::string> found;
  changed_.wait_for(lock, timeout, [&] {
    for (const auto& line : lines_) {
      if (line.rfind(prefix, 0) == 0) {
        found = line;
        return true;
      }
    }
    return ended_;
  });
  return found;
}

int LauncherProcess::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto until = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) != pid_) {
    if (std::chrono::steady_clock::now() >= until) return -1;
    ::usleep(10'000);  // a shutdown takes tens of milliseconds to seconds
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace shmbus::demo
