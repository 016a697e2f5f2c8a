// bus_snapshot.cpp — reads the registry, the process table and the launcher's
// status of one bus, and matches servers to launcher children.
#include "bus_snapshot.hpp"

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/schemas/launcher_generated.h"

namespace shmbus::tools {

namespace {

namespace fb = shmbus::launcher;

constexpr const char* kLauncherKey = "shmbus.launcher";
constexpr const char* kLauncherIdentifier = "SHLS";

std::uint64_t unix_now_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(now.tv_nsec);
}

const char* child_state_name(fb::ChildState state) {
  switch (state) {
    case fb::ChildState::Running: return "running";
    case fb::ChildState::Exited: return "exited";
    case fb::ChildState::Failed: return "failed";
    case fb::ChildState::Stopped: return "stopped";
  }
  return "unknown";
}

const char* phase_name(fb::Phase phase) {
  switch (phase) {
    case fb::Phase::Starting: return "starting";
    case fb::Phase::Running: return "running";
    case fb::Phase::Draining: return "draining";
    case fb::Phase::Stopping: return "stopping";
  }
  return "unknown";
}

std::string text_of(const flatbuffers::String* text) { return text ? text->str() : std::string{}; }

LauncherStatusView copy_status(const fb::LauncherStatus& status) {
  LauncherStatusView view;
  view.pid = status.pid();
  view.config = text_of(status.config());
  view.started_unix_ns = status.started_unix_ns();
  view.phase = phase_name(status.phase());
  if (status.children() != nullptr) {
    for (const fb::Child* c : *status.children()) {
      if (c == nullptr) continue;
      view.children.push_back({.name = text_of(c->name()),
                               .service = text_of(c->service()),
                               .pid = c->pid(),
                               .state = child_state_name(c->state()),
                               .restarts = c->restarts(),
                               .started_unix_ns = c->started_unix_ns(),
                               .has_exited = c->has_exited(),
                               .last_exit_code = c->last_exit_code(),
                               .last_exit_signal = c->last_exit_signal()});
    }
  }
  if (status.failed_services() != nullptr) {
    for (const flatbuffers::String* s : *status.failed_services()) {
      view.failed_services.push_back(text_of(s));
    }
  }
  return view;
}

// The parent of `pid` (from /proc/<pid>/stat), or 0 when it is gone.
int parent_of(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  // "pid (comm) S ppid …": comm may hold spaces and parentheses, so read after the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 1));
  char state = 0;
  int ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

std::optional<std::size_t> child_running(const LauncherStatusView& launcher, int server_pid) {
  if (server_pid <= 0) return std::nullopt;
  const auto with_pid = [&](int pid) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < launcher.children.size(); ++i) {
      if (launcher.children[i].pid == pid) return i;
    }
    return std::nullopt;
  };
  if (auto direct = with_pid(server_pid)) return direct;
  if (const int parent = parent_of(server_pid); parent > 1) return with_pid(parent);
  return std::nullopt;
}

void match_launcher(BusSnapshot& snapshot) {
  if (!snapshot.launcher) return;
  const LauncherStatusView& launcher = *snapshot.launcher;
  for (auto& service : snapshot.services) {
    for (auto& server : service.servers) server.child = child_running(launcher, server.info.pid);
    // In the launcher's order (mailer.0, mailer.1, …), then servers it does not run.
    std::stable_sort(service.servers.begin(), service.servers.end(),
                     [](const ServerRow& a, const ServerRow& b) {
                       return a.child.value_or(SIZE_MAX) < b.child.value_or(SIZE_MAX);
                     });
  }
  for (std::size_t i = 0; i < launcher.children.size(); ++i) {
    const std::string& name = launcher.children[i].service;
    auto it = std::find_if(snapshot.services.begin(), snapshot.services.end(),
                           [&](const ServiceRow& s) { return s.info.name == name; });
    if (it == snapshot.services.end()) {
      ServiceRow unregistered;
      unregistered.info.name = name;
      unregistered.registered = false;
      snapshot.services.push_back(std::move(unregistered));
      it = std::prev(snapshot.services.end());
    }
    it->children.push_back(i);
  }
}

}  // namespace

std::size_t ServiceRow::live_servers() const noexcept {
  return static_cast<std::size_t>(std::count_if(
      servers.begin(), servers.end(), [](const ServerRow& s) { return s.state == "running"; }));
}

Result<BusWatcher> BusWatcher::attach(std::string_view name, std::string label) {
  auto bus = Bus::attach(name, {.ready_timeout = std::chrono::milliseconds(2000),
                                .label = std::move(label)});
  if (!bus) return tl::unexpected(bus.error());
  return BusWatcher(std::move(*bus));
}

void BusWatcher::read_launcher(BusSnapshot& snapshot) {
  if (!state_) {
    auto state = bus_.state(StateAccess::read_only);
    if (!state) {
      snapshot.launcher_problem = "the state segment: " + state.error().message();
      return;
    }
    state_.emplace(std::move(*state));
  }
  auto view = state_->get(kLauncherKey);
  if (!view) {
    if (view.error() != Errc::no_such_key) {
      snapshot.launcher_problem = std::string("reading ") + kLauncherKey + ": " + to_string(view.error());
    }
    return;  // no_such_key: not run by `shmbus launch`
  }
  const auto bytes = view->bytes();
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  flatbuffers::Verifier verifier(data, bytes.size(), flatbuffers::Verifier::Options{});
  if (bytes.size() < 8 || !flatbuffers::BufferHasIdentifier(data, kLauncherIdentifier) ||
      !verifier.VerifyBuffer<fb::LauncherStatus>(kLauncherIdentifier)) {
    snapshot.launcher_problem = std::string(kLauncherKey) +
                                " does not hold a LauncherStatus (identifier SHLS) that verifies";
    return;
  }
  snapshot.launcher = copy_status(*flatbuffers::GetRoot<fb::LauncherStatus>(data));
}

Result<BusSnapshot> BusWatcher::snapshot() {
  auto buses = Bus::list();
  if (!buses) return tl::unexpected(buses.error());
  if (std::find(buses->begin(), buses->end(), bus_.name()) == buses->end()) {
    return fail(Errc::no_such_bus, "bus '" + bus_.name() + "' was removed");
  }
  BusSnapshot snapshot;
  snapshot.bus = bus_.name();
  snapshot.taken = std::chrono::steady_clock::now();
  snapshot.taken_unix_ns = unix_now_ns();
  for (auto& info : bus_.services()) {
    ServiceRow row;
    for (const auto& server : info.servers) {
      row.servers.push_back({.info = server,
                             .state = !server.alive   ? "dead"
                                      : server.leaving ? "leaving"
                                                       : "running",
                             .child = std::nullopt});
    }
    row.info = std::move(info);
    std::sort(row.servers.begin(), row.servers.end(),
              [](const ServerRow& a, const ServerRow& b) { return a.info.pid < b.info.pid; });
    snapshot.services.push_back(std::move(row));
  }
  const ProcessRef self = bus_.self();
  for (auto& process : bus_.processes()) {
    if (process.ref == self) continue;
    snapshot.processes.push_back(std::move(process));
  }
  read_launcher(snapshot);
  match_launcher(snapshot);
  std::sort(snapshot.services.begin(), snapshot.services.end(),
            [](const ServiceRow& a, const ServiceRow& b) { return a.info.name < b.info.name; });
  return snapshot;
}

Result<std::optional<std::string>> choose_bus(const std::string& given, const char* command) {
  if (!given.empty()) return std::optional<std::string>(given);
  auto buses = Bus::list();
  if (!buses) return tl::unexpected(buses.error());
  if (buses->size() == 1) return std::optional<std::string>(buses->front());
  if (buses->empty()) {
    std::fprintf(stderr, "shmbus: no bus on this host (shmbus %s BUS)\n", command);
  } else {
    std::fprintf(stderr, "shmbus: %zu buses on this host; name one (shmbus %s BUS):\n",
                 buses->size(), command);
    for (const auto& name : *buses) std::fprintf(stderr, "  %s\n", name.c_str());
  }
  return std::optional<std::string>();
}

std::string short_duration(std::uint64_t nanoseconds) {
  const std::uint64_t s = nanoseconds / 1'000'000'000u;
  char text[32];
  if (s < 60) {
    std::snprintf(text, sizeof text, "%llus", static_cast<unsigned long long>(s));
  } else if (s < 3600) {
    std::snprintf(text, sizeof text, "%llum %llus", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(text, sizeof text, "%lluh %llum", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s % 3600 / 60));
  } else {
    std::snprintf(text, sizeof text, "%llud %lluh", static_cast<unsigned long long>(s / 86400),
                  static_cast<unsigned long long>(s % 86400 / 3600));
  }
  return text;
}

}  // namespace shmbus::tools
