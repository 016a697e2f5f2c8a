// shmbus ps, run as a user runs it: a bus whose mailer service is served by
// two real server processes (shmbus_test_child call_server), some calls and
// casts sent, then the text table, the JSON object (checked by python3's json
// module), the launcher's restarts, and a missing bus.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/schemas/launcher_generated.h"
#include "shmbus/schemas/mailer_generated.h"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"
#include "tool_run.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
namespace mailer = shmbus::examples::mailer;
namespace launcher = shmbus::launcher;

constexpr int kCalls = 12;
constexpr int kCasts = 5;

std::vector<std::byte> send_email(int id) {
  flatbuffers::FlatBufferBuilder builder;
  const std::string subject = std::to_string(id);
  builder.Finish(mailer::CreateSendEmailDirect(builder, "ps@example.com", "ps", subject.c_str()),
                 mailer::SendEmailIdentifier());
  const auto* data = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
  return {data, data + builder.GetSize()};
}

// A mailer service with two server processes and some traffic done.
struct ServedBus {
  test::ScopedBus bus = test::ScopedBus::create();
  test::Child first = test::Child::spawn("call_server", {"--bus", bus.name(), "--service", "mailer"});
  test::Child second = test::Child::spawn("call_server", {"--bus", bus.name(), "--service", "mailer"});

  // Fails the test (returns false) when the servers or the traffic do not come up.
  [[nodiscard]] bool serve_some_traffic() {
    if (!test::wait_until(10s, [&] { return first.printed("ready") && second.printed("ready"); })) {
      ADD_FAILURE() << "servers not ready:\n" << first.output() << second.output();
      return false;
    }
    auto service = bus->service("mailer");
    if (!service) {
      ADD_FAILURE() << service.error().message();
      return false;
    }
    for (int id = 1; id <= kCalls; ++id) {
      auto reply = service->call(send_email(id), {.deadline = deadline_in(10s)});
      if (!reply) {
        ADD_FAILURE() << "call " << id << ": " << to_string(reply.error());
        return false;
      }
    }
    for (int id = 1; id <= kCasts; ++id) {
      if (auto cast = service->cast(send_email(100 + id), {.deadline = deadline_in(10s)}); !cast) {
        ADD_FAILURE() << "cast " << id << ": " << to_string(cast.error());
        return false;
      }
    }
    // Casts are counted once a server ran them.
    const bool handled = test::wait_until(10s, [&] {
      for (const auto& s : bus->services()) {
        if (s.name == "mailer") return s.totals.casts == kCasts && s.totals.calls == kCalls;
      }
      return false;
    });
    EXPECT_TRUE(handled) << "the servers did not count the traffic";
    return handled;
  }
};

bool has_line_with(const std::string& text, const std::vector<std::string>& words) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    bool all = true;
    for (const auto& word : words) all = all && line.find(word) != std::string::npos;
    if (all) return true;
  }
  return false;
}

// Runs python3 on `json` with `script` (reading the object as `d`); returns
// what it printed and its exit status.
test::ToolRun python_on(const std::string& json, const std::string& script) {
  char path[] = "/tmp/shmbus_ps_test_XXXXXX";
  const int fd = ::mkstemp(path);
  test::ToolRun run;
  if (fd < 0) return run;
  (void)!::write(fd, json.data(), json.size());
  ::close(fd);
  run = test::run_shell("python3 -c 'import json,sys\nd = json.load(open(sys.argv[1]))\n" +
                        script + "' " + path);
  ::unlink(path);
  return run;
}

TEST(Ps, ShowsTheServiceItsServerPidsAndCounts) {
  ServedBus served;
  ASSERT_TRUE(served.serve_some_traffic());
  const auto ps = test::run_tool({"ps", served.bus.name()});
  ASSERT_EQ(ps.status, 0) << ps.out;
  EXPECT_TRUE(has_line_with(ps.out, {"mailer", "2/2", std::to_string(kCalls),
                                     std::to_string(kCasts)}))
      << ps.out;
  for (const pid_t pid : {served.first.pid(), served.second.pid()}) {
    EXPECT_TRUE(has_line_with(ps.out, {std::to_string(pid), "running"})) << pid << "\n" << ps.out;
  }
  EXPECT_NE(ps.out.find("call-server"), std::string::npos) << "process table:\n" << ps.out;
  EXPECT_EQ(ps.out.find("shmbus-ps"), std::string::npos) << "ps lists itself:\n" << ps.out;
}

TEST(Ps, JsonParsesAndHoldsThePidsAndCounters) {
  ServedBus served;
  ASSERT_TRUE(served.serve_some_traffic());
  const auto ps = test::run_tool({"ps", served.bus.name(), "--json"});
  ASSERT_EQ(ps.status, 0) << ps.out;
  const auto checked = python_on(ps.out, R"(
s = [x for x in d["services"] if x["name"] == "mailer"][0]
print("bus", d["bus"])
print("launcher", d["launcher"])
print("pids", " ".join(str(p) for p in sorted(x["pid"] for x in s["servers"])))
print("live", s["servers_live"])
print("counts", s["counters"]["calls"], s["counters"]["casts"], s["counters"]["replies"])
print("timeouts", s["outcomes"]["timeout_in_progress"], s["errors"])
print("states", " ".join(x["state"] for x in s["servers"]))
print("restarts", [x["restarts"] for x in s["servers"]])
print("samples", s["latency_us"]["samples"] >= 0)
)");
  ASSERT_EQ(checked.status, 0) << checked.out << "\nJSON:\n" << ps.out;
  const pid_t low = std::min(served.first.pid(), served.second.pid());
  const pid_t high = std::max(served.first.pid(), served.second.pid());
  const std::string expected = "bus " + served.bus.name() + "\nlauncher None\npids " +
                               std::to_string(low) + " " + std::to_string(high) +
                               "\nlive 2\ncounts " + std::to_string(kCalls) + " " +
                               std::to_string(kCasts) + " " + std::to_string(kCalls) +
                               "\ntimeouts 0 0\nstates running running\nrestarts [None, None]"
                               "\nsamples True\n";
  EXPECT_EQ(checked.out, expected) << "JSON:\n" << ps.out;
}

TEST(Ps, JsonStaysValidUtf8WhenALabelWasCutInsideACharacter) {
  test::ScopedBus bus = test::ScopedBus::create();
  // The table keeps 31 bytes of a label: "é" (C3 A9) loses its second byte.
  const std::string label = std::string(30, 'x') + "\xc3\xa9";
  auto labelled = Bus::attach(bus.name(), {.label = label});
  ASSERT_TRUE(labelled) << labelled.error().message();
  const auto ps = test::run_tool({"ps", bus.name(), "--json"});
  ASSERT_EQ(ps.status, 0) << ps.out;
  const auto checked = python_on(ps.out, R"(
print([p["label"] for p in d["processes"] if p["label"].startswith("xxx")] == ["x" * 30 + "\ufffd"])
)");
  EXPECT_EQ(checked.out, "True\n") << "JSON:\n" << ps.out;
}

// What `shmbus launch` publishes: the first server is child mailer.0,
// restarted once; mailer.1 failed for good (no process); "ghost" is a service
// the launcher runs that no server registered.
std::vector<std::byte> launcher_status(pid_t server_pid) {
  flatbuffers::FlatBufferBuilder b;
  std::vector<flatbuffers::Offset<launcher::Child>> children = {
      launcher::CreateChildDirect(b, "mailer.0", "mailer", server_pid, launcher::ChildState::Running,
                                  1, 1'700'000'000'000'000'000u, 0, 9, true),
      launcher::CreateChildDirect(b, "mailer.1", "mailer", 0, launcher::ChildState::Failed, 5,
                                  1'700'000'000'000'000'000u, 3, 0, true),
      launcher::CreateChildDirect(b, "ghost.0", "ghost", 0, launcher::ChildState::Exited, 2, 0, 1, 0,
                                  true),
  };
  std::vector<flatbuffers::Offset<flatbuffers::String>> failed = {b.CreateString("mailer")};
  b.Finish(launcher::CreateLauncherStatusDirect(b, ::getpid(), "/etc/shmbus \"test\".toml",
                                                1'700'000'000'000'000'000u,
                                                launcher::Phase::Running, &children, &failed),
           launcher::LauncherStatusIdentifier());
  const auto* data = reinterpret_cast<const std::byte*>(b.GetBufferPointer());
  return {data, data + b.GetSize()};
}

TEST(Ps, ShowsTheLaunchersRestartsAndChildrenWithoutAServer) {
  ServedBus served;
  ASSERT_TRUE(served.serve_some_traffic());
  {
    auto state = served.bus->state(StateAccess::read_write);
    ASSERT_TRUE(state) << state.error().message();
    auto put = state->put("shmbus.launcher", launcher_status(served.first.pid()));
    ASSERT_TRUE(put) << put.error().message();
  }
  const std::string pid = std::to_string(served.first.pid());
  const auto ps = test::run_tool({"ps", served.bus.name()});
  ASSERT_EQ(ps.status, 0) << ps.out;
  EXPECT_TRUE(has_line_with(ps.out, {pid, "mailer.0", "running", " 1 "})) << ps.out;
  EXPECT_TRUE(has_line_with(ps.out, {"mailer.1", "failed", "5", "exit 3"})) << ps.out;
  EXPECT_TRUE(has_line_with(ps.out, {"ghost"})) << ps.out;
  EXPECT_TRUE(has_line_with(ps.out, {"launcher pid " + std::to_string(::getpid()), "running"}))
      << ps.out;

  const auto json = test::run_tool({"ps", served.bus.name(), "--json"});
  ASSERT_EQ(json.status, 0) << json.out;
  const auto checked = python_on(json.out, R"(
l = d["launcher"]
print(l["pid"], l["phase"], l["config"], l["failed_services"])
s = [x for x in d["services"] if x["name"] == "mailer"][0]
print(sorted((x["pid"], x["child"], x["restarts"]) for x in s["servers"]))
print([(c["name"], c["state"], c["restarts"], c["serving"], c["last_exit"]) for c in s["children"]])
g = [x for x in d["services"] if x["name"] == "ghost"][0]
print(g["registered"], g["servers"], [c["name"] for c in g["children"]])
)");
  ASSERT_EQ(checked.status, 0) << checked.out << "\nJSON:\n" << json.out;
  const pid_t other = served.second.pid();
  const std::string expected =
      std::to_string(::getpid()) + " running /etc/shmbus \"test\".toml ['mailer']\n" +
      (served.first.pid() < other
           ? "[(" + pid + ", 'mailer.0', 1), (" + std::to_string(other) + ", None, None)]\n"
           : "[(" + std::to_string(other) + ", None, None), (" + pid + ", 'mailer.0', 1)]\n") +
      "[('mailer.0', 'running', 1, True, {'signal': 9}), ('mailer.1', 'failed', 5, False, "
      "{'code': 3})]\n"
      "False [] ['ghost.0']\n";
  EXPECT_EQ(checked.out, expected) << "JSON:\n" << json.out;
}

TEST(Ps, AMissingBusExitsNoSuchBus) {
  const auto ps = test::run_tool({"ps", test::unique_bus_name()});
  EXPECT_EQ(ps.status, static_cast<int>(Errc::no_such_bus)) << ps.out;
  EXPECT_NE(ps.out.find("no_such_bus"), std::string::npos) << ps.out;
  const auto json = test::run_tool({"ps", test::unique_bus_name(), "--json"});
  EXPECT_EQ(json.status, static_cast<int>(Errc::no_such_bus)) << json.out;
}

TEST(Ps, WithoutABusNameAndSeveralBusesListsThemAndExits64) {
  auto one = test::ScopedBus::create();
  auto two = test::ScopedBus::create();
  const auto ps = test::run_tool({"ps"});
  EXPECT_EQ(ps.status, 64) << ps.out;
  EXPECT_NE(ps.out.find("  " + one.name() + "\n"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("  " + two.name() + "\n"), std::string::npos) << ps.out;
}

}  // namespace
}  // namespace shmbus
