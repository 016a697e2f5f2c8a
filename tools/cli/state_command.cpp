// shmbus state — the bus's read-mostly state from the shell:
//
//   shmbus state put BUS KEY FILE [--progress]   FILE "-": standard input
//   shmbus state get BUS KEY [-o FILE]           the value's bytes, binary-safe
//   shmbus state ls BUS [--json]                 keys, sizes, versions, usage
//   shmbus state rm BUS KEY
//
// put reads the file straight into the space it reserved (state.hpp's
// begin_put); a read error or a short file aborts it: nothing is published
// (exit 66). The logic lives in state_transfer.cpp.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "command.hpp"
#include "shmbus/bus.hpp"
#include "state_transfer.hpp"

namespace shmbus::tools {

namespace {

struct StateOptions {
  std::string bus, key, file, output;
  bool progress = false;
  bool json = false;
};

Outcome<Bus> attach(const std::string& name) {
  auto bus = Bus::attach(name, {.label = "shmbus state"});
  if (!bus) return tl::unexpected(failure_of(bus.error()));
  return std::move(*bus);
}

Outcome<State> open_state(Bus& bus, StateAccess access) {
  auto state = bus.state(access);
  if (!state) return tl::unexpected(failure_of(state.error()));
  return std::move(*state);
}

int run_put(const StateOptions& o) {
  auto bus = attach(o.bus);
  if (!bus) return report_failure(bus.error());
  auto state = open_state(*bus, StateAccess::read_write);
  if (!state) return report_failure(state.error());
  const auto mode = o.progress || ::isatty(STDERR_FILENO) ? ProgressBar::Mode::live
                                                          : ProgressBar::Mode::final_only;
  auto put = put_file(*state, o.key, o.file, mode);
  if (!put) return report_failure(put.error());
  std::printf("put %s: %llu bytes, version %llu\n", o.key.c_str(),
              static_cast<unsigned long long>(put->bytes), static_cast<unsigned long long>(put->version));
  return 0;
}

int run_get(const StateOptions& o) {
  auto bus = attach(o.bus);
  if (!bus) return report_failure(bus.error());
  auto state = open_state(*bus, StateAccess::read_only);
  if (!state) return report_failure(state.error());
  auto got = get_to_file(*state, o.key, o.output);
  return got ? 0 : report_failure(got.error());
}

int run_ls(const StateOptions& o) {
  auto bus = attach(o.bus);
  if (!bus) return report_failure(bus.error());
  auto state = open_state(*bus, StateAccess::read_only);
  if (!state) return report_failure(state.error());
  std::fputs(render_state_list(state->list(), state->usage(), o.json).c_str(), stdout);
  return 0;
}

int run_rm(const StateOptions& o) {
  auto bus = attach(o.bus);
  if (!bus) return report_failure(bus.error());
  auto state = open_state(*bus, StateAccess::read_write);
  if (!state) return report_failure(state.error());
  if (auto removed = state->remove(o.key); !removed) {
    if (removed.error().code == Errc::no_such_key) {
      return fail_with({Errc::no_such_key, "no value under key '" + o.key + "' on bus '" + o.bus + "'"});
    }
    return fail_with(removed.error());
  }
  std::printf("removed %s\n", o.key.c_str());
  return 0;
}

}  // namespace

Command add_state_command(CLI::App& app) {
  auto o = std::make_shared<StateOptions>();
  auto* state = app.add_subcommand("state", "Put, get, list and remove the bus's state values");
  state->require_subcommand(1);

  auto* put = state->add_subcommand(
      "put", "Publish FILE's bytes as KEY's new version (read straight into the state segment; "
             "a read error or a short file publishes nothing, exit 66)");
  put->add_option("bus", o->bus, "the bus name")->required();
  put->add_option("key", o->key, "the key (1…63 bytes)")->required();
  put->add_option("file", o->file, "the value's file; - reads standard input")->required();
  put->add_flag("--progress", o->progress,
                "show progress on stderr also when it is not a terminal");

  auto* get = state->add_subcommand("get", "Write KEY's current value to standard output or FILE");
  get->add_option("bus", o->bus, "the bus name")->required();
  get->add_option("key", o->key, "the key")->required();
  get->add_option("-o,--output", o->output, "write to this file instead of standard output");

  auto* ls = state->add_subcommand("ls", "List the keys (size, version) and the segment's usage");
  ls->add_option("bus", o->bus, "the bus name")->required();
  ls->add_flag("--json", o->json, "one JSON object instead of a table");

  auto* rm = state->add_subcommand("rm", "Remove KEY's value (views that pin it keep it until they go)");
  rm->add_option("bus", o->bus, "the bus name")->required();
  rm->add_option("key", o->key, "the key")->required();

  return {state, [o, put, get, ls, rm] {
            if (put->parsed()) return run_put(*o);
            if (get->parsed()) return run_get(*o);
            if (ls->parsed()) return run_ls(*o);
            if (rm->parsed()) return run_rm(*o);
            return kExitUsage;
          }};
}

}  // namespace shmbus::tools
