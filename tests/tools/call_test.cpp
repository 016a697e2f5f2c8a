// `shmbus call` and `shmbus cast` against real servers: the echo and mailer
// example workers as child processes, and an untyped service served by this
// test for --raw. JSON goes in, JSON a script can parse comes out; JSON that
// does not fit the schema is refused (exit 65) before anything is sent.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include <shmbus/schemas/echo_generated.h>

#include "shmbus/shmbus.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"
#include "tool_run.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::run_tool;

constexpr int kExitData = 65;
constexpr int kExitUsage = 64;

std::optional<ServiceInfo> find_service(Bus& bus, const std::string& name) {
  for (auto& info : bus.services()) {
    if (info.name == name) return info;
  }
  return std::nullopt;
}

// Waits (bounded) until `service` has a live server.
bool has_live_server(Bus& bus, const std::string& service) {
  return test::wait_until(10s, [&] {
    auto info = find_service(bus, service);
    return info && std::any_of(info->servers.begin(), info->servers.end(),
                               [](const ServerInfo& s) { return s.alive; });
  });
}

test::Child start_worker(const std::string& worker, const std::vector<std::string>& args) {
  return test::Child::exec(std::string(SHMBUS_TOOLS_BIN_DIR) + "/" + worker, args);
}

// A shell command's exit status and stdout+stderr (for stdin pipes).
test::ToolRun shell(const std::string& command) { return test::run_shell(command); }

// `json` parsed by Python's json module, then `expression` (over `d`)
// printed: what a script reading the output would see.
std::string python_reads(const std::string& json, const std::string& expression) {
  const std::string file = "/tmp/shmbus_call_test_" + std::to_string(::getpid()) + ".json";
  std::ofstream(file) << json;
  const test::ToolRun run = shell("python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
                                  "print(" + expression + ")' " + file);
  std::remove(file.c_str());
  return run.status == 0 ? run.out : "python3 failed: " + run.out;
}

bool have_python() { return shell("command -v python3").status == 0; }

class CallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string(SHMBUS_CLI).empty()) GTEST_SKIP() << "built without the shmbus tool";
  }
};

TEST_F(CallTest, CallsTheEchoServiceWithJsonAndPrintsItsReplyAsJson) {
  test::ScopedBus bus = test::ScopedBus::create(test::unique_bus_name());
  test::Child echo = start_worker("shmbus_echo_worker", {"--bus", bus.name()});
  ASSERT_TRUE(has_live_server(bus.bus(), "echo")) << echo.output();

  const auto call = run_tool({"call", bus.name(), "echo", R"({"text": "hi", "count": 2})"});
  ASSERT_EQ(call.status, 0) << call.out;
  if (have_python()) {
    EXPECT_EQ(python_reads(call.out, "d[\"text\"], d[\"count\"], d[\"handled_by_pid\"]"),
              "hi 2 " + std::to_string(echo.pid()) + "\n")
        << call.out;
  } else {
    EXPECT_NE(call.out.find(R"("text": "hi")"), std::string::npos) << call.out;
    EXPECT_NE(call.out.find(R"("count": 2)"), std::string::npos) << call.out;
  }

  // The same message from stdin and from a file.
  const auto piped = shell("echo '{\"text\": \"piped\"}' | " + std::string(SHMBUS_CLI) +
                           " call " + bus.name() + " echo -");
  EXPECT_EQ(piped.status, 0) << piped.out;
  EXPECT_NE(piped.out.find(R"("text": "piped")"), std::string::npos) << piped.out;
  const std::string file = "/tmp/shmbus_call_test_" + std::to_string(::getpid()) + "_in.json";
  std::ofstream(file) << R"({"text": "from a file", "count": 9})";
  const auto from_file = run_tool({"call", bus.name(), "echo", "@" + file});
  std::remove(file.c_str());
  EXPECT_EQ(from_file.status, 0) << from_file.out;
  EXPECT_NE(from_file.out.find(R"("count": 9)"), std::string::npos) << from_file.out;
  EXPECT_EQ(run_tool({"call", bus.name(), "echo", "@/nonexistent/in.json"}).status, 66);

  echo.signal(SIGTERM);
  EXPECT_EQ(echo.wait(10s), 0) << echo.output();
}

TEST_F(CallTest, CallsTheMailerAndGetsItsDeliveryStatus) {
  test::ScopedBus bus = test::ScopedBus::create(test::unique_bus_name());
  test::Child mailer = start_worker("shmbus_mailer_worker", {"--bus", bus.name(), "--delay-ms", "0"});
  ASSERT_TRUE(has_live_server(bus.bus(), "mailer")) << mailer.output();

  const auto call =
      run_tool({"call", bus.name(), "mailer", R"({"to_email": "a@b.c", "subject": "s", "id": 7})"});
  ASSERT_EQ(call.status, 0) << call.out;
  if (have_python()) {
    EXPECT_EQ(python_reads(call.out, "d[\"status\"]"), "Sent\n") << call.out;
  } else {
    EXPECT_NE(call.out.find(R"("status": "Sent")"), std::string::npos) << call.out;
  }
}

TEST_F(CallTest, JsonThatDoesNotFitTheSchemaIsRefusedWithItsPositionAndNothingIsSent) {
  test::ScopedBus bus = test::ScopedBus::create(test::unique_bus_name());
  test::Child echo = start_worker("shmbus_echo_worker", {"--bus", bus.name()});
  ASSERT_TRUE(has_live_server(bus.bus(), "echo")) << echo.output();
  ASSERT_EQ(run_tool({"call", bus.name(), "echo", R"({"text": "one"})"}).status, 0);

  const auto syntax = run_tool({"call", bus.name(), "echo", R"({"text": "hi", "count": 2)"});
  EXPECT_EQ(syntax.status, kExitData) << syntax.out;
  EXPECT_NE(syntax.out.find("request JSON does not fit shmbus.examples.echo.Echo: 1: "),
            std::string::npos)
      << syntax.out;  // line 1, then the column

  const auto unknown = run_tool({"call", bus.name(), "echo", R"({"text": "hi", "foo": 1})"});
  EXPECT_EQ(unknown.status, kExitData) << unknown.out;
  EXPECT_NE(unknown.out.find("1: 23: error: unknown field: foo"), std::string::npos) << unknown.out;

  const auto wrong_type = run_tool({"call", bus.name(), "echo", R"({"text": 5})"});
  EXPECT_EQ(wrong_type.status, kExitData) << wrong_type.out;
  const auto out_of_range =
      run_tool({"cast", bus.name(), "echo", R"({"count": 99999999999})"});
  EXPECT_EQ(out_of_range.status, kExitData) << out_of_range.out;

  auto info = find_service(bus.bus(), "echo");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->totals.calls, 1u);  // only the first call reached the server
  EXPECT_EQ(info->totals.casts, 0u);
  EXPECT_EQ(info->depth, 0u);
}

TEST_F(CallTest, CastIsAcceptedAndTheWorkerHandlesIt) {
  test::ScopedBus bus = test::ScopedBus::create(test::unique_bus_name());
  test::Child echo = start_worker("shmbus_echo_worker", {"--bus", bus.name()});
  ASSERT_TRUE(has_live_server(bus.bus(), "echo")) << echo.output();

  const auto cast = run_tool({"cast", bus.name(), "echo", R"({"text": "fire and forget", "count": 3})"});
  EXPECT_EQ(cast.status, 0) << cast.out;
  EXPECT_NE(cast.out.find("cast accepted by echo"), std::string::npos) << cast.out;
  EXPECT_TRUE(test::wait_until(10s, [&] { return echo.said("cast: fire and forget (count 3)"); }))
      << echo.output();
}

TEST_F(CallTest, UnknownServiceAndUnknownBusExitWithTheirErrc) {
  test::ScopedBus bus = test::ScopedBus::create(test::unique_bus_name());
  const auto service = run_tool({"call", bus.name(), "nope", "{}"});
  EXPECT_EQ(service.status, static_cast<int>(Errc::no_such_service)) << service.out;
  EXPECT_NE(service.out.find("no_such_service"), std::string::npos) << service.out;

  const auto no_bus = run_tool({"cast", test::unique_bus_name(), "echo", "{}"});
  EXPECT_EQ(no_bus.status, static_cast<int>(Errc::no_such_bus)) << no_bus.out;
}

TEST_F(CallTest, ATimeoutThatIsNoDurationIsAUsageErrorBeforeAnythingIsSent) {
  // Checked before the bus is even looked for: exit 64, not no_such_bus. A
  // value past the deadline's range (inf, 1e300) must not wrap into an
  // instant timeout.
  for (const std::string timeout : {"inf", "nan", "1e300", "1e17s", "-1s", "5min", "86401s"}) {
    const auto call =
        run_tool({"call", test::unique_bus_name(), "echo", "{}", "--timeout", timeout});
    EXPECT_EQ(call.status, kExitUsage) << timeout << ": " << call.out;
    EXPECT_NE(call.out.find("--timeout " + timeout + ": expected a duration"), std::string::npos)
        << call.out;
  }
}

TEST_F(CallTest, ACallNoServerTakesEndsInTimeoutNotStarted) {
  test::ScopedBus bus = test::ScopedBus::create(test::unique_bus_name());
  // The echo service registered, its only worker gone: the call waits out
  // its timeout, then says so.
  {
    test::Child echo = start_worker("shmbus_echo_worker", {"--bus", bus.name()});
    ASSERT_TRUE(has_live_server(bus.bus(), "echo")) << echo.output();
    echo.signal(SIGTERM);
    ASSERT_EQ(echo.wait(10s), 0) << echo.output();
  }
  const auto call = run_tool({"call", bus.name(), "echo", R"({"text": "anyone?"})", "--timeout",
                              "200ms"});
  EXPECT_EQ(call.status, static_cast<int>(Errc::timeout_not_started)) << call.out;
  EXPECT_NE(call.out.find("shmbus: call failed: timeout_not_started: "), std::string::npos)
      << call.out;
}

// An untyped service, served by this process: it replies with the request's
// bytes reversed.
class Reverser : public Handler {
 public:
  void handle_call(const Request& request, ReplyWriter& reply) override {
    std::vector<std::byte> bytes(request.payload().begin(), request.payload().end());
    std::reverse(bytes.begin(), bytes.end());
    (void)reply.assign(bytes);
  }
  void handle_cast(const Request&) override {}
};

TEST_F(CallTest, RawBytesGoToAServiceWithoutASchema) {
  test::ScopedBus bus = test::ScopedBus::create(test::unique_bus_name());
  auto server = Server::start(bus.bus(), "reverse", {});
  ASSERT_TRUE(server) << server.error().message();
  Reverser handler;
  std::thread serving([&] { (void)server->serve(handler); });

  const auto raw = run_tool({"call", bus.name(), "reverse", "abc", "--raw"});
  EXPECT_EQ(raw.status, 0) << raw.out;
  EXPECT_EQ(raw.out, "cba");
  const auto hex = run_tool({"call", bus.name(), "reverse", "abc", "--raw", "--hex"});
  EXPECT_EQ(hex.status, 0) << hex.out;
  EXPECT_EQ(hex.out, "63 62 61\n");
  const auto json = run_tool({"call", bus.name(), "reverse", "{}"});
  EXPECT_EQ(json.status, 64) << json.out;
  EXPECT_NE(json.out.find("has no schema"), std::string::npos) << json.out;

  server->stop();
  serving.join();
}

// An echo service whose server replies with bytes that carry the reply's
// identifier but are no EchoReply: the tool must not print them as one.
class Liar : public Handler {
 public:
  void handle_call(const Request&, ReplyWriter& reply) override {
    const unsigned char bytes[] = {0xf0, 0xff, 0xff, 0x0f, 'E', 'C', 'H', 'R'};  // root far outside
    (void)reply.assign(std::as_bytes(std::span(bytes)));
  }
  void handle_cast(const Request&) override {}
};

TEST_F(CallTest, AReplyThatDoesNotVerifyIsNotPrinted) {
  test::ScopedBus bus = test::ScopedBus::create(test::unique_bus_name());
  namespace echo = examples::echo;
  auto server = Server::start(
      bus.bus(), "echo",
      {.schema = ServiceSchema::of<echo::Echo, echo::EchoReply>(
           echo::EchoIdentifier(), echo::EchoReplyIdentifier(), "examples/echo.fbs")});
  ASSERT_TRUE(server) << server.error().message();
  Liar handler;
  std::thread serving([&] { (void)server->serve(handler); });

  const auto call = run_tool({"call", bus.name(), "echo", R"({"text": "hi"})"});
  EXPECT_NE(call.status, 0) << call.out;
  EXPECT_EQ(call.out.find("\"text\""), std::string::npos) << call.out;  // nothing printed as JSON
  if (call.status != static_cast<int>(Errc::bad_message)) {  // (the library may refuse it first)
    EXPECT_EQ(call.status, kExitData) << call.out;
    EXPECT_NE(call.out.find("the reply is not a valid shmbus.examples.echo.EchoReply"),
              std::string::npos)
        << call.out;
  }
  server->stop();
  serving.join();
}

}  // namespace
}  // namespace shmbus
