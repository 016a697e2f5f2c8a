// command.hpp — how the shmbus tool's subcommands plug into main.cpp.
//
// Each subcommand lives in its own file: it adds its CLI11 subcommand to the
// tool's app and returns it with what to run once the command line parsed.
// The run function returns the process's exit status:
//
//   0                 success
//   1 … 63            the shmbus::Errc of the failure (error.hpp: stable values)
//   64  kExitUsage    bad command line (CLI11 prints the help line)
//   65  kExitData     input that does not fit (JSON against a schema, a bad file)
//   66  kExitNoInput  an input file that cannot be read
//   69  kExitFailed   the launcher ended because a service failed for good
//   75  kExitUnhandled the launcher stopped with messages left (queued, dead letters)
//   78  kExitConfig   a launcher config error (file:line: what is wrong)
//
// (64…78 are sysexits.h's values, so shell scripts can tell them apart.)
#pragma once

#include <functional>

#include "shmbus/error.hpp"

namespace CLI {
class App;
}

namespace shmbus::tools {

inline constexpr int kExitUsage = 64;
inline constexpr int kExitData = 65;
inline constexpr int kExitNoInput = 66;
inline constexpr int kExitFailed = 69;
inline constexpr int kExitUnhandled = 75;
inline constexpr int kExitConfig = 78;

// A subcommand: its CLI11 app (a child of the tool's) and what it runs when
// it was the one parsed.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// Prints "shmbus: <message>" on stderr and returns the error's exit status.
int fail_with(const Error& error);

// One per subcommand file; each adds its subcommand(s) to `app`.
Command add_list_command(CLI::App& app);           // bus_commands.cpp: list
Command add_down_command(CLI::App& app);           // bus_commands.cpp: down
Command add_gc_command(CLI::App& app);             // bus_commands.cpp: gc
Command add_launch_command(CLI::App& app);         // launch_command.cpp
Command add_ps_command(CLI::App& app);             // ps_command.cpp
Command add_top_command(CLI::App& app);            // top_command.cpp
Command add_call_command(CLI::App& app);           // call_command.cpp: call
Command add_cast_command(CLI::App& app);           // call_command.cpp: cast
Command add_state_command(CLI::App& app);          // state_command.cpp: put|get|ls|rm
Command add_dead_letters_command(CLI::App& app);   // dead_letters_command.cpp

}  // namespace shmbus::tools
