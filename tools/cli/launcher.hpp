// launcher.hpp — `shmbus launch`: run a bus and supervise its workers.
//
// Creates the bus and registers its services (launch_bus.hpp), starts
// `servers` workers per service through a shmbus::Supervisor (child
// "<service>.<index>", environment SHMBUS_BUS, SHMBUS_SERVICE, SHMBUS_SERVER,
// SHMBUS_LAUNCHER), prints one line per child event and then, once every
// service has its live servers in the registry (or 10 s passed), exactly one
// line starting "ready: bus '<name>'". Publishes its status under the state
// key "shmbus.launcher" (launcher.fbs).
//
// SIGINT/SIGTERM/SIGHUP: close every service (new calls and casts fail with
// `stopped`: Bus::close_service), drain (until every queue is empty and no
// server is mid-message, at most drain_grace; a second signal skips it),
// stop the workers
// in order (SIGTERM, shutdown_grace, SIGKILL), report what is left —
// "unhandled: service 'mailer': 3 queued, 1 dead letter" or "unhandled: none";
// a record a worker was killed in the middle of (its shutdown_grace passed)
// adds "N cut off (its server was stopped mid-message), " before the dead
// letters — and remove the bus. A killed launcher's workers die with it
// (PR_SET_PDEATHSIG); its bus stays until `shmbus gc` removes it.
#pragma once

#include "launch_config.hpp"

namespace shmbus::tools {

// Runs until a signal or a failure under on_failure = "shut_down". Returns
// the exit status (command.hpp): 0 when every accepted message was handled,
// kExitFailed (69) when a service failed for good (either on_failure),
// kExitUnhandled (75) when messages were left queued or dead-lettered, or an
// Errc value when the bus could not be set up (bus_exists: already running).
[[nodiscard]] int run_launcher(const LaunchConfig& config);

}  // namespace shmbus::tools
