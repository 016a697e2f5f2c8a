// launch_status.hpp — what the launcher says about its children: the progress
// lines it prints and the "shmbus.launcher" state value that `shmbus ps` and
// `top` read (schemas/shmbus/launcher.fbs).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "shmbus/bus.hpp"
#include "shmbus/state.hpp"
#include "shmbus/supervisor.hpp"

namespace shmbus::tools {

inline constexpr const char* kLauncherStatusKey = "shmbus.launcher";

enum class LaunchPhase : std::uint8_t { starting = 0, running = 1, draining = 2, stopping = 3 };

// "code 1", "killed by SIGKILL".
[[nodiscard]] std::string describe_exit(const ExitStatus& exit);
// "5 s", "2.5 s".
[[nodiscard]] std::string describe_duration(std::chrono::milliseconds duration);

// Turns the supervisor's events into one line each. An `exited` event is
// held until what follows it (restarted, failed) so they print as one line:
//   mailer.2: exited (killed by SIGKILL); restarted as pid 4242 (restart 1)
class EventPrinter {
 public:
  struct ChildInfo {
    std::string service;
    Restart restart = Restart::permanent;
    std::uint32_t max_restarts = 0;
    std::chrono::milliseconds within{0};
  };
  explicit EventPrinter(std::map<std::string, ChildInfo> children)
      : children_(std::move(children)) {}

  // The lines `event` completes (none when it is held). A failure adds
  //   service 'mailer' failed: mailer.0 exceeded 3 restarts in 5 s (last exit: code 1)
  [[nodiscard]] std::vector<std::string> take(const ChildEvent& event);
  // The held exits, as lines of their own (at the end).
  [[nodiscard]] std::vector<std::string> flush();
  // Services one of whose children failed.
  [[nodiscard]] const std::set<std::string>& failed_services() const noexcept { return failed_; }

 private:
  std::map<std::string, ChildInfo> children_;
  std::map<std::string, ChildEvent> held_;
  std::set<std::string> failed_;
};

// Publishes the LauncherStatus FlatBuffer under kLauncherStatusKey.
class StatusPublisher {
 public:
  StatusPublisher(State state, std::string config_path,
                  std::map<std::string, std::string> service_of)
      : state_(std::move(state)),
        config_path_(std::move(config_path)),
        service_of_(std::move(service_of)) {}

  // Replaces the value. A failure (state_full) is printed once on stderr and
  // otherwise ignored: the status is for display.
  void publish(LaunchPhase phase, const std::vector<ChildStatus>& children,
               const std::set<std::string>& failed_services);

 private:
  State state_;
  std::string config_path_;
  std::map<std::string, std::string> service_of_;  // child name → service
  std::uint64_t started_unix_ns_ = 0;
  bool warned_ = false;
};

}  // namespace shmbus::tools
