// launcher.cpp — the launcher's main thread: start, watch, drain, stop, report.
//
// The supervision thread only queues its events (the callback must return
// quickly); this thread prints them, publishes the status value and waits
// for signals, which are blocked before the supervisor starts and read from
// a signalfd (children get a clean mask from the Supervisor).
#include "launcher.hpp"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <mutex>

#include "command.hpp"
#include "launch_bus.hpp"
#include "launch_status.hpp"

namespace shmbus::tools {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kReadyTimeout = 10s;
constexpr auto kTick = 20ms;
constexpr auto kIdleTick = 1000ms;  // nothing to watch but events and signals

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

// Events from the supervision thread, woken through an eventfd.
class EventQueue {
 public:
  EventQueue() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~EventQueue() { ::close(fd_); }
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  void push(const ChildEvent& event) {
    {
      std::lock_guard lock(mutex_);
      events_.push_back(event);
    }
    const std::uint64_t one = 1;
    (void)!::write(fd_, &one, sizeof one);
  }
  std::deque<ChildEvent> take() {
    std::uint64_t count = 0;
    (void)!::read(fd_, &count, sizeof count);
    std::lock_guard lock(mutex_);
    return std::exchange(events_, {});
  }
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  int fd_;
  std::mutex mutex_;
  std::deque<ChildEvent> events_;
};

std::vector<ChildSpec> child_specs(const LaunchConfig& config) {
  std::vector<ChildSpec> specs;
  for (const auto& service : config.services) {
    for (std::uint32_t i = 0; i < service.servers; ++i) {
      ChildSpec spec;
      spec.name = service.name + "." + std::to_string(i);
      spec.argv = service.command;
      spec.env = service.env;
      spec.env.emplace_back("SHMBUS_BUS", config.bus);
      spec.env.emplace_back("SHMBUS_SERVICE", service.name);
      spec.env.emplace_back("SHMBUS_SERVER", std::to_string(i));
      spec.env.emplace_back("SHMBUS_LAUNCHER", std::to_string(::getpid()));
      spec.restart = service.restart;
      spec.max_restarts = service.max_restarts;
      spec.within = service.within;
      spec.shutdown_grace = service.shutdown_grace;
      specs.push_back(std::move(spec));
    }
  }
  return specs;
}

std::map<std::string, EventPrinter::ChildInfo> child_infos(const LaunchConfig& config) {
  std::map<std::string, EventPrinter::ChildInfo> infos;
  for (const auto& service : config.services) {
    for (std::uint32_t i = 0; i < service.servers; ++i) {
      infos[service.name + "." + std::to_string(i)] = {service.name, service.restart,
                                                       service.max_restarts, service.within};
    }
  }
  return infos;
}

std::map<std::string, std::string> service_of(const LaunchConfig& config) {
  std::map<std::string, std::string> out;
  for (const auto& [child, info] : child_infos(config)) out[child] = info.service;
  return out;
}

std::uint32_t live_servers(const ServiceInfo& info) {
  std::uint32_t live = 0;
  for (const auto& server : info.servers) live += server.alive && !server.leaving ? 1 : 0;
  return live;
}

class Launch {
 public:
  Launch(const LaunchConfig& config, Bus bus, State state, int signal_fd)
      : config_(config),
        bus_(std::move(bus)),
        printer_(child_infos(config)),
        status_(std::move(state), config.path, service_of(config)),
        signal_fd_(signal_fd) {}

  int run() {
    publish();
    SupervisorOptions options;
    options.on_failure = config_.on_failure;
    options.on_event = [this](const ChildEvent& event) { queue_.push(event); };
    auto supervisor = Supervisor::start(child_specs(config_), options);
    if (!supervisor) {
      (void)Bus::remove(config_.bus);
      return fail_with(supervisor.error());
    }
    supervisor_.emplace(std::move(*supervisor));
    const auto ready_deadline = Clock::now() + kReadyTimeout;
    while (true) {
      // A shut_down failure ends in active() turning false just after the
      // last event: look again soon rather than wait for an event.
      const bool soon = !ready_ || !printer_.failed_services().empty();
      const int signal_number = wait(static_cast<int>(soon ? kTick.count() : kIdleTick.count()));
      if (!ready_) check_ready(Clock::now() >= ready_deadline);
      if (signal_number != 0) return shut_down(signal_number);
      if (!supervisor_->active()) return shut_down(0);
    }
  }

 private:
  // Waits up to `timeout_ms` (-1: forever) for an event or a signal; handles
  // the events; returns the signal received, or 0.
  int wait(int timeout_ms) {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {queue_.fd(), POLLIN, 0}};
    (void)::poll(fds, 2, timeout_ms);
    handle_events();
    signalfd_siginfo info{};
    if (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      return static_cast<int>(info.ssi_signo);
    }
    return 0;
  }

  void handle_events() {
    bool any = false;
    for (const auto& event : queue_.take()) {
      for (const auto& line : printer_.take(event)) say(line);
      any = true;
    }
    if (any) publish();
  }

  void publish() {
    status_.publish(phase_, supervisor_ ? supervisor_->status() : std::vector<ChildStatus>{},
                    printer_.failed_services());
  }

  void set_phase(LaunchPhase phase) {
    phase_ = phase;
    publish();
  }

  // Prints the ready line once every service has its live servers (a failed
  // service counts as settled), or anyway at `force`, saying what is missing.
  void check_ready(bool force) {
    const auto infos = bus_.services();
    std::uint32_t wanted = 0, live = 0;
    bool settled = true;
    std::string missing;
    for (const auto& service : config_.services) {
      std::uint32_t have = 0;
      for (const auto& info : infos) {
        if (info.name == service.name) have = std::min(live_servers(info), service.servers);
      }
      wanted += service.servers;
      live += have;
      if (have == service.servers) continue;
      const bool failed = printer_.failed_services().contains(service.name);
      settled = settled && failed;
      missing += std::string(missing.empty() ? "" : ", ") + "service '" + service.name + "' has " +
                 std::to_string(have) + " of " + std::to_string(service.servers) + " live servers" +
                 (failed ? " (failed)" : "");
    }
    if (!settled && !force) return;
    ready_ = true;
    const std::string services = std::to_string(config_.services.size()) + " service" +
                                 (config_.services.size() == 1 ? "" : "s");
    say("ready: bus '" + config_.bus + "' (" + services + ", " +
        (missing.empty() ? std::to_string(wanted) + " servers"
                         : std::to_string(live) + " of " + std::to_string(wanted) +
                               " servers; missing: " + missing) +
        "; launcher pid " + std::to_string(::getpid()) + ")");
    set_phase(LaunchPhase::running);
  }

  // Every queue empty and no record taken but not done (a server mid-message),
  // but for failed services: no server of theirs will come to drain them.
  [[nodiscard]] bool drained() const {
    for (const auto& info : bus_.services()) {
      if (printer_.failed_services().contains(info.name)) continue;
      const auto& m = info.mailboxes;
      if (info.depth > 0 || m.claimed > m.consumed + m.sender_aborted) return false;
    }
    return true;
  }

  // New calls and casts fail with `stopped` from now on; the servers go on
  // taking what is queued.
  void close_services() {
    for (const auto& service : config_.services) {
      if (auto closed = bus_.close_service(service.name); !closed) {
        std::fprintf(stderr, "shmbus: %s\n", closed.error().message().c_str());
      }
    }
  }

  // Waits until drained(), drain_grace, or a second signal.
  void drain() {
    set_phase(LaunchPhase::draining);
    close_services();
    say("stopping: services closed to new messages; draining the queues (up to " +
        describe_duration(config_.drain_grace) + "; a second signal skips this)");
    const auto deadline = Clock::now() + config_.drain_grace;
    while (!drained()) {
      if (Clock::now() >= deadline) {
        say("stopping: drain_grace (" + describe_duration(config_.drain_grace) +
            ") passed with messages queued");
        return;
      }
      if (int signal_number = wait(static_cast<int>(kTick.count())); signal_number != 0) {
        say(std::string("stopping: second signal (SIG") + ::sigabbrev_np(signal_number) +
            "): not draining");
        return;
      }
    }
    say("stopping: drained");
  }

  // Records a server took but never finished: killed mid-message once its
  // shutdown_grace passed, with no server left to take them over. The ring's
  // head has moved past them, so `depth` does not count them.
  [[nodiscard]] static std::uint64_t unfinished(const ServiceInfo& info) {
    const auto& m = info.mailboxes;
    const std::uint64_t accounted = m.consumed + m.sender_aborted + info.depth;
    return m.claimed > accounted ? m.claimed - accounted : 0;
  }

  // The queued, unfinished and dead-lettered records left; prints the
  // "unhandled:" lines.
  [[nodiscard]] bool report_unhandled() const {
    bool any = false;
    for (const auto& info : bus_.services()) {
      const std::uint64_t cut_off = unfinished(info);
      if (info.depth == 0 && cut_off == 0 && info.dead_letters == 0) continue;
      any = true;
      say("unhandled: service '" + info.name + "': " + std::to_string(info.depth) + " queued, " +
          (cut_off == 0
               ? ""
               : std::to_string(cut_off) + " cut off (its server was stopped mid-message), ") +
          std::to_string(info.dead_letters) + " dead letter" + (info.dead_letters == 1 ? "" : "s"));
    }
    if (!any) say("unhandled: none");
    return any;
  }

  int shut_down(int signal_number) {
    if (signal_number != 0) {
      say(std::string("stopping: SIG") + ::sigabbrev_np(signal_number) + " received");
      drain();
    } else {
      close_services();
      say("stopping: a service failed and on_failure = \"shut_down\"");
    }
    set_phase(LaunchPhase::stopping);
    say("stopping: workers (SIGTERM, then SIGKILL after their shutdown_grace)");
    supervisor_->stop();
    handle_events();
    for (const auto& line : printer_.flush()) say(line);
    publish();
    const bool left = report_unhandled();
    if (auto removed = Bus::remove(config_.bus); !removed) {
      std::fprintf(stderr, "shmbus: %s\n", removed.error().message().c_str());
    } else {
      say("removed bus '" + config_.bus + "'");
    }
    if (!printer_.failed_services().empty()) return kExitFailed;
    return left ? kExitUnhandled : 0;
  }

  const LaunchConfig& config_;
  Bus bus_;
  EventQueue queue_;
  EventPrinter printer_;
  StatusPublisher status_;
  int signal_fd_;
  std::optional<Supervisor> supervisor_;
  LaunchPhase phase_ = LaunchPhase::starting;
  bool ready_ = false;
};

}  // namespace

int run_launcher(const LaunchConfig& config) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  ::signal(SIGPIPE, SIG_IGN);
  // Blocked before any thread starts (the supervision thread inherits the
  // mask), read from a signalfd.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);  // the terminal went away: stop in order too
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const int signal_fd = ::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd < 0) {
    return fail_with(Error{Errc::system_error, std::string("signalfd: ") + std::strerror(errno)});
  }
  auto bus = create_launch_bus(config);
  if (!bus) return fail_with(bus.error());
  auto state = bus->state(StateAccess::read_write);
  if (!state) {
    (void)Bus::remove(config.bus);
    return fail_with(state.error());
  }
  Launch launch(config, std::move(*bus), std::move(*state), signal_fd);
  const int status = launch.run();
  ::close(signal_fd);
  return status;
}

}  // namespace shmbus::tools
