// `shmbus launch` refuses a bad config before it starts anything: exit 78 and
// one line that names the file, the line (and column) and what is wrong.
#include <gtest/gtest.h>

#include <string>

#include "launch_support.hpp"
#include "shmbus/bus.hpp"
#include "support/scoped_bus.hpp"
#include "tool_run.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

using test::bus_exists;
using test::ConfigDir;

// A valid config for bus `name` with `extra_bus` lines in [bus] and
// `extra_service` lines in its one [[service]] (lines 1…: see the comments).
std::string config_text(const std::string& name, const std::string& extra_bus = "",
                        const std::string& extra_service = "") {
  return "[bus]\n"  // line 1
         "name = \"" +
         name + "\"\n" +  // line 2
         extra_bus +      // line 3…
         "\n[[service]]\n"
         "name = \"svc\"\n"
         "command = [\"" SHMBUS_TEST_CHILD "\", \"launch_worker\"]\n" +
         extra_service;
}

struct BadConfig {
  std::string what;
  std::string text;
  std::string expected;  // in the message, after "<file>"
};

class LaunchConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string(SHMBUS_CLI).empty()) GTEST_SKIP() << "built without the shmbus tool";
  }
  // Runs `shmbus launch` on `text`; expects exit 78, one message naming
  // "<file>:<expected>", and no bus.
  void expect_refused(const BadConfig& bad) {
    const std::string file = dir_.write("bad.toml", bad.text);
    const test::ToolRun run = test::run_tool({"launch", file}, 10s);
    EXPECT_EQ(run.status, 78) << bad.what << ":\n" << run.out;
    EXPECT_NE(run.out.find("shmbus: " + file + ":" + bad.expected), std::string::npos)
        << bad.what << ": expected '" << file << ":" << bad.expected << "' in:\n"
        << run.out;
    EXPECT_FALSE(bus_exists(bus_)) << bad.what << ": the bus was created";
    if (bus_exists(bus_)) (void)Bus::remove(bus_);  // nothing left, and the next case starts clean
  }
  ConfigDir dir_;
  std::string bus_ = test::unique_bus_name();
};

TEST_F(LaunchConfigTest, ASyntaxErrorNamesItsLineAndColumn) {
  expect_refused({"syntax", "[bus\nname = \"" + bus_ + "\"\n", "1:5: TOML syntax error"});
}

TEST_F(LaunchConfigTest, AnUnknownKeyIsRefusedWithTheNearestKnownOne) {
  expect_refused({"service key", config_text(bus_, "", "server = 2\n"),
                  "7:1: [[service]] 'svc': unknown key 'server' (did you mean 'servers'?)"});
  expect_refused({"bus key", config_text(bus_, "max_proceses = 8\n"),
                  "3:1: [bus]: unknown key 'max_proceses' (did you mean 'max_processes'?)"});
  expect_refused({"top-level key", config_text(bus_) + "[services]\n",
                  "7:2: unknown key 'services' (did you mean 'service'?)"});
}

TEST_F(LaunchConfigTest, AMissingRequiredFieldNamesItsTable) {
  expect_refused({"no command", "[bus]\nname = \"" + bus_ + "\"\n\n[[service]]\nname = \"svc\"\n",
                  "4: [[service]] 'svc': missing required field 'command'"});
  expect_refused(
      {"no bus name", "[bus]\nmode = \"0600\"\n", "1: [bus]: missing required field 'name'"});
  expect_refused({"reply without schema types",
                  config_text(bus_, "",
                              "schema = \"examples/mailer.fbs\"\n"
                              "request = \"shmbus.examples.mailer.SendEmail\"\n"),
                  "4: [[service]] 'svc': missing required field 'reply'"});
}

TEST_F(LaunchConfigTest, ABadValueIsRefusedWithWhatWouldBeRight) {
  const BadConfig cases[] = {
      {"wrong type", config_text(bus_, "", "servers = \"two\"\n"),
       "7:11: [[service]] 'svc': servers must be an integer, not a string"},
      {"out of range", config_text(bus_, "max_processes = 5000\n"),
       "3:17: [bus]: max_processes must be in 1 … 1024, not 5000"},
      {"restart policy", config_text(bus_, "", "restart = \"always\"\n"),
       "7:11: [[service]] 'svc': restart must be \"permanent\", \"transient\" or \"temporary\""},
      {"not a power of two", config_text(bus_, "", "mailbox_capacity = 1000\n"),
       "7:20: [[service]] 'svc': mailbox_capacity must be a power of two"},
      {"bad size", config_text(bus_, "max_reply = \"4KB\"\n"),
       "3:13: [bus]: max_reply must be a size"},
      {"on_failure", config_text(bus_, "on_failure = \"explode\"\n"),
       "3:14: [bus]: on_failure must be \"keep_others\" or \"shut_down\""},
      {"duplicate service",
       config_text(bus_) + "[[service]]\nname = \"svc\"\ncommand = [\"true\"]\n",
       "8:8: [[service]] 'svc': duplicate service name (first at line 4)"},
      {"no such program",
       config_text(bus_) + "[[service]]\nname = \"b\"\ncommand = [\"no_such_worker_x\"]\n",
       "9:12: [[service]] 'b': program 'no_such_worker_x' not found"},
      {"no such schema file",
       config_text(bus_, "",
                   "schema = \"no/such.fbs\"\nrequest = \"a.B\"\nreply = \"a.C\"\n"
                   "request_id = \"ABCD\"\nreply_id = \"EFGH\"\n"),
       "7:10: [[service]] 'svc': schema file 'no/such.fbs' not found"},
      {"schema lacks the type",
       config_text(
           bus_, "",
           "schema = \"examples/mailer.fbs\"\nrequest = \"shmbus.examples.mailer.NoSuchType\"\n"
           "reply = \"shmbus.examples.mailer.EmailSent\"\n"),
       "7:10: [[service]] 'svc': "},
      {"identifier differs from the schema's",
       config_text(
           bus_, "",
           "schema = \"examples/mailer.fbs\"\nrequest = \"shmbus.examples.mailer.SendEmail\"\n"
           "reply = \"shmbus.examples.mailer.EmailSent\"\nrequest_id = \"MAIX\"\n"),
       "10:14: [[service]] 'svc': request_id 'MAIX' differs from the schema's file_identifier "
       "'MAIL'"},
      {"negative gid (chown would leave the group as it is)",
       config_text(bus_, "group = \"-1\"\n"), "3:9: [bus]: no group '-1' on this host"},
      {"gid past gid_t (it would wrap to root's)",
       config_text(bus_, "group = \"4294967296\"\n"),
       "3:9: [bus]: no group '4294967296' on this host"},
      {"typed without schema needs ids",
       config_text(bus_, "", "request = \"a.B\"\nreply = \"a.C\"\n"),
       "4: [[service]] 'svc': missing required field 'request_id'"},
  };
  for (const auto& bad : cases) expect_refused(bad);
}

TEST_F(LaunchConfigTest, AnUnknownVariableIsAConfigError) {
  ::unsetenv("SHMBUS_TEST_NO_SUCH_VARIABLE");
  expect_refused(
      {"unknown ${VAR}",
       config_text(bus_, "", "env = { MAILDIR = \"${SHMBUS_TEST_NO_SUCH_VARIABLE}/x\" }\n"),
       "7:19: [[service]] 'svc': unknown variable ${SHMBUS_TEST_NO_SUCH_VARIABLE}"});
}

TEST_F(LaunchConfigTest, AGoodConfigPassesTheCheckAndStartsNothing) {
  const std::string file = dir_.write(
      "good.toml",
      config_text(bus_, "max_reply = \"2KiB\"\nblob_classes = [{ size = \"64KiB\", count = 4 }]\n",
                  "servers = 2\nwithin = 2.5\nenv = { WHERE = \"${CONFIG_DIR}\" }\n"
                  "schema = \"examples/mailer.fbs\"\n"
                  "request = \"shmbus.examples.mailer.SendEmail\"\n"
                  "reply = \"shmbus.examples.mailer.EmailSent\"\n"));
  const test::ToolRun run = test::run_tool({"launch", "--check", file}, 10s);
  EXPECT_EQ(run.status, 0) << run.out;
  EXPECT_NE(run.out.find("config ok: bus '" + bus_ + "'"), std::string::npos) << run.out;
  EXPECT_FALSE(bus_exists(bus_));
  const test::ToolRun missing = test::run_tool({"launch", file + ".nope"}, 10s);
  EXPECT_EQ(missing.status, 66) << missing.out;
}

}  // namespace
}  // namespace shmbus
