// PLACEHOLDER (replaced this session by its owner): shmbus top.
#include <CLI/CLI.hpp>

#include "command.hpp"

namespace shmbus::tools {

Command add_top_command(CLI::App& app) {
  auto* sub = app.add_subcommand("top", "(not built yet)");
  return {sub, [] { return kExitUsage; }};
}

}  // namespace shmbus::tools
