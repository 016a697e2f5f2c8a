// launcher_process.hpp — `shmbus launch CONFIG` run by the demo as a child.
//
// The launcher's stdout and stderr come back through a pipe; a reader thread
// echoes each line (indented, so the launcher's own account of starts,
// restarts and shutdown reads as part of the demo) and keeps it, so the demo
// can wait for a line such as "ready: bus 'demo'". The launcher dies with
// the demo (PR_SET_PDEATHSIG), and with it its workers.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace shmbus::demo {

class LauncherProcess {
 public:
  // Starts `shmbus launch config` with `env` added. Returns null (and says
  // why on stderr) when it cannot be started.
  [[nodiscard]] static std::unique_ptr<LauncherProcess> start(
      const std::string& shmbus, const std::string& config,
      const std::vector<std::pair<std::string, std::string>>& env);

  LauncherProcess(const LauncherProcess&) = delete;
  LauncherProcess& operator=(const LauncherProcess&) = delete;
  ~LauncherProcess();  // SIGKILL if still running, then reaped

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  // Waits until the launcher printed a line starting with `prefix`, or
  // ended, or `timeout` passed; the line, or nullopt.
  [[nodiscard]] std::optional<std::string> wait_for_line(const std::string& prefix,
                                                         std::chrono::milliseconds timeout);

  // SIGTERM (the ordered shutdown), then waits up to `timeout` for the exit.
  // Returns the exit status, 128 + signal, or -1 when it did not end in time.
  int stop(std::chrono::milliseconds timeout);

 private:
  LauncherProcess(pid_t pid, int out_fd);
  void read_lines();

  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
  bool ended_ = false;  // the pipe closed: the launcher and its workers exited
  std::thread reader_;
};

}  // namespace shmbus::demo
