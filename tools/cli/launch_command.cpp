// PLACEHOLDER (replaced this session by its owner): shmbus launch.
#include <CLI/CLI.hpp>

#include "command.hpp"

namespace shmbus::tools {

Command add_launch_command(CLI::App& app) {
  auto* sub = app.add_subcommand("launch", "(not built yet)");
  return {sub, [] { return kExitUsage; }};
}

}  // namespace shmbus::tools
