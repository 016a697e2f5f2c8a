// Servers killed with SIGKILL while they run a message (DESIGN.md, Promises 1
// and 4): the call a server was running ends in server_crashed at once, not
// at its deadline, and is never run again; the cast it was running is
// redelivered, marked, to a sibling or the restarted server; a cast that
// kills every server that takes it is dead-lettered after max_deliveries
// tries. Everything else in flight is served, and the service's ledger
// (server counters and caller outcomes) balances.
//
// The servers are crash_server children (tests/support/child_roles_crash.cpp);
// the test is their caller and their supervisor. A server blocks in the
// handler of message #k (it says "blocking call k"), so which server is
// killed, and in which message, is decided by the request, not by timing.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fault/crash_support.hpp"
#include "fault/fault_support.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::CallBatch;
using test::Child;
using test::CrashAction;
using test::CrashKind;
using test::CrashRequest;
using test::kCrashService;
using test::kRunLog;
using test::RunLog;
using test::wire_bytes;

// Who serves the rest once the server running message #k is killed.
enum class Pool { sibling, restarted };

std::string pool_name(const ::testing::TestParamInfo<Pool>& param) {
  return param.param == Pool::sibling ? "sibling" : "restarted";
}

// ~1,000 messages in flight at scale 1 (at most the bus's 1,024 call slots
// and the mailbox's 1,024 records).
long in_flight_count() { return std::clamp(test::scaled(1000), 10L, 1000L); }

// The servers of one test. The test is their supervisor: it kills them, and
// starts new ones in place of the dead.
class Servers {
 public:
  Servers(test::ScopedBus& bus, int count, std::vector<std::string> extra = {"--log", kRunLog})
      : bus_(bus), extra_(std::move(extra)) {
    for (int i = 0; i < count; ++i) start();
  }
  Servers(test::ScopedBus& bus, Pool pool) : Servers(bus, pool == Pool::sibling ? 2 : 1) {}

  // Starts one more server and waits until it serves.
  void start() { children_.emplace_back(test::spawn_crash_server(bus_, extra_)); }
  // Waits until one server says `line`; returns its index, or -1.
  int wait_for_line(const std::string& line) {
    int found = -1;
    (void)test::wait_until(10s, [&] {
      for (std::size_t i = 0; i < children_.size(); ++i) {
        if (children_[i] && children_[i]->printed(line)) found = static_cast<int>(i);
      }
      return found >= 0;
    });
    return found;
  }
  // SIGKILLs server `i` and reaps it; returns its pid.
  int kill(int i) {
    Child& child = *children_[static_cast<std::size_t>(i)];
    child.kill_9();
    EXPECT_EQ(child.wait(), 128 + SIGKILL);
    const int pid = child.pid();
    children_[static_cast<std::size_t>(i)].reset();
    return pid;
  }
  // Replaces every server that died on its own with a new one (not waited
  // for); returns what the dead ones printed.
  std::vector<std::string> restart_dead() {
    std::vector<std::string> dead;
    for (auto& child : children_) {
      if (!child || child->wait(0ms) == -1) continue;
      dead.push_back(child->output());
      child.reset();
      std::vector<std::string> args{"--bus", bus_.name(), "--service", kCrashService};
      args.insert(args.end(), extra_.begin(), extra_.end());
      child.emplace(Child::spawn("crash_server", args));
    }
    return dead;
  }
  [[nodiscard]] bool all_alive() {
    for (auto& child : children_) {
      if (child && child->wait(0ms) != -1) return false;
    }
    return true;
  }
  [[nodiscard]] std::string outputs() {
    std::string all;
    for (auto& c : children_) {
      if (c) all += "[server " + std::to_string(c->pid()) + "]\n" + c->output();
    }
    return all;
  }

 private:
  test::ScopedBus& bus_;
  std::vector<std::string> extra_;
  std::vector<std::optional<Child>> children_;
};

class ServerKilledRunningCall : public ::testing::TestWithParam<Pool> {};

TEST_P(ServerKilledRunningCall, ThatCallEndsInServerCrashedAtOnceAndEveryOtherCallIsReplied) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options()));
  auto service = bus->service(kCrashService).value();
  RunLog log(bus);
  Servers servers(bus, GetParam());
  ASSERT_FALSE(HasFailure());

  const long n = in_flight_count();
  const long k = n / 2;
  const Deadline deadline = deadline_in(20s);
  CallBatch calls;
  for (long i = 0; i < n; ++i) {
    calls.send(service, static_cast<std::uint64_t>(i), i == k ? CrashAction::block : CrashAction::reply,
               deadline);
    ASSERT_FALSE(HasFailure());
  }
  // Call #k's caller is parked in wait() when its server dies: nothing but
  // its own liveness re-check can end it before the deadline.
  Errc crashed = Errc::empty;
  Clock::time_point ended{};
  std::jthread waiter([&, call = calls.take(static_cast<std::size_t>(k))]() mutable {
    auto outcome = call.wait();
    ended = Clock::now();
    crashed = outcome ? Errc::empty : outcome.error();
  });
  const int blocker = servers.wait_for_line("blocking call " + std::to_string(k));
  ASSERT_GE(blocker, 0) << "no server took call #" << k << ": " << servers.outputs();
  const Clock::time_point killed_at = Clock::now();
  const int killed_pid = servers.kill(blocker);
  if (GetParam() == Pool::restarted) servers.start();
  waiter.join();

  EXPECT_EQ(crashed, Errc::server_crashed) << to_string(crashed);
  EXPECT_LT(ended - killed_at, 3s) << "server_crashed came long after the kill, not at once";
  EXPECT_LT(ended, deadline);
  ASSERT_TRUE(calls.wait_all()) << "unfinished calls: " << calls.failures();
  EXPECT_EQ(calls.failures(), "") << "calls other than #" << k << " that got no reply of their own";

  // The ledger: n - 1 calls ran and were replied; #k is server_crashed at
  // its caller and `redelivered` at the server that took its record over
  // and skipped it (it is not run again, nor counted as expired_skipped).
  const auto u = [](long v) { return static_cast<std::uint64_t>(v); };
  ServiceInfo info;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.replies == u(n - 1) && info.totals.redelivered == 1;
  })) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.calls, u(n - 1));
  EXPECT_EQ(info.totals.expired_skipped, 0u);
  EXPECT_EQ(info.totals.late_replies, 0u);
  EXPECT_EQ(info.totals.caller_gone, 0u);
  EXPECT_EQ(test::outcome_count(info, Errc::server_crashed), 1u) << test::outcomes_text(info);
  EXPECT_EQ(test::outcome_count(info, Errc::timeout_in_progress) +
                test::outcome_count(info, Errc::timeout_not_started),
            0u)
      << test::outcomes_text(info);
  EXPECT_EQ(info.depth, 0u);

  // The run log agrees: every call but #k ran once; #k never ran to its end.
  ASSERT_TRUE(log.wait_for(static_cast<std::size_t>(n - 1)));
  const auto runs = log.run_counts(CrashKind::call);
  EXPECT_EQ(runs.count(static_cast<std::uint64_t>(k)), 0u) << "call #" << k << " ran again";
  for (long i = 0; i < n; ++i) {
    if (i == k) continue;
    const auto it = runs.find(static_cast<std::uint64_t>(i));
    ASSERT_TRUE(it != runs.end() && it->second == 1) << "call " << i << " ran "
                                                      << (it == runs.end() ? 0 : it->second) << " times";
  }
  for (const auto& run : log.runs()) EXPECT_FALSE(run.redelivered) << "call " << run.index;
  EXPECT_NE(killed_pid, 0);
}

INSTANTIATE_TEST_SUITE_P(ServerCrash, ServerKilledRunningCall,
                         ::testing::Values(Pool::sibling, Pool::restarted), pool_name);

class ServerKilledRunningCast : public ::testing::TestWithParam<Pool> {};

TEST_P(ServerKilledRunningCast, ThatCastIsRedeliveredMarkedAndNothingIsLost) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options()));
  auto service = bus->service(kCrashService).value();
  RunLog log(bus);
  Servers servers(bus, GetParam());
  ASSERT_FALSE(HasFailure());

  const long n = in_flight_count();
  const long k = n / 2;
  for (long i = 0; i < n; ++i) {
    const CrashRequest cast{static_cast<std::uint64_t>(i), i == k ? CrashAction::block : CrashAction::reply};
    auto accepted = service.cast(wire_bytes(cast), test::cast_until(deadline_in(10s)));
    ASSERT_TRUE(accepted) << "cast " << i << ": " << to_string(accepted.error());
  }
  const int blocker = servers.wait_for_line("blocking cast " + std::to_string(k));
  ASSERT_GE(blocker, 0) << "no server took cast #" << k << ": " << servers.outputs();
  const int killed_pid = servers.kill(blocker);
  if (GetParam() == Pool::restarted) servers.start();

  // Count in = count out: every accepted cast ran to its end exactly once.
  ASSERT_TRUE(log.wait_for(static_cast<std::size_t>(n), 15s))
      << log.drain() << " of " << n << " casts ran: " << servers.outputs();
  const auto runs = log.run_counts(CrashKind::cast);
  for (long i = 0; i < n; ++i) {
    const auto it = runs.find(static_cast<std::uint64_t>(i));
    ASSERT_TRUE(it != runs.end() && it->second == 1)
        << "cast " << i << " ran " << (it == runs.end() ? 0 : it->second) << " times";
  }
  for (const auto& run : log.runs()) {
    if (run.index == static_cast<std::uint64_t>(k)) {
      EXPECT_EQ(run.redelivered, 1u) << "the interrupted cast is not marked redelivered";
      EXPECT_EQ(run.deliveries, 2u);
      EXPECT_NE(run.pid, killed_pid);
    } else {
      EXPECT_EQ(run.redelivered, 0u) << "cast " << run.index << " was redelivered";
      EXPECT_EQ(run.deliveries, 1u) << "cast " << run.index;
    }
  }

  const auto u = [](long v) { return static_cast<std::uint64_t>(v); };
  ServiceInfo info;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.casts == u(n);
  })) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.redelivered, 1u);
  EXPECT_EQ(info.totals.dead_lettered, 0u);
  EXPECT_EQ(info.dead_letters, 0u);
  EXPECT_EQ(info.depth, 0u);
  EXPECT_EQ(test::outcomes_text(info), "none");
}

INSTANTIATE_TEST_SUITE_P(ServerCrash, ServerKilledRunningCast,
                         ::testing::Values(Pool::sibling, Pool::restarted), pool_name);

// Sends casts 0…n-1, those in `poison` poisoned, and supervises the servers
// (restarting the dead) until the n - |poison| good casts ran and `settled`
// holds. Returns what each dead server printed.
template <class Settled>
std::vector<std::string> cast_and_supervise(Service& service, Servers& servers, RunLog& log, long n,
                                            const std::vector<long>& poison, Settled settled) {
  for (long i = 0; i < n; ++i) {
    const bool poisoned = std::find(poison.begin(), poison.end(), i) != poison.end();
    const CrashRequest cast{static_cast<std::uint64_t>(i), poisoned ? CrashAction::poison : CrashAction::reply};
    auto accepted = service.cast(wire_bytes(cast), test::cast_until(deadline_in(10s)));
    EXPECT_TRUE(accepted) << "cast " << i << ": " << to_string(accepted.error());
  }
  std::vector<std::string> dead;
  const auto good = static_cast<std::size_t>(n) - poison.size();
  const bool done = test::wait_until(20s, [&] {
    for (auto& out : servers.restart_dead()) dead.push_back(std::move(out));
    return log.drain() >= good && settled();
  });
  EXPECT_TRUE(done) << log.drain() << " of " << good << " good casts ran, " << dead.size()
                    << " servers died";
  return dead;
}

// What the dead servers said they died of: "<index> <deliveries>", sorted.
std::vector<std::string> causes_of_death(const std::vector<std::string>& outputs) {
  std::vector<std::string> causes;
  for (const auto& out : outputs) {
    auto lines = test::lines_after(out, "poisoned ");
    EXPECT_EQ(lines.size(), 1u) << "a server died of something else:\n" << out;
    causes.insert(causes.end(), lines.begin(), lines.end());
  }
  std::sort(causes.begin(), causes.end());
  return causes;
}

TEST(ServerCrash, PoisonCastIsDeadLetteredAfterMaxDeliveriesWhileThePoolServesTheRest) {
  constexpr std::uint32_t kMaxDeliveries = 3;
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options(1024, kMaxDeliveries)));
  auto service = bus->service(kCrashService).value();
  RunLog log(bus);
  Servers servers(bus, 2);
  ASSERT_FALSE(HasFailure());

  const long n = std::clamp(test::scaled(300), 10L, 1000L);
  const long poison = n / 3;
  const auto dead = cast_and_supervise(service, servers, log, n, {poison},
                                       [&] { return test::crash_service_info(bus.bus()).dead_letters == 1; });
  ASSERT_FALSE(HasFailure());

  // Exactly max_deliveries servers died, each of the poison, on deliveries 1, 2, 3.
  const std::string p = std::to_string(poison);
  EXPECT_EQ(causes_of_death(dead), (std::vector<std::string>{p + " 1", p + " 2", p + " 3"}));

  // The ledger: every other cast ran once; the poison is one dead letter.
  const auto u = [](long v) { return static_cast<std::uint64_t>(v); };
  ServiceInfo info;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.casts == u(n - 1) && info.totals.dead_lettered == 1;
  })) << test::totals_text(info.totals);
  EXPECT_EQ(info.dead_letters, 1u);
  EXPECT_EQ(info.totals.dead_letters_dropped, 0u);
  EXPECT_EQ(info.totals.redelivered, u(kMaxDeliveries)) << "deliveries 2, 3 and the dead-lettering 4th";
  EXPECT_EQ(info.depth, 0u);
  const auto runs = log.run_counts(CrashKind::cast);
  EXPECT_EQ(runs.count(static_cast<std::uint64_t>(poison)), 0u);
  for (long i = 0; i < n; ++i) {
    if (i == poison) continue;
    const auto it = runs.find(static_cast<std::uint64_t>(i));
    ASSERT_TRUE(it != runs.end() && it->second == 1) << "cast " << i;
  }

  // The pool still serves, and nobody else died on the way.
  auto reply = service.call(wire_bytes(CrashRequest{u(n), CrashAction::reply}),
                            test::call_until(deadline_in(10s)));
  ASSERT_TRUE(reply) << to_string(reply.error());
  EXPECT_TRUE(servers.all_alive()) << servers.outputs();
  EXPECT_EQ(dead.size(), kMaxDeliveries);

  // A person (or `shmbus dead-letters`) reads the poison back, as it was sent,
  // with the number of deliveries that killed servers.
  auto letters = bus->dead_letters(service.name());
  ASSERT_TRUE(letters) << letters.error().message();
  auto letter = letters->try_receive();
  ASSERT_TRUE(letter);
  EXPECT_EQ(letter->info().correlation, u(kMaxDeliveries + 1));
  const CrashRequest poisoned{u(poison), CrashAction::poison};
  const auto sent = wire_bytes(poisoned);
  ASSERT_EQ(letter->payload().size(), sent.size());
  EXPECT_TRUE(std::equal(sent.begin(), sent.end(), letter->payload().begin()));
  letter->done();
  EXPECT_EQ(test::crash_service_info(bus.bus()).dead_letters, 0u) << "done() drops it";
}

TEST(ServerCrash, DeadLettersBeyondTheListsCapacityAreCountedAsDropped) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options(1024, 1, 2)));
  auto service = bus->service(kCrashService).value();
  RunLog log(bus);
  Servers servers(bus, 2, {"--log", kRunLog, "--max-deliveries", "1", "--dead-letters", "2"});
  ASSERT_FALSE(HasFailure());

  // max_deliveries 1: each poison kills one server, then goes to the dead
  // letters; the list holds 2, so the third is dropped, and counted.
  const auto dead = cast_and_supervise(service, servers, log, 20, {3, 9, 15}, [&] {
    const auto totals = test::crash_service_info(bus.bus()).totals;
    return totals.dead_lettered + totals.dead_letters_dropped == 3;
  });
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(causes_of_death(dead), (std::vector<std::string>{"15 1", "3 1", "9 1"}));
  const ServiceInfo info = test::crash_service_info(bus.bus());
  EXPECT_EQ(info.dead_letters, 2u);
  EXPECT_EQ(info.totals.dead_lettered, 2u) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.dead_letters_dropped, 1u) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.casts, 17u);
  EXPECT_EQ(info.totals.redelivered, 3u);
}

}  // namespace
}  // namespace shmbus
