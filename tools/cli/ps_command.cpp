// shmbus ps [BUS] [--json] — what runs on a bus: its services (servers, queue
// depth, dead letters, counters, errors by kind, handler latency), each
// server's pid, uptime, restarts and state, the launcher's children that do
// not serve (failed, restarting), and the process table. Output shapes:
// ps_render.hpp. Without BUS: the only bus on this host (several: exit 64).
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "bus_snapshot.hpp"
#include "command.hpp"
#include "ps_render.hpp"

namespace shmbus::tools {

Command add_ps_command(CLI::App& app) {
  struct Options {
    std::string bus;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  auto* sub = app.add_subcommand(
      "ps", "Show a bus's services, servers, counters and launcher children");
  sub->add_option("bus", options->bus, "the bus (default: the only bus on this host)");
  sub->add_flag("--json", options->json, "one JSON object (shape: tools/cli/ps_render.hpp)");
  return {sub, [options] {
            auto chosen = choose_bus(options->bus, "ps");
            if (!chosen) return fail_with(chosen.error());
            if (!*chosen) return kExitUsage;
            auto watcher = BusWatcher::attach(**chosen, "shmbus-ps");
            if (!watcher) return fail_with(watcher.error());
            auto snapshot = watcher->snapshot();
            if (!snapshot) return fail_with(snapshot.error());
            const std::string text =
                options->json ? render_ps_json(*snapshot) : render_ps_text(*snapshot);
            std::fwrite(text.data(), 1, text.size(), stdout);
            return std::fflush(stdout) == 0 ? 0 : static_cast<int>(Errc::system_error);
          }};
}

}  // namespace shmbus::tools
