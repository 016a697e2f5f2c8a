// `shmbus launch` as a user runs it: real launcher, real workers (the test
// child's launch_worker role), real signals. Every test ends with its bus
// removed (by the launcher, or by `shmbus gc` after a killed launcher).
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "launch_support.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/schemas/mailer_generated.h"
#include "shmbus/schemas/mailer_reply_generated.h"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"
#include "tool_run.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::bus_exists;

constexpr auto kReady = 15s;

// One [[service]] running the test child's launch_worker role.
std::string worker_service(const std::string& name, int servers, const std::string& worker_args,
                           const std::string& extra = "") {
  return "\n[[service]]\nname = \"" + name + "\"\nservers = " + std::to_string(servers) +
         "\ncommand = [\"" SHMBUS_TEST_CHILD "\", \"launch_worker\"" + worker_args + "]\n" + extra;
}

std::vector<int> live_pids(Bus& bus, const std::string& service) {
  std::vector<int> pids;
  for (const auto& info : bus.services()) {
    if (info.name != service) continue;
    for (const auto& server : info.servers) {
      if (server.alive && !server.leaving) pids.push_back(server.pid);
    }
  }
  return pids;
}

std::uint64_t unix_ns_now() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Live servers of `service` that joined at or after `since_unix_ns`.
int joined_since(Bus& bus, const std::string& service, std::uint64_t since_unix_ns) {
  int joined = 0;
  for (const auto& info : bus.services()) {
    if (info.name != service) continue;
    for (const auto& server : info.servers) {
      joined += server.alive && !server.leaving && server.joined_unix_ns >= since_unix_ns ? 1 : 0;
    }
  }
  return joined;
}

// "handled N" lines the workers appended to `text`, summed.
long handled(const std::string& text) {
  std::istringstream in(text);
  std::string word;
  long sum = 0, n = 0;
  while (in >> word >> n) sum += n;
  return sum;
}

// Gone, or a zombie nobody reaped yet: not running any more.
bool ended(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

// Casts `count` messages to `service`; every one must be accepted.
void cast_all(Bus& bus, const std::string& name, int count) {
  auto service = bus.service(name);
  ASSERT_TRUE(service) << service.error().message();
  for (int i = 0; i < count; ++i) {
    const std::string text = "cast " + std::to_string(i);
    auto cast = service->cast(std::as_bytes(std::span(text)));
    ASSERT_TRUE(cast) << "cast " << i << ": " << to_string(cast.error());
  }
}

class LaunchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string(SHMBUS_CLI).empty()) GTEST_SKIP() << "built without the shmbus tool";
  }
  void TearDown() override {
    if (bus_exists(bus_)) (void)Bus::remove(bus_);  // only after a failed test
  }
  // Writes the config (a [bus] table with `bus_lines`, then `services`).
  std::string config(const std::string& bus_lines, const std::string& services) {
    return dir_.write("launch.toml", "[bus]\nname = \"" + bus_ + "\"\n" + bus_lines + services);
  }
  // Starts the launcher and waits for its ready line.
  test::Child launch(const std::string& file) {
    test::Child launcher = test::start_tool({"launch", file});
    EXPECT_TRUE(test::wait_until(kReady, [&] {
      return launcher.printed("ready: bus '" + bus_ + "'");
    })) << launcher.output();
    return launcher;
  }
  Bus attach() {
    auto bus = Bus::attach(bus_, {.ready_timeout = 5s, .label = "launch test"});
    EXPECT_TRUE(bus) << bus.error().message();
    return std::move(*bus);
  }
  test::ConfigDir dir_;
  std::string bus_ = test::unique_bus_name();
};

TEST_F(LaunchTest, AKilledWorkerIsRestartedAndTheStatusCountsIt) {
  test::Child launcher = launch(config("", worker_service("echo", 2, "")));
  {
    Bus bus = attach();
    std::vector<int> before;
    ASSERT_TRUE(
        test::wait_until(5s, [&] { return (before = live_pids(bus, "echo")).size() == 2; }));
    const std::uint64_t killed_at = unix_ns_now();
    ASSERT_EQ(::kill(before[0], SIGKILL), 0);
    // A replacement joins: two live servers again, the killed one not among
    // them, one joined after the kill (a dead server's row can read alive for
    // a moment, with the pid of the process taking over its process slot).
    ASSERT_TRUE(test::wait_until(5s, [&] {
      const auto now = live_pids(bus, "echo");
      return now.size() == 2 && std::find(now.begin(), now.end(), before[0]) == now.end() &&
             joined_since(bus, "echo", killed_at) == 1;
    })) << launcher.output();
    EXPECT_TRUE(test::wait_until(5s, [&] {
      return launcher.said(": exited (killed by SIGKILL); restarted as pid ");
    })) << launcher.output();
    EXPECT_TRUE(test::wait_until(5s, [&] {
      const auto a = test::status_restarts(bus, "echo.0"), b = test::status_restarts(bus, "echo.1");
      return a && b && *a + *b == 1;
    })) << "the status value does not show the restart";
    auto service = bus.service("echo");
    ASSERT_TRUE(service) << service.error().message();
    const std::string text = "ping";
    auto reply = service->call(std::as_bytes(std::span(text)), {.deadline = deadline_in(5s)});
    ASSERT_TRUE(reply) << to_string(reply.error());
  }
  launcher.signal(SIGTERM);
  EXPECT_EQ(launcher.wait(10s), 0) << launcher.output();
  EXPECT_TRUE(launcher.printed("unhandled: none")) << launcher.output();
  EXPECT_FALSE(bus_exists(bus_));
}

TEST_F(LaunchTest, ATypedServiceIsRegisteredAsItsWorkersDeclareIt) {
  namespace mailer = shmbus::examples::mailer;
  // No ids in the config: they come from the schema files ("MAIL", "MALR"),
  // and the registered hash must be what ServiceSchema::of computes, or the
  // workers' Server::join would fail with schema_mismatch.
  test::Child launcher =
      launch(config("", worker_service("mailer", 2, ", \"--typed\", \"1\"",
                                       "schema = \"examples/mailer.fbs\"\n"
                                       "request = \"shmbus.examples.mailer.SendEmail\"\n"
                                       "reply = \"shmbus.examples.mailer.EmailSent\"\n")));
  EXPECT_TRUE(launcher.printed("ready: bus '" + bus_ + "' (1 service, 2 servers;"))
      << launcher.output();
  {
    Bus bus = attach();
    const auto expected = ServiceSchema::of<mailer::SendEmail, mailer::EmailSent>("MAIL", "MALR");
    for (const auto& info : bus.services()) {
      EXPECT_EQ(info.options.schema.hash, expected.hash);
      EXPECT_EQ(info.options.schema.path, "examples/mailer.fbs");
      EXPECT_EQ(info.options.schema.request_type, "shmbus.examples.mailer.SendEmail");
    }
    auto service = bus.service("mailer");
    ASSERT_TRUE(service) << service.error().message();
    flatbuffers::FlatBufferBuilder builder;
    builder.Finish(
        mailer::CreateSendEmailDirect(builder, "a@example.org", "A", "s", "b", nullptr, 7), "MAIL");
    auto reply =
        service->call(std::as_bytes(std::span(builder.GetBufferPointer(), builder.GetSize())),
                      {.deadline = deadline_in(5s)});
    ASSERT_TRUE(reply) << to_string(reply.error());
    MessageBuffer scratch;
    auto sent = reply->read<mailer::EmailSent>("MALR", scratch);
    ASSERT_TRUE(sent) << to_string(sent.error());
    EXPECT_EQ((*sent)->message_id(), 7u);
  }
  launcher.signal(SIGINT);
  EXPECT_EQ(launcher.wait(10s), 0) << launcher.output();
  EXPECT_FALSE(bus_exists(bus_));
}

TEST_F(LaunchTest, AFailingServiceIsReportedAndTheOthersKeepServing) {
  test::Child launcher = launch(config(
      "on_failure = \"keep_others\"\ndrain_grace = 60.0\n",
      worker_service("good", 1, "") +
          worker_service("bad", 1, ", \"--exit-code\", \"1\"", "max_restarts = 2\nwithin = 5\n")));
  EXPECT_TRUE(test::wait_until(10s, [&] {
    return launcher.printed(
        "service 'bad' failed: bad.0 exceeded 2 restarts in 5 s (last exit: code 1)");
  })) << launcher.output();
  EXPECT_TRUE(launcher.said("service 'bad' has 0 of 1 live servers (failed)")) << launcher.output();
  {
    Bus bus = attach();
    auto service = bus.service("good");
    ASSERT_TRUE(service) << service.error().message();
    const std::string text = "still here";
    auto reply = service->call(std::as_bytes(std::span(text)), {.deadline = deadline_in(5s)});
    ASSERT_TRUE(reply) << to_string(reply.error());
    cast_all(bus, "bad", 3);  // accepted, but nobody will ever take them
  }
  launcher.signal(SIGTERM);
  // No wait for a drain that cannot happen: well before drain_grace (60 s).
  EXPECT_EQ(launcher.wait(30s), 69) << launcher.output();
  EXPECT_TRUE(launcher.printed("unhandled: service 'bad': 3 queued, 0 dead letters"))
      << launcher.output();
  EXPECT_FALSE(bus_exists(bus_));
}

TEST_F(LaunchTest, AFailingServiceUnderShutDownStopsEverything) {
  test::Child launcher = test::start_tool(
      {"launch",
       config("on_failure = \"shut_down\"\n",
              worker_service("good", 1, "") +
                  worker_service("bad", 1, ", \"--exit-code\", \"1\"", "max_restarts = 1\n"))});
  EXPECT_EQ(launcher.wait(15s), 69) << launcher.output();
  EXPECT_TRUE(launcher.printed("service 'bad' failed: bad.0 exceeded 1 restarts in 5 s"))
      << launcher.output();
  EXPECT_TRUE(launcher.printed("good.0: stopped")) << launcher.output();
  EXPECT_FALSE(bus_exists(bus_));
}

// A group other than the test's own that it may give its files (root: any;
// others: a supplementary group), so that the launcher's chgrp shows; the
// own group when there is none.
gid_t another_group() {
  const gid_t own = ::getegid();
  if (::geteuid() == 0) {
    for (const gid_t gid : {1u, 2u, 3u, 100u}) {
      if (gid != own && ::getgrgid(gid) != nullptr) return gid;
    }
  }
  std::vector<gid_t> groups(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
  groups.resize(static_cast<std::size_t>(
      std::max(::getgroups(static_cast<int>(groups.size()), groups.data()), 0)));
  for (const gid_t gid : groups) {
    if (gid != own && ::getgrgid(gid) != nullptr) return gid;
  }
  return own;
}

TEST_F(LaunchTest, ItsSegmentsGetTheConfiguredGroupAndMode) {
  const gid_t gid = another_group();
  const group* chosen = ::getgrgid(gid);
  ASSERT_NE(chosen, nullptr);
  test::Child launcher = launch(config("group = \"" + std::string(chosen->gr_name) + "\"\n",
                                       worker_service("echo", 1, "")));
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/shmbus." + bus_).c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, gid);
  struct stat pool {};
  ASSERT_EQ(::stat(("/dev/shm/shmbus." + bus_ + ".echo~pool").c_str(), &pool), 0);
  EXPECT_EQ(pool.st_gid, gid) << "a service's mailbox keeps the launcher's own group";
  EXPECT_EQ(st.st_mode & 0777, 0660u) << "a group bus defaults to mode 0660";
  launcher.signal(SIGHUP);  // a closed terminal stops it in order too
  EXPECT_EQ(launcher.wait(10s), 0) << launcher.output();
}

TEST_F(LaunchTest, ASecondLaunchOfARunningBusIsRefused) {
  const std::string file = config("", worker_service("echo", 1, ""));
  test::Child launcher = launch(file);
  const test::ToolRun again = test::run_tool({"launch", file}, 10s);
  EXPECT_EQ(again.status, static_cast<int>(Errc::bus_exists)) << again.out;
  EXPECT_NE(again.out.find("bus '" + bus_ + "' is already running (launcher pid " +
                           std::to_string(launcher.pid()) + ")"),
            std::string::npos)
      << again.out;
  EXPECT_TRUE(bus_exists(bus_)) << "the refused launch removed the running bus";
  launcher.signal(SIGTERM);
  EXPECT_EQ(launcher.wait(10s), 0) << launcher.output();
  EXPECT_FALSE(bus_exists(bus_));
}

TEST_F(LaunchTest, SigtermClosesTheServicesAndDrainsEveryAcceptedCast) {
  constexpr int kCasts = 200;  // 2 servers × 8 ms each: about 0.8 s of work
  test::Child launcher = launch(config(
      "drain_grace = 10.0\n",
      worker_service("slow", 2,
                     ", \"--work-us\", \"8000\", \"--count-file\", \"${CONFIG_DIR}/handled\"",
                     "mailbox_capacity = 256\n")));
  {
    Bus bus = attach();
    cast_all(bus, "slow", kCasts);
    launcher.signal(SIGTERM);
    ASSERT_TRUE(test::wait_until(5s, [&] {
      return launcher.said("services closed to new messages");
    })) << launcher.output();
    // Closed while draining: refused, never queued behind the drain.
    auto service = bus.service("slow");
    ASSERT_TRUE(service) << service.error().message();
    const std::string late = "too late";
    EXPECT_EQ(service->cast(std::as_bytes(std::span(late))).error(), Errc::stopped);
  }
  EXPECT_EQ(launcher.wait(20s), 0) << launcher.output();
  EXPECT_TRUE(launcher.printed("stopping: drained")) << launcher.output();
  EXPECT_TRUE(launcher.printed("unhandled: none")) << launcher.output();
  EXPECT_EQ(handled(dir_.read("handled")), kCasts) << dir_.read("handled");
  EXPECT_FALSE(bus_exists(bus_));
}

TEST_F(LaunchTest, ADrainGraceTooShortReportsWhatIsLeft) {
  constexpr int kCasts = 100;  // 1 server × 20 ms each: 2 s of work, 0.1 s of grace
  test::Child launcher = launch(config(
      "drain_grace = 0.1\n",
      worker_service("slow", 1,
                     ", \"--work-us\", \"20000\", \"--count-file\", \"${CONFIG_DIR}/handled\"",
                     "mailbox_capacity = 128\n")));
  {
    Bus bus = attach();
    cast_all(bus, "slow", kCasts);
  }
  launcher.signal(SIGTERM);
  EXPECT_EQ(launcher.wait(20s), 75) << launcher.output();
  const long done = handled(dir_.read("handled"));
  EXPECT_LT(done, kCasts);
  // Nothing lost silently: what was not handled is reported as queued.
  EXPECT_TRUE(launcher.printed("unhandled: service 'slow': " + std::to_string(kCasts - done) +
                               " queued, 0 dead letters"))
      << "handled " << done << "\n"
      << launcher.output();
  EXPECT_FALSE(bus_exists(bus_));
}

TEST_F(LaunchTest, ACastItsWorkerWasKilledInTheMiddleOfIsReportedNotLost) {
  // The worker takes the cast and works 30 s on it; the drain and the
  // worker's shutdown_grace are short, so the stop ends in SIGKILL mid-cast.
  test::Child launcher = launch(config(
      "drain_grace = 0.1\n",
      worker_service("stuck", 1, ", \"--work-us\", \"30000000\"", "shutdown_grace = 0.2\n")));
  {
    Bus bus = attach();
    cast_all(bus, "stuck", 1);
    ASSERT_TRUE(test::wait_until(5s, [&] {  // taken: out of the queue, not done
      for (const auto& info : bus.services()) {
        if (info.name == "stuck") return info.depth == 0 && info.mailboxes.consumed == 0;
      }
      return false;
    }));
  }
  launcher.signal(SIGTERM);
  EXPECT_EQ(launcher.wait(10s), 75) << launcher.output();
  EXPECT_TRUE(launcher.printed(
      "unhandled: service 'stuck': 0 queued, 1 cut off (its server was stopped mid-message), "
      "0 dead letters"))
      << launcher.output();
  EXPECT_FALSE(bus_exists(bus_));
}

TEST_F(LaunchTest, ASecondSignalSkipsTheDrain) {
  constexpr int kCasts = 100;  // 1 server × 20 ms each: 2 s of work, 10 s of grace
  test::Child launcher =
      launch(config("drain_grace = 10.0\n", worker_service("slow", 1, ", \"--work-us\", \"20000\"",
                                                           "mailbox_capacity = 128\n")));
  {
    Bus bus = attach();
    cast_all(bus, "slow", kCasts);
  }
  launcher.signal(SIGTERM);
  ASSERT_TRUE(test::wait_until(5s, [&] { return launcher.said("draining the queues"); }))
      << launcher.output();
  launcher.signal(SIGINT);
  EXPECT_EQ(launcher.wait(30s), 75) << launcher.output();  // a skipped drain: 75, not 0
  EXPECT_TRUE(launcher.printed("stopping: second signal (SIGINT): not draining"))
      << launcher.output();
  EXPECT_TRUE(launcher.printed("unhandled: service 'slow': ")) << launcher.output();
  EXPECT_FALSE(bus_exists(bus_));
}

TEST_F(LaunchTest, AKilledLauncherTakesItsWorkersAndGcRemovesItsBus) {
  test::Child launcher = launch(config("", worker_service("echo", 2, "")));
  std::vector<int> workers;
  {
    Bus bus = attach();
    ASSERT_TRUE(
        test::wait_until(5s, [&] { return (workers = live_pids(bus, "echo")).size() == 2; }));
  }
  launcher.kill_9();
  (void)launcher.wait(5s);
  for (int pid : workers) {
    EXPECT_TRUE(test::wait_until(5s, [&] { return ended(pid); }))
        << "worker " << pid << " outlived its launcher";
  }
  EXPECT_TRUE(bus_exists(bus_)) << "a killed launcher cannot remove its bus";
  const test::ToolRun gc = test::run_tool({"gc", "--min-age", "0", bus_}, 10s);
  EXPECT_EQ(gc.status, 0) << gc.out;
  EXPECT_FALSE(bus_exists(bus_)) << gc.out;
}

}  // namespace
}  // namespace shmbus
