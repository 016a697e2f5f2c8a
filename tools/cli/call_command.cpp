// PLACEHOLDER (replaced this session by its owner): shmbus call / cast.
#include <CLI/CLI.hpp>

#include "command.hpp"

namespace shmbus::tools {

Command add_call_command(CLI::App& app) {
  auto* sub = app.add_subcommand("call", "(not built yet)");
  return {sub, [] { return kExitUsage; }};
}

Command add_cast_command(CLI::App& app) {
  auto* sub = app.add_subcommand("cast", "(not built yet)");
  return {sub, [] { return kExitUsage; }};
}

}  // namespace shmbus::tools
