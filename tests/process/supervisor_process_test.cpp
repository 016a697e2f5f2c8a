// Supervisor with real child processes: restart policies, restart intensity,
// ordered shut-down past an ignored SIGTERM, and PR_SET_PDEATHSIG when the
// supervising process is killed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "shmbus/supervisor.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

ChildSpec spec(std::string name, std::vector<std::string> argv,
               Restart restart = Restart::permanent) {
  ChildSpec s;
  s.name = std::move(name);
  s.argv = std::move(argv);
  s.restart = restart;
  s.shutdown_grace = 500ms;
  return s;
}

ChildSpec sleeper(std::string name, Restart restart = Restart::permanent) {
  return spec(std::move(name), {"/bin/sleep", "100"}, restart);
}

ChildStatus of(const Supervisor& supervisor, const std::string& name) {
  for (auto& child : supervisor.status()) {
    if (child.name == name) return child;
  }
  ADD_FAILURE() << "no child " << name;
  return {};
}

// Gone: reaped, so not even a zombie is left.
bool gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// Reads SigIgn from /proc/<pid>/status.
bool ignores_sigterm(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(file, line)) {
    if (line.rfind("SigIgn:", 0) != 0) continue;
    const auto mask = std::stoull(line.substr(7), nullptr, 16);
    return (mask >> (SIGTERM - 1)) & 1u;
  }
  return false;
}

TEST(SupervisorTest, RejectsBadSpecs) {
  EXPECT_EQ(Supervisor::start({}).error().code, Errc::bad_options);
  EXPECT_EQ(Supervisor::start({spec("a", {})}).error().code, Errc::bad_options);
  EXPECT_EQ(Supervisor::start({spec("", {"/bin/true"})}).error().code, Errc::bad_options);
  EXPECT_EQ(Supervisor::start({sleeper("a"), sleeper("a")}).error().code, Errc::bad_options);
}

TEST(SupervisorTest, PermanentChildKilledIsRestartedWithNewPid) {
  auto supervisor = Supervisor::start({sleeper("worker")});
  ASSERT_TRUE(supervisor) << supervisor.error().message();
  const auto first = of(*supervisor, "worker");
  ASSERT_EQ(first.state, ChildState::running);
  ASSERT_GT(first.pid, 0);
  ASSERT_EQ(::kill(first.pid, SIGKILL), 0);
  ASSERT_TRUE(test::wait_until(3s, [&] {
    const auto now = of(*supervisor, "worker");
    return now.restarts == 1 && now.pid != 0 && now.pid != first.pid;
  }));
  const auto second = of(*supervisor, "worker");
  EXPECT_EQ(second.state, ChildState::running);
  ASSERT_TRUE(second.last_exit.has_value());
  EXPECT_EQ(second.last_exit->signal, SIGKILL);
  EXPECT_TRUE(gone(first.pid));
  supervisor->stop();
  EXPECT_TRUE(gone(second.pid));
  EXPECT_EQ(of(*supervisor, "worker").state, ChildState::stopped);
  EXPECT_FALSE(supervisor->active());
}

TEST(SupervisorTest, TransientRestartedOnlyAfterAbnormalExit) {
  auto ok = spec("ok", {"/bin/sh", "-c", "exit 0"}, Restart::transient);
  auto bad = spec("bad", {"/bin/sh", "-c", "exit 1"}, Restart::transient);
  bad.max_restarts = 2;
  auto supervisor = Supervisor::start({ok, bad});
  ASSERT_TRUE(supervisor) << supervisor.error().message();
  ASSERT_TRUE(test::wait_until(3s, [&] {
    return of(*supervisor, "ok").state == ChildState::exited &&
           of(*supervisor, "bad").state == ChildState::failed;
  }));
  const auto done = of(*supervisor, "ok");
  EXPECT_EQ(done.restarts, 0u);
  ASSERT_TRUE(done.last_exit.has_value());
  EXPECT_TRUE(done.last_exit->normal());
  const auto failed = of(*supervisor, "bad");
  EXPECT_EQ(failed.restarts, 2u);
  ASSERT_TRUE(failed.last_exit.has_value());
  EXPECT_EQ(failed.last_exit->code, 1);
  EXPECT_TRUE(supervisor->active());  // keep_others
}

TEST(SupervisorTest, TemporaryChildIsNeverRestarted) {
  auto supervisor = Supervisor::start({spec("once", {"/bin/false"}, Restart::temporary),
                                       sleeper("victim", Restart::temporary)});
  ASSERT_TRUE(supervisor) << supervisor.error().message();
  const pid_t victim = of(*supervisor, "victim").pid;
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(test::wait_until(3s, [&] {
    return of(*supervisor, "once").state == ChildState::exited &&
           of(*supervisor, "victim").state == ChildState::exited;
  }));
  for (const auto& child : supervisor->status()) {
    EXPECT_EQ(child.restarts, 0u) << child.name;
    EXPECT_EQ(child.pid, 0) << child.name;
  }
  EXPECT_TRUE(gone(victim));
}

TEST(SupervisorTest, CrashingChildFailsWhileOthersKeepRunning) {
  std::mutex mutex;
  std::vector<ChildEvent> events;
  SupervisorOptions options;
  options.on_event = [&](const ChildEvent& e) {
    std::lock_guard lock(mutex);
    events.push_back(e);
  };
  auto crasher = spec("crasher", {"/bin/false"});
  crasher.max_restarts = 3;
  crasher.within = 5s;
  auto supervisor = Supervisor::start({sleeper("steady"), crasher}, options);
  ASSERT_TRUE(supervisor) << supervisor.error().message();
  const pid_t steady = of(*supervisor, "steady").pid;
  ASSERT_TRUE(test::wait_until(3s, [&] {
    return of(*supervisor, "crasher").state == ChildState::failed;
  }));
  EXPECT_EQ(of(*supervisor, "crasher").restarts, 3u);
  const auto still = of(*supervisor, "steady");
  EXPECT_EQ(still.state, ChildState::running);
  EXPECT_EQ(still.pid, steady);
  EXPECT_TRUE(supervisor->active());
  {
    std::lock_guard lock(mutex);
    int restarted = 0;
    int failed = 0;
    for (const auto& e : events) {
      if (e.name != "crasher") continue;
      restarted += e.kind == ChildEvent::Kind::restarted;
      failed += e.kind == ChildEvent::Kind::failed;
    }
    EXPECT_EQ(restarted, 3);
    EXPECT_EQ(failed, 1);
  }
  supervisor->stop();
  EXPECT_TRUE(gone(steady));
}

TEST(SupervisorTest, CrashingChildShutsEverythingDown) {
  SupervisorOptions options;
  options.on_failure = OnFailure::shut_down;
  // The pids from the started events: the crasher can exhaust its restarts
  // and shut everything down (pids reset to 0) before status() is read.
  std::mutex mutex;
  std::map<std::string, pid_t> started;
  options.on_event = [&](const ChildEvent& e) {
    std::lock_guard lock(mutex);
    if (e.kind == ChildEvent::Kind::started) started.emplace(e.name, e.pid);
  };
  auto crasher = spec("crasher", {"/bin/false"});
  crasher.max_restarts = 2;
  auto supervisor =
      Supervisor::start({sleeper("first"), sleeper("second"), crasher}, options);
  ASSERT_TRUE(supervisor) << supervisor.error().message();
  ASSERT_TRUE(test::wait_until(3s, [&] { return !supervisor->active(); }));
  const pid_t first = started.at("first");
  const pid_t second = started.at("second");
  ASSERT_GT(first, 0);
  ASSERT_GT(second, 0);
  EXPECT_EQ(of(*supervisor, "crasher").state, ChildState::failed);
  EXPECT_EQ(of(*supervisor, "first").state, ChildState::stopped);
  EXPECT_EQ(of(*supervisor, "second").state, ChildState::stopped);
  EXPECT_TRUE(gone(first));
  EXPECT_TRUE(gone(second));
}

TEST(SupervisorTest, ExecFailureIsAnAbnormalExitWithCode127) {
  auto missing = spec("missing", {"/nonexistent/shmbus-no-such-program"});
  missing.max_restarts = 1;
  auto supervisor = Supervisor::start({missing});
  ASSERT_TRUE(supervisor) << supervisor.error().message();
  ASSERT_TRUE(test::wait_until(3s, [&] {
    return of(*supervisor, "missing").state == ChildState::failed;
  }));
  const auto child = of(*supervisor, "missing");
  EXPECT_EQ(child.restarts, 1u);
  ASSERT_TRUE(child.last_exit.has_value());
  EXPECT_EQ(child.last_exit->code, 127);
}

TEST(SupervisorTest, EnvironmentIsPassed) {
  auto child = spec("env", {"/bin/sh", "-c", "test \"$SHMBUS_SUP_TEST\" = yes"},
                    Restart::transient);
  child.env = {{"SHMBUS_SUP_TEST", "yes"}};
  child.max_restarts = 0;
  auto supervisor = Supervisor::start({child});
  ASSERT_TRUE(supervisor) << supervisor.error().message();
  ASSERT_TRUE(test::wait_until(3s, [&] {
    return of(*supervisor, "env").state != ChildState::running;
  }));
  EXPECT_EQ(of(*supervisor, "env").state, ChildState::exited);
}

TEST(SupervisorTest, StopKillsAChildIgnoringSigtermAfterTheGrace) {
  auto stubborn =
      spec("stubborn", {"/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"});
  stubborn.shutdown_grace = 300ms;
  auto supervisor = Supervisor::start({stubborn});
  ASSERT_TRUE(supervisor) << supervisor.error().message();
  const pid_t pid = of(*supervisor, "stubborn").pid;
  // Wait until the shell has run its trap (SIGTERM in its ignored set), so
  // SIGTERM meets the trap rather than the default action.
  ASSERT_TRUE(test::wait_until(3s, [&] { return ignores_sigterm(pid); }));
  const auto begin = std::chrono::steady_clock::now();
  supervisor->stop();
  const auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);
  const auto child = of(*supervisor, "stubborn");
  EXPECT_EQ(child.state, ChildState::stopped);
  ASSERT_TRUE(child.last_exit.has_value());
  EXPECT_EQ(child.last_exit->signal, SIGKILL);
  EXPECT_TRUE(gone(pid));
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, WNOHANG), -1);  // not our zombie either
  EXPECT_EQ(errno, ECHILD);
}

// The pid a child's shell wrote to `path`, once it is there.
pid_t read_pid(const std::string& path) {
  std::ifstream file(path);
  long pid = 0;
  if (!(file >> pid)) return 0;
  return static_cast<pid_t>(pid);
}

// A grandchild is reparented to this process (a subreaper) and reaped here.
bool reaped_and_gone(pid_t pid) {
  int status = 0;
  const pid_t reaped = ::waitpid(pid, &status, WNOHANG);
  return (reaped == pid || (reaped < 0 && errno == ECHILD)) && gone(pid);
}

TEST(SupervisorTest, AChildsHelpersGoWithItOnExitAndOnStop) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  const std::string base = "/tmp/shmbus-sup-test-" + std::to_string(::getpid());
  const std::string exiting_file = base + "-exiting";
  const std::string waiting_file = base + "-waiting";
  // Each shell leaves a `sleep` in its process group and records its pid.
  auto exiting = spec("exiting",
                      {"/bin/sh", "-c", "sleep 100 & echo $! > " + exiting_file + "; exit 3"},
                      Restart::temporary);
  auto waiting =
      spec("waiting", {"/bin/sh", "-c", "sleep 100 & echo $! > " + waiting_file + "; wait"});
  auto supervisor = Supervisor::start({exiting, waiting});
  ASSERT_TRUE(supervisor) << supervisor.error().message();
  pid_t left_by_exit = 0;
  pid_t left_at_stop = 0;
  ASSERT_TRUE(test::wait_until(3s, [&] {
    left_by_exit = read_pid(exiting_file);
    left_at_stop = read_pid(waiting_file);
    return left_by_exit > 0 && left_at_stop > 0;
  }));
  ASSERT_TRUE(test::wait_until(3s, [&] {
    return of(*supervisor, "exiting").state == ChildState::exited;
  }));
  EXPECT_TRUE(test::wait_until(3s, [&] { return reaped_and_gone(left_by_exit); }));
  supervisor->stop();
  EXPECT_TRUE(test::wait_until(3s, [&] { return reaped_and_gone(left_at_stop); }));
  std::remove(exiting_file.c_str());
  std::remove(waiting_file.c_str());
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST(SupervisorTest, ChildrenDieWithAKilledSupervisor) {
  // Orphans come back to this process, so it can reap them and check ESRCH.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    ::close(fds[0]);
    auto supervisor = Supervisor::start({sleeper("orphan")});
    if (!supervisor) ::_exit(2);
    const pid_t pid = supervisor->status().front().pid;
    if (::write(fds[1], &pid, sizeof pid) != sizeof pid) ::_exit(3);
    for (;;) ::pause();
  }
  ::close(fds[1]);
  pid_t child = 0;
  ASSERT_EQ(::read(fds[0], &child, sizeof child), static_cast<ssize_t>(sizeof child));
  ::close(fds[0]);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::kill(child, 0), 0);
  ASSERT_EQ(::kill(helper, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(helper, &status, 0), helper);
  EXPECT_TRUE(test::wait_until(3s, [&] {
    int child_status = 0;
    const pid_t reaped = ::waitpid(child, &child_status, WNOHANG);
    return (reaped == child || (reaped < 0 && errno == ECHILD)) && gone(child);
  }));
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

}  // namespace
}  // namespace shmbus
