// launch_bus.hpp — the bus a launcher creates: segments, services, group.
#pragma once

#include "launch_config.hpp"
#include "shmbus/bus.hpp"

namespace shmbus::tools {

// Creates the config's bus, registers every service with its options and
// chgrp's every segment to the configured group. On failure nothing is left
// (a bus it created is removed again). Fails with bus_exists — "bus 'demo'
// is already running (launcher pid 4242)" when a live launcher holds it, or
// the library's detail (which names `shmbus gc`) for an abandoned one — and
// with whatever Bus::create and Bus::register_service fail with, or
// permission_denied / system_error when a segment cannot be chgrp'd.
[[nodiscard]] Result<Bus> create_launch_bus(const LaunchConfig& config);

// The pid of the launcher running bus `name` (its status value), or 0.
[[nodiscard]] int running_launcher_pid(const std::string& name);

}  // namespace shmbus::tools
