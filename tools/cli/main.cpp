// shmbus — the command-line tool: launch and supervise a bus's workers,
// inspect a live bus, call its services from the shell, manage its state and
// dead letters, and remove buses. `shmbus --help`, `shmbus CMD --help`.
// Exit codes: command.hpp.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "command.hpp"

namespace shmbus::tools {

int fail_with(const Error& error) {
  std::fprintf(stderr, "shmbus: %s\n", error.message().c_str());
  return static_cast<int>(error.code);
}

}  // namespace shmbus::tools

int main(int argc, char** argv) {
  using namespace shmbus::tools;
  CLI::App app{"shmbus: zero-copy shared-memory bus — launch, inspect, call, manage"};
  app.require_subcommand(1);
  const std::vector<Command> commands = {
      add_launch_command(app), add_ps_command(app),    add_top_command(app),
      add_call_command(app),   add_cast_command(app),  add_state_command(app),
      add_dead_letters_command(app),
      add_list_command(app),   add_down_command(app),  add_gc_command(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : kExitUsage;
  }
  for (const auto& command : commands) {
    if (!command.app->parsed()) continue;
    const int status = command.run();
    // What a command printed must have reached its stdout: `shmbus state ls --json >
    // file` on a full disk is a failure, not exit 0. (The launcher's progress
    // lines are not its result: its status says what happened to the messages.)
    const bool flushed = std::fflush(stdout) == 0;
    const int error = errno;
    if ((!flushed || std::ferror(stdout) != 0) && status == 0 &&
        command.app->get_name() != "launch") {
      return fail_with({shmbus::Errc::system_error,
                        std::string("cannot write standard output: ") +
                            (flushed ? "a write failed" : std::strerror(error))});
    }
    return status;
  }
  return kExitUsage;
}
