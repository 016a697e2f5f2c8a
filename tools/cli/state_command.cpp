// PLACEHOLDER (replaced this session by its owner): shmbus state.
#include <CLI/CLI.hpp>

#include "command.hpp"

namespace shmbus::tools {

Command add_state_command(CLI::App& app) {
  auto* sub = app.add_subcommand("state", "(not built yet)");
  return {sub, [] { return kExitUsage; }};
}

}  // namespace shmbus::tools
