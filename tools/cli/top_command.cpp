// shmbus top [BUS] [--interval SECONDS] — `ps` live: per-service rates
// (calls/s, casts/s, errors/s), the interval's handler latency p50/p99,
// queue depth, dead letters, servers and restarts, redrawn in place
// (top_render.hpp). `q` or Ctrl-C quits (exit 0); the terminal is always put
// back. Needs a terminal on stdin and stdout: otherwise exit 64 at once (use
// `shmbus ps --json` in scripts). Exits no_such_bus when the bus is removed.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bus_snapshot.hpp"
#include "command.hpp"
#include "top_render.hpp"
#include "top_screen.hpp"

namespace shmbus::tools {

namespace {

struct TopOptions {
  std::string bus;
  double interval = 1.0;
};

int run_top(const TopOptions& options) {
  if (!on_a_terminal()) {
    std::fprintf(stderr,
                 "shmbus: top needs a terminal on stdin and stdout; for scripts use "
                 "`shmbus ps --json`\n");
    return kExitUsage;
  }
  auto chosen = choose_bus(options.bus, "top");
  if (!chosen) return fail_with(chosen.error());
  if (!*chosen) return kExitUsage;
  auto watcher = BusWatcher::attach(**chosen, "shmbus-top");
  if (!watcher) return fail_with(watcher.error());
  auto first = watcher->snapshot();
  if (!first) return fail_with(first.error());

  const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(options.interval));
  const std::string interval_text = fmt::format("{:g}s", options.interval);
  std::optional<Error> ended_by;
  {
    auto screen = TerminalSession::open();
    if (!screen) return fail_with(screen.error());
    BusSnapshot now = std::move(*first);
    std::optional<BusSnapshot> before;
    auto next = now.taken + period;
    screen->draw(render_top(now, nullptr, interval_text));
    for (;;) {
      const auto event = screen->wait(next);
      if (event == TerminalSession::Event::quit) break;
      if (event != TerminalSession::Event::timeout) {
        // A key or a resize: draw the same data again (the rates keep their interval).
        screen->draw(render_top(now, before ? &*before : nullptr, interval_text));
        continue;
      }
      auto fresh = watcher->snapshot();
      if (!fresh) {
        ended_by = fresh.error();
        break;
      }
      before = std::move(now);
      now = std::move(*fresh);
      next += period;
      if (next < now.taken) next = now.taken + period;  // fell behind (a stopped terminal)
      screen->draw(render_top(now, &*before, interval_text));
    }
  }  // the terminal is back to normal before any message is printed
  if (ended_by) return fail_with(*ended_by);
  return 0;
}

}  // namespace

Command add_top_command(CLI::App& app) {
  auto options = std::make_shared<TopOptions>();
  auto* sub = app.add_subcommand("top", "Watch a bus live: rates, latency, depth, servers");
  sub->add_option("bus", options->bus, "the bus (default: the only bus on this host)");
  sub->add_option("--interval", options->interval, "seconds between refreshes (default 1)")
      ->check(CLI::Range(0.05, 3600.0));
  return {sub, [options] { return run_top(*options); }};
}

}  // namespace shmbus::tools
