// bus_snapshot.hpp — one look at a live bus, for `shmbus ps` and `shmbus top`.
//
// A snapshot joins three views that are each read without a lock, so it is
// consistent enough for a person, not exact while traffic flows:
//   - the registry: every service, its servers and counters (Bus::services);
//   - the process table (Bus::processes), without the looking process itself;
//   - the launcher's status, when `shmbus launch` runs the bus: the state key
//     "shmbus.launcher", a LauncherStatus FlatBuffer (schemas/shmbus/launcher.fbs),
//     verified before it is read, then copied out (no pin is kept).
// Each server is matched to the launcher child that runs it (same pid, or the
// child is the server's parent: a worker started through a wrapper), which
// gives its restarts; children with no live server (failed, restarting) stay
// listed under their service, and a service the launcher runs but nobody
// registered yet still shows, marked unregistered.
//
//   auto watcher = BusWatcher::attach("orders", "shmbus-ps");
//   auto snapshot = watcher->snapshot();       // again and again for `top`
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmbus/bus.hpp"

namespace shmbus::tools {

// One child of the launcher, as its status says.
struct LauncherChild {
  std::string name;     // "<service>.<index>"
  std::string service;
  int pid = 0;          // 0 when no process runs
  std::string state;    // "running", "exited", "failed", "stopped"
  std::uint32_t restarts = 0;
  std::uint64_t started_unix_ns = 0;
  bool has_exited = false;  // whether the two below say anything
  int last_exit_code = 0;
  int last_exit_signal = 0;  // 0: it exited with last_exit_code
};

struct LauncherStatusView {
  int pid = 0;
  std::string config;
  std::uint64_t started_unix_ns = 0;
  std::string phase;  // "starting", "running", "draining", "stopping"
  std::vector<LauncherChild> children;
  std::vector<std::string> failed_services;
};

struct ServerRow {
  ServerInfo info;
  std::string state;                  // "running", "leaving" or "dead"
  std::optional<std::size_t> child;   // index into the launcher's children
};

struct ServiceRow {
  ServiceInfo info;                   // zeros for an unregistered service
  bool registered = true;             // false: only the launcher knows it
  std::vector<ServerRow> servers;     // launcher children's order, then by pid
  std::vector<std::size_t> children;  // the launcher's children of this service
  [[nodiscard]] std::size_t live_servers() const noexcept;
};

struct BusSnapshot {
  std::string bus;
  std::uint64_t taken_unix_ns = 0;
  std::chrono::steady_clock::time_point taken{};
  std::optional<LauncherStatusView> launcher;  // none: not run by `shmbus launch`
  std::string launcher_problem;  // why a status that exists could not be read ("" if fine)
  std::vector<ServiceRow> services;     // by name
  std::vector<ProcessInfo> processes;   // the looking process left out
};

// Keeps a bus attached (one process slot, labelled) between snapshots.
class BusWatcher {
 public:
  // BusWatcher::attach()
  //
  // Attaches the bus. Fails like Bus::attach: bad_name, no_such_bus,
  // not_a_segment, layout_mismatch, permission_denied, size_too_small,
  // too_many_processes or system_error.
  [[nodiscard]] static Result<BusWatcher> attach(std::string_view name, std::string label);

  // BusWatcher::snapshot()
  //
  // Reads the bus now. Fails with no_such_bus once the bus was removed (its
  // name is gone from Bus::list(); the mapping would otherwise show a frozen
  // bus forever) or system_error when /dev/shm cannot be listed. A launcher
  // status that cannot be read is no failure: launcher_problem says why.
  [[nodiscard]] Result<BusSnapshot> snapshot();

  [[nodiscard]] const std::string& name() const noexcept { return bus_.name(); }

 private:
  explicit BusWatcher(Bus bus) : bus_(std::move(bus)) {}
  void read_launcher(BusSnapshot& snapshot);
  Bus bus_;
  std::optional<State> state_;
};

// The bus a command works on: `given` when not empty, else the only bus on
// this host. With none or several, prints why (and the list) on stderr and
// returns no name: the caller exits 64. Fails with system_error when
// /dev/shm cannot be listed.
[[nodiscard]] Result<std::optional<std::string>> choose_bus(const std::string& given,
                                                          const char* command);

// "3d 4h", "5m 2s", "12s": a duration a person reads at a glance.
[[nodiscard]] std::string short_duration(std::uint64_t nanoseconds);

}  // namespace shmbus::tools
