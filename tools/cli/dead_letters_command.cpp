// PLACEHOLDER (replaced this session by its owner): shmbus dead-letters.
#include <CLI/CLI.hpp>

#include "command.hpp"

namespace shmbus::tools {

Command add_dead_letters_command(CLI::App& app) {
  auto* sub = app.add_subcommand("dead-letters", "(not built yet)");
  return {sub, [] { return kExitUsage; }};
}

}  // namespace shmbus::tools
