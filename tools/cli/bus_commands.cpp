// The bus-as-files commands:
//
//   shmbus list            buses on this host, in use or not
//   shmbus down BUS        remove a bus (its processes keep their mappings until they exit)
//   shmbus gc [--dry-run] [--min-age S] [BUS…]
//                          remove buses no process uses any more (stale after a crash);
//                          with names, only those
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "command.hpp"
#include "gc.hpp"
#include "shmbus/bus.hpp"

namespace shmbus::tools {

Command add_list_command(CLI::App& app) {
  auto* sub = app.add_subcommand("list", "List the buses on this host and whether any process uses them");
  return {sub, [] {
            auto buses = Bus::list();
            if (!buses) return fail_with(buses.error());
            for (const auto& name : *buses) {
              auto used = Bus::in_use(name);
              std::printf("%s\t%s\n", name.c_str(),
                          !used ? to_string(used.error().code) : *used ? "in use" : "unused");
            }
            return 0;
          }};
}

Command add_down_command(CLI::App& app) {
  auto bus = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("down", "Remove a bus and all its segments");
  sub->add_option("bus", *bus, "the bus name")->required();
  return {sub, [bus] {
            if (auto removed = Bus::remove(*bus); !removed) return fail_with(removed.error());
            std::printf("removed bus '%s'\n", bus->c_str());
            return 0;
          }};
}

Command add_gc_command(CLI::App& app) {
  struct Options {
    bool dry_run = false;
    long min_age = 10;
    std::vector<std::string> only;
  };
  auto options = std::make_shared<Options>();
  auto* sub = app.add_subcommand(
      "gc", "Remove buses whose processes are all gone (left by a crash); never one in use");
  sub->add_flag("--dry-run", options->dry_run, "only say what would be removed");
  sub->add_option("--min-age", options->min_age,
                  "leave segments younger than this many seconds (a bus being created)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("bus", options->only, "only these buses (default: every bus on this host)");
  return {sub, [options] {
            auto result = collect_stale_buses(options->dry_run,
                                              std::chrono::seconds(options->min_age), options->only);
            if (!result) return fail_with(result.error());
            for (const auto& line : result->removed) {
              std::printf("%s %s\n", options->dry_run ? "would remove" : "removed", line.c_str());
            }
            for (const auto& line : result->kept) std::printf("kept %s\n", line.c_str());
            return 0;
          }};
}

}  // namespace shmbus::tools
