// shmbus top in a real terminal: tmux runs it in a detached session of its
// own server (-L: a private socket, killed whatever happens), the test reads
// the screen with capture-pane and types with send-keys. Without tmux these
// tests skip; `top` without a terminal is tested anyway.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/schemas/mailer_generated.h"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"
#include "tool_run.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
namespace mailer = shmbus::examples::mailer;

// The program's path on $PATH, or "" (test::Child execs a path, no lookup).
std::string on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// One tmux server on a private socket, killed (with its sessions) at scope exit.
class Tmux {
 public:
  explicit Tmux(std::string program) : program_(std::move(program)) {
    static std::atomic<int> counter{0};
    socket_ = "shmbus_top_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  }
  ~Tmux() { (void)run({"kill-server"}); }
  Tmux(const Tmux&) = delete;
  Tmux& operator=(const Tmux&) = delete;

  // `tmux -L socket args…`: its exit status and output.
  test::ToolRun run(const std::vector<std::string>& args) const {
    std::vector<std::string> full = {"-L", socket_};
    full.insert(full.end(), args.begin(), args.end());
    test::Child child = test::Child::exec(program_, full);
    test::ToolRun result;
    result.status = child.wait(10s);
    result.out = child.output();
    return result;
  }
  [[nodiscard]] std::string screen(const std::string& session) const {
    return run({"capture-pane", "-p", "-t", session}).out;
  }
  [[nodiscard]] bool has(const std::string& session) const {
    return run({"has-session", "-t", session}).status == 0;
  }

 private:
  std::string program_;
  std::string socket_;
};

std::vector<std::byte> send_email(int id) {
  flatbuffers::FlatBufferBuilder builder;
  const std::string subject = std::to_string(id);
  builder.Finish(mailer::CreateSendEmailDirect(builder, "top@example.com", "top", subject.c_str()),
                 mailer::SendEmailIdentifier());
  const auto* data = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
  return {data, data + builder.GetSize()};
}

// The CALL/S figure of the service's row, or -1 when the row or the rate is
// not on the screen yet ("-" on the first frame).
double call_rate(const std::string& screen, const std::string& service) {
  std::istringstream lines(screen);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string name, servers, calls;
    if (!(words >> name >> servers >> calls) || name != service) continue;
    try {
      return std::stod(calls);
    } catch (...) {
      return -1;
    }
  }
  return -1;
}

// A bus whose mailer service one real server process serves, and top
// running on it in a tmux session; its exit status lands in a file.
struct TopOnABus {
  test::ScopedBus bus = test::ScopedBus::create();
  test::Child server = test::Child::spawn("call_server", {"--bus", bus.name(), "--service", "mailer"});
  Tmux tmux{on_path("tmux")};
  std::string session = "top";
  std::string status_file = "/tmp/" + bus.name() + ".top_status";
  std::string stty_file = "/tmp/" + bus.name() + ".top_stty";

  ~TopOnABus() {
    (void)tmux.run({"kill-server"});  // first: a pane still running could write the files again
    ::unlink(status_file.c_str());
    ::unlink(stty_file.c_str());
  }

  [[nodiscard]] bool start() {
    if (!test::wait_until(10s, [&] { return server.printed("ready"); })) {
      ADD_FAILURE() << "server not ready:\n" << server.output();
      return false;
    }
    ::unlink(status_file.c_str());
    ::unlink(stty_file.c_str());
    // The shell ignores SIGINT (top installs its own handler), so a Ctrl-C
    // reaches top and the shell still writes its status; then the terminal's
    // modes as top left them. SIGQUIT is trapped, not ignored: top gets it
    // with its default action, as from an interactive shell.
    const std::string command = "trap '' INT; trap : QUIT; " + std::string(SHMBUS_CLI) +
                                " top " + bus.name() + " --interval 0.2; echo $? > " +
                                status_file + "; stty -a > " + stty_file;
    const auto started =
        tmux.run({"new-session", "-d", "-s", session, "-x", "120", "-y", "40", command});
    EXPECT_EQ(started.status, 0) << started.out;
    return started.status == 0;
  }
  [[nodiscard]] std::string exit_status() const { return read_file(status_file); }

  // Whether the terminal has echo and line editing back after top ended.
  [[nodiscard]] bool terminal_restored() const {
    std::string modes = read_file(stty_file);
    for (char& c : modes) c = (c == ';' || c == '\n') ? ' ' : c;
    std::istringstream words(modes);
    bool echo = false, icanon = false;
    for (std::string word; words >> word;) {
      echo = echo || word == "echo";
      icanon = icanon || word == "icanon";
    }
    return echo && icanon;
  }

  // Waits for top's first frame, sends `keys` (tmux send-keys), then expects a clean exit.
  void expect_keys_quit_cleanly(const std::string& keys) {
    std::string screen;
    ASSERT_TRUE(test::wait_until(10s, [&] {
      screen = tmux.screen(session);
      return screen.find("mailer") != std::string::npos;
    })) << screen << exit_status();
    ASSERT_EQ(tmux.run({"send-keys", "-t", session, keys}).status, 0);
    expect_clean_exit();
  }

  // Waits until top's session ended and says whether it exited 0 with the terminal restored.
  void expect_clean_exit() {
    EXPECT_TRUE(test::wait_until(10s, [&] { return !tmux.has(session); }))
        << tmux.screen(session);
    EXPECT_TRUE(test::wait_until(5s, [&] { return !exit_status().empty(); }));
    EXPECT_EQ(exit_status(), "0\n");
    EXPECT_TRUE(terminal_restored()) << read_file(stty_file);
  }
};

TEST(Top, DrawsTheServiceRefreshesWithTrafficAndQuitsOnQ) {
  if (on_path("tmux").empty()) GTEST_SKIP() << "tmux is not installed (tools/dev installs it)";
  TopOnABus top;
  ASSERT_TRUE(top.start());
  std::string screen;
  ASSERT_TRUE(test::wait_until(10s, [&] {
    screen = top.tmux.screen(top.session);
    return screen.find("bus " + top.bus.name()) != std::string::npos &&
           screen.find("mailer") != std::string::npos &&
           screen.find(std::to_string(top.server.pid())) != std::string::npos;
  })) << screen << top.exit_status();

  // Traffic until a frame shows it: the screen was redrawn from fresh counters.
  auto service = top.bus->service("mailer");
  ASSERT_TRUE(service) << service.error().message();
  int id = 0;
  ASSERT_TRUE(test::wait_until(10s, [&] {
    for (int i = 0; i < 20; ++i) {
      auto reply = service->call(send_email(++id), {.deadline = deadline_in(5s)});
      if (!reply) ADD_FAILURE() << "call: " << to_string(reply.error());
    }
    screen = top.tmux.screen(top.session);
    return call_rate(screen, "mailer") > 0;
  })) << screen;
  EXPECT_NE(screen.find("CALL/S"), std::string::npos) << screen;

  ASSERT_EQ(top.tmux.run({"send-keys", "-t", top.session, "q"}).status, 0);
  top.expect_clean_exit();
}

TEST(Top, CtrlCQuitsCleanly) {
  if (on_path("tmux").empty()) GTEST_SKIP() << "tmux is not installed (tools/dev installs it)";
  TopOnABus top;
  ASSERT_TRUE(top.start());
  top.expect_keys_quit_cleanly("C-c");
}

TEST(Top, CtrlBackslashQuitsCleanly) {
  if (on_path("tmux").empty()) GTEST_SKIP() << "tmux is not installed (tools/dev installs it)";
  TopOnABus top;
  ASSERT_TRUE(top.start());
  // SIGQUIT: without a handler it would end top with the terminal left raw.
  top.expect_keys_quit_cleanly("C-\\");
}

TEST(Top, ExitsNoSuchBusWhenTheBusIsRemoved) {
  if (on_path("tmux").empty()) GTEST_SKIP() << "tmux is not installed (tools/dev installs it)";
  TopOnABus top;
  ASSERT_TRUE(top.start());
  std::string screen;
  ASSERT_TRUE(test::wait_until(10s, [&] {
    screen = top.tmux.screen(top.session);
    return screen.find("mailer") != std::string::npos;
  })) << screen << top.exit_status();
  ASSERT_TRUE(Bus::remove(top.bus.name()));
  EXPECT_TRUE(test::wait_until(10s, [&] { return !top.exit_status().empty(); }))
      << top.tmux.screen(top.session);
  EXPECT_EQ(top.exit_status(), std::to_string(static_cast<int>(Errc::no_such_bus)) + "\n");
  EXPECT_TRUE(test::wait_until(10s, [&] { return !top.tmux.has(top.session); }));
  EXPECT_TRUE(top.terminal_restored());
}

TEST(Top, RefusesWithoutATerminal) {
  auto bus = test::ScopedBus::create();
  const auto start = std::chrono::steady_clock::now();
  const auto top = test::run_tool({"top", bus.name()}, 10s);
  EXPECT_EQ(top.status, 64) << top.out;
  EXPECT_NE(top.out.find("terminal"), std::string::npos) << top.out;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

}  // namespace
}  // namespace shmbus
