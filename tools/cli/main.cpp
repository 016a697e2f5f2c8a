// shmbus — the command-line tool. This first part manages buses as files:
//
//   shmbus list            buses on this host, in use or not
//   shmbus down BUS        remove a bus (its processes keep their mappings until they exit)
//   shmbus gc [--dry-run] [--min-age S] [BUS…]
//                          remove buses no process uses any more (stale after a crash);
//                          with names, only those
//
// Exit codes: 0 on success, else the shmbus::Errc value of the failure
// (error.hpp: the values are stable), 64 for a usage error.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "gc.hpp"
#include "shmbus/bus.hpp"

namespace {

int fail_with(const shmbus::Error& error) {
  std::fprintf(stderr, "shmbus: %s\n", error.message().c_str());
  return static_cast<int>(error.code);
}

int list_buses() {
  auto buses = shmbus::Bus::list();
  if (!buses) return fail_with(buses.error());
  for (const auto& name : *buses) {
    auto used = shmbus::Bus::in_use(name);
    std::printf("%s\t%s\n", name.c_str(),
                !used ? shmbus::to_string(used.error().code) : *used ? "in use" : "unused");
  }
  return 0;
}

int down(const std::string& bus) {
  if (auto removed = shmbus::Bus::remove(bus); !removed) return fail_with(removed.error());
  std::printf("removed bus '%s'\n", bus.c_str());
  return 0;
}

int gc(bool dry_run, long min_age, const std::vector<std::string>& only) {
  auto result = shmbus::tools::collect_stale_buses(dry_run, std::chrono::seconds(min_age), only);
  if (!result) return fail_with(result.error());
  for (const auto& line : result->removed) {
    std::printf("%s %s\n", dry_run ? "would remove" : "removed", line.c_str());
  }
  for (const auto& line : result->kept) std::printf("kept %s\n", line.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shmbus: manage zero-copy shared-memory buses"};
  app.require_subcommand(1);
  auto* list_cmd = app.add_subcommand("list", "List the buses on this host and whether any process uses them");
  std::string bus;
  auto* down_cmd = app.add_subcommand("down", "Remove a bus and all its segments");
  down_cmd->add_option("bus", bus, "the bus name")->required();
  bool dry_run = false;
  auto* gc_cmd = app.add_subcommand(
      "gc", "Remove buses whose processes are all gone (left by a crash); never one in use");
  gc_cmd->add_flag("--dry-run", dry_run, "only say what would be removed");
  long min_age = 10;
  gc_cmd->add_option("--min-age", min_age,
                     "leave segments younger than this many seconds (a bus being created)")
      ->check(CLI::NonNegativeNumber);
  std::vector<std::string> only;
  gc_cmd->add_option("bus", only, "only these buses (default: every bus on this host)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : 64;
  }
  if (list_cmd->parsed()) return list_buses();
  if (down_cmd->parsed()) return down(bus);
  if (gc_cmd->parsed()) return gc(dry_run, min_age, only);
  return 64;
}
