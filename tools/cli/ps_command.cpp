// PLACEHOLDER (replaced this session by its owner): shmbus ps.
#include <CLI/CLI.hpp>

#include "command.hpp"

namespace shmbus::tools {

Command add_ps_command(CLI::App& app) {
  auto* sub = app.add_subcommand("ps", "(not built yet)");
  return {sub, [] { return kExitUsage; }};
}

}  // namespace shmbus::tools
