// The README's first command, as a newcomer runs it: the demo launches the
// mailer pool, kills a worker mid-burst, and accounts for every message id.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "support/scoped_bus.hpp"
#include "tool_run.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

std::string last_line(const std::string& text) {
  std::string trimmed = text;
  while (!trimmed.empty() && trimmed.back() == '\n') trimmed.pop_back();
  return trimmed.substr(trimmed.rfind('\n') + 1);
}

// A `ps` row "PID mailer.N running 1 … signal 9" among the demo's "  ps │ " lines.
// (No std::regex: g++ 12 warns inside it under ASan, and CI builds with -Werror.)
bool shows_restarted_worker(const std::string& out) {
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const std::size_t at = line.find("ps │ ");
    if (at == std::string::npos || line.find("signal 9") == std::string::npos) continue;
    std::istringstream row(line.substr(at + std::string("ps │ ").size()));
    std::string pid, child, state, restarts;
    row >> pid >> child >> state >> restarts;
    if (child.rfind("mailer.", 0) == 0 && state == "running" && restarts == "1") return true;
  }
  return false;
}

TEST(Demo, RestartsTheKilledWorkerAndLosesNoMessage) {
  char pattern[] = "/tmp/shmbus-demo-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::filesystem::path dir(pattern);
  const std::string maildir = (dir / "Maildir").string();
  // The README's config under a bus name of the test's own: a demo or another
  // build's tests running on this host at the same time use "demo".
  const std::string bus = test::unique_bus_name();
  std::ifstream readme_config(std::string(SHMBUS_SOURCE_DIR) + "/tools/examples/demo.toml");
  std::string text((std::istreambuf_iterator<char>(readme_config)), {});
  const std::size_t name = text.find("name = \"demo\"");
  ASSERT_NE(name, std::string::npos) << text;
  text.replace(name, std::string("name = \"demo\"").size(), "name = \"" + bus + "\"");
  const std::string config = (dir / "demo.toml").string();
  std::ofstream(config) << text;
  test::Child demo = test::Child::exec(
      std::string(SHMBUS_TOOLS_BIN_DIR) + "/shmbus_demo",
      {"--config", config, "--bus", bus, "--maildir", maildir, "--messages", "1000"});
  const int status = demo.wait(120s);
  const std::string out = demo.output();
  EXPECT_EQ(status, 0) << out;
  const std::string summary = last_line(out);
  EXPECT_EQ(summary.rfind("summary: sent=1000 ", 0), 0u) << out;
  EXPECT_NE(summary.find(" restarts=1 "), std::string::npos) << out;
  EXPECT_NE(summary.find(" lost=0"), std::string::npos) << out;
  // The ledger's delivered count is the Maildir's: one file per id, no duplicate.
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(maildir + "/new")) {
    (void)entry;
    ++files;
  }
  EXPECT_NE(summary.find(" delivered=" + std::to_string(files) + " "), std::string::npos)
      << summary << " vs " << files << " files";
  EXPECT_NE(out.find("nothing left of the bus"), std::string::npos) << out;
  // The demo runs `shmbus ps BUS` after the restart: the replaced worker's row
  // shows its launcher child running with one restart and the SIGKILL it died of.
  EXPECT_TRUE(shows_restarted_worker(out)) << out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shmbus
