// launch_command.cpp — `shmbus launch CONFIG.toml` (launcher.hpp; the config
// format: launch_config.hpp).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "command.hpp"
#include "launch_config.hpp"
#include "launcher.hpp"

namespace shmbus::tools {

Command add_launch_command(CLI::App& app) {
  auto* sub = app.add_subcommand("launch",
                                 "Create a bus from a TOML config, start and supervise its "
                                 "workers; SIGINT/SIGTERM/SIGHUP closes the services, drains "
                                 "the queues, stops the workers and removes the bus");
  auto config_path = std::make_shared<std::string>();
  auto check_only = std::make_shared<bool>(false);
  sub->add_option("config", *config_path, "the launcher config (TOML)")->required();
  sub->add_flag("--check", *check_only, "only read and check the config, start nothing");
  sub->footer(
      "Exit: 0 stopped with every accepted message handled; 69 a service failed for good; "
      "75 messages were left (queued, dead-lettered, or cut off by a worker killed "
      "mid-message); 78 config error (file:line: what); "
      "2 (bus_exists) the bus is already running; other 1…63: the shmbus error.");
  return {sub, [config_path, check_only] {
            auto config = load_launch_config(*config_path);
            if (!config) {
              std::fprintf(stderr, "shmbus: %s\n", config.error().detail.c_str());
              return config.error().code == Errc::bad_options ? kExitConfig : kExitNoInput;
            }
            if (*check_only) {
              std::printf("config ok: bus '%s', %zu services\n", config->bus.c_str(),
                          config->services.size());
              return 0;
            }
            return run_launcher(*config);
          }};
}

}  // namespace shmbus::tools
