// launch_bus.cpp — create the launcher's bus and register its services.
#include "launch_bus.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "launch_status.hpp"
#include "shmbus/schemas/launcher_generated.h"

namespace shmbus::tools {

namespace {

// Every segment of bus `name`: /dev/shm/shmbus.<name> and shmbus.<name>.*
// (bus names hold no '.', so the prefix is exact).
Result<void> chgrp_segments(const std::string& name, gid_t group) {
  const std::string control = "shmbus." + name;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const std::string file = entry.path().filename().string();
    if (file != control && !file.starts_with(control + ".")) continue;
    if (::chown(entry.path().c_str(), static_cast<uid_t>(-1), group) != 0) {
      const int error = errno;
      return fail(error == EPERM ? Errc::permission_denied : Errc::system_error,
                  "cannot chgrp " + entry.path().string() + " to gid " + std::to_string(group) +
                      ": " + std::strerror(error));
    }
  }
  if (ec) return fail(Errc::system_error, "cannot read /dev/shm: " + ec.message());
  return {};
}

Result<void> register_all(Bus& bus, const LaunchConfig& config) {
  for (const auto& service : config.services) {
    auto registered = bus.register_service(service.name, service.options);
    if (!registered) {
      return fail(registered.error().code, "service '" + service.name + "' (" + config.path + ":" +
                                               std::to_string(service.line) +
                                               "): " + registered.error().detail);
    }
  }
  if (config.group) return chgrp_segments(config.bus, *config.group);
  return {};
}

}  // namespace

int running_launcher_pid(const std::string& name) {
  auto bus = Bus::attach(
      name, {.ready_timeout = std::chrono::milliseconds(500), .label = "shmbus launch (probe)"});
  if (!bus) return 0;
  auto state = bus->state();
  if (!state) return 0;
  auto view = state->get(kLauncherStatusKey);
  if (!view) return 0;
  auto status =
      view->root<shmbus::launcher::LauncherStatus>(shmbus::launcher::LauncherStatusIdentifier());
  return status ? (*status)->pid() : 0;
}

Result<Bus> create_launch_bus(const LaunchConfig& config) {
  auto bus = Bus::create(config.bus, config.create);
  if (!bus) {
    if (bus.error().code != Errc::bus_exists) return tl::unexpected(bus.error());
    auto in_use = Bus::in_use(config.bus);
    if (!in_use || !*in_use) return tl::unexpected(bus.error());  // abandoned: names `shmbus gc`
    const int pid = running_launcher_pid(config.bus);
    return fail(Errc::bus_exists,
                "bus '" + config.bus + "' is already running" +
                    (pid != 0 ? " (launcher pid " + std::to_string(pid) + ")"
                              : " (in use by another process; not started by a launcher)"));
  }
  if (auto registered = register_all(*bus, config); !registered) {
    (void)Bus::remove(config.bus);
    return tl::unexpected(registered.error());
  }
  return bus;
}

}  // namespace shmbus::tools
