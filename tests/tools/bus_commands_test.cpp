// The shmbus tool's bus commands, run as a user runs them: list, down, gc.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <chrono>
#include <algorithm>
#include <cstdio>
#include <string>

#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"
#include "tool_run.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

struct CliRun {
  int status = -1;
  std::string out;
};

#ifndef SHMBUS_CLI  // (the tools suite always defines it)
#define SHMBUS_CLI ""  // built without the tools (sanitizer stages): the tests skip
#endif

// `shmbus args`, its stdout and stderr read (or what `redirect` leaves on the pipe).
CliRun shmbus_cli(const std::string& args, const std::string& redirect = "2>&1") {
  const test::ToolRun run = test::run_shell(std::string(SHMBUS_CLI) + " " + args + " " + redirect);
  return {run.status, run.out};
}

bool exists(const std::string& bus) {
  auto buses = Bus::list();
  return buses && std::find(buses->begin(), buses->end(), bus) != buses->end();
}

TEST(Cli, DownRemovesABusAndSaysNoSuchBusTheSecondTime) {
  if (std::string(SHMBUS_CLI).empty()) GTEST_SKIP() << "built without the shmbus tool";
  const std::string name = test::unique_bus_name();
  { auto bus = Bus::create(name); ASSERT_TRUE(bus) << bus.error().message(); }
  const CliRun list = shmbus_cli("list");
  EXPECT_EQ(list.status, 0) << list.out;
  EXPECT_NE(list.out.find(name + "\tunused"), std::string::npos) << list.out;
  const CliRun down = shmbus_cli("down " + name);
  EXPECT_EQ(down.status, 0) << down.out;
  EXPECT_FALSE(exists(name));
  const CliRun again = shmbus_cli("down " + name);
  EXPECT_EQ(again.status, static_cast<int>(Errc::no_such_bus)) << again.out;
  EXPECT_NE(again.out.find("no_such_bus"), std::string::npos) << again.out;
  EXPECT_EQ(shmbus_cli("no-such-command").status, 64);
}

TEST(Cli, OutputThatCannotBeWrittenIsAFailureNotExitZero) {
  if (std::string(SHMBUS_CLI).empty()) GTEST_SKIP() << "built without the shmbus tool";
  auto bus = test::ScopedBus::create();
  // stdout to /dev/full (every write fails with ENOSPC, as on a full disk),
  // stderr to the pipe.
  const CliRun list = shmbus_cli("list", "2>&1 >/dev/full");
  EXPECT_EQ(list.status, static_cast<int>(Errc::system_error)) << list.out;
  EXPECT_NE(list.out.find("shmbus: system_error: cannot write standard output: No space left "
                          "on device"),
            std::string::npos)
      << list.out;
  const CliRun ps = shmbus_cli("ps " + bus.name() + " --json", "2>&1 >/dev/full");
  EXPECT_EQ(ps.status, static_cast<int>(Errc::system_error)) << ps.out;
  const CliRun ls = shmbus_cli("state ls " + bus.name() + " --json", "2>&1 >/dev/full");
  EXPECT_EQ(ls.status, static_cast<int>(Errc::system_error)) << ls.out;
}

TEST(Cli, GcRemovesABusWhoseProcessesDiedAndNeverOneInUse) {
  if (std::string(SHMBUS_CLI).empty()) GTEST_SKIP() << "built without the shmbus tool";
  auto live = test::ScopedBus::create();
  // A bus whose only process was killed: stale.
  const std::string stale = test::unique_bus_name();
  { auto bus = Bus::create(stale); ASSERT_TRUE(bus) << bus.error().message(); }
  {
    test::Child holder = test::Child::spawn("attach", {"--bus", stale});
    ASSERT_TRUE(test::wait_until(10s, [&] { return holder.printed("ready"); })) << holder.output();
    const CliRun busy = shmbus_cli("gc --min-age 0 " + stale);
    EXPECT_EQ(busy.status, 0) << busy.out;
    EXPECT_TRUE(exists(stale)) << "removed while a process used it:\n" << busy.out;
    holder.kill_9();
    (void)holder.wait();
  }
  const CliRun young = shmbus_cli("gc " + stale);
  EXPECT_TRUE(exists(stale)) << "a bus younger than --min-age was removed:\n" << young.out;
  // Every bus of the host, but only saying: other tests' buses are not ours.
  const CliRun dry = shmbus_cli("gc --dry-run --min-age 0");
  EXPECT_NE(dry.out.find("would remove bus '" + stale + "'"), std::string::npos) << dry.out;
  EXPECT_TRUE(exists(stale));
  const CliRun gc = shmbus_cli("gc --min-age 0 " + stale + " " + live.name());
  EXPECT_EQ(gc.status, 0) << gc.out;
  EXPECT_FALSE(exists(stale)) << gc.out;
  EXPECT_TRUE(exists(live.name())) << "a bus in use was removed:\n" << gc.out;
  EXPECT_NE(gc.out.find("kept bus '" + live.name() + "' (in use)"), std::string::npos) << gc.out;
}

}  // namespace
}  // namespace shmbus
