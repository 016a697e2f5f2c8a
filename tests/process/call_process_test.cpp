// Calls across processes: every call is accounted for. Caller processes print
// their ledger (call id -> outcome), the server processes print the ids they
// ran, and the two agree exactly — a call a server ran is a reply or
// timeout_in_progress, a call no server ran is timeout_not_started — with the
// servers' counters and the service's outcome counters to match. Callers
// stay attached until the servers are done, so no record is skipped as
// caller_gone; a caller that exits right after reading its reply has a test
// of its own. Also: a stuck server never holds up calls its idle sibling can
// serve.
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "process/child_lines.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/schemas/mailer_generated.h"
#include "shmbus/schemas/mailer_reply_generated.h"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/service_row.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::outcome_count;
using test::Child;
namespace mailer = shmbus::examples::mailer;

constexpr const char* kService = "mailer";

// A request the call_server role understands (child_roles_calls.cpp).
std::vector<std::byte> send_email(std::uint64_t id, std::uint64_t work_us, const char* key = "") {
  flatbuffers::FlatBufferBuilder builder(256);
  builder.Finish(
      mailer::CreateSendEmailDirect(builder, "t@example.com", "t", std::to_string(id).c_str(),
                                    std::to_string(work_us).c_str(), key),
      mailer::SendEmailIdentifier());
  const auto* bytes = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
  return {bytes, bytes + builder.GetSize()};
}

// The id and server pid of an EmailSent reply; {0, 0} if it is not one.
std::pair<std::uint64_t, int> sent_by(const Reply& reply) {
  MessageBuffer scratch;
  auto sent = reply.read<mailer::EmailSent>("MALR", scratch);
  if (!sent) return {0, 0};
  return {(*sent)->message_id(), (*sent)->handled_by_pid()};
}

// Options of a call that ends within `d` from now.
CallOptions within(Clock::duration d) {
  CallOptions options;
  options.deadline = deadline_in(d);
  return options;
}

ServiceInfo service_info(test::ScopedBus& bus) { return test::service_row(bus.bus(), kService); }

// Waits until children[first, last) all printed `prefix`, reading every
// child's pipe meanwhile (a child blocked on a full pipe would never finish).
::testing::AssertionResult wait_all(std::vector<Child>& children, std::size_t first,
                                    std::size_t last, const std::string& prefix,
                                    std::chrono::milliseconds timeout = 60s) {
  std::size_t failed = children.size();
  const bool seen = test::wait_until(timeout, [&] {
    bool all = true;
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (children[i].printed("error:")) failed = i;
      if (i >= first && i < last && !children[i].printed(prefix)) all = false;
    }
    return all || failed < children.size();
  });
  if (seen && failed == children.size()) return ::testing::AssertionSuccess();
  auto result = ::testing::AssertionFailure() << "waiting for '" << prefix << "'";
  for (std::size_t i = first; i < last; ++i) {
    if (i == failed || !children[i].printed(prefix)) {
      result << "\nchild " << i << " (pid " << children[i].pid() << ") printed:\n"
             << children[i].output().substr(0, 2000);
    }
  }
  return result;
}

void spawn_servers(std::vector<Child>& children, const std::string& bus, int count) {
  for (int i = 0; i < count; ++i) {
    children.push_back(Child::spawn("call_server", {"--bus", bus, "--service", kService}));
  }
}

// SIGTERM to children[first, last) (call_server roles), then they print their logs.
::testing::AssertionResult stop_servers(std::vector<Child>& children, std::size_t first,
                                        std::size_t last) {
  for (std::size_t i = first; i < last; ++i) ::kill(children[i].pid(), SIGTERM);
  auto done = wait_all(children, first, last, "done");
  if (!done) return done;
  for (std::size_t i = first; i < last; ++i) {
    if (int status = children[i].wait(10s); status != 0) {
      return ::testing::AssertionFailure() << "server " << i << " exited with " << status;
    }
  }
  return ::testing::AssertionSuccess();
}

std::vector<std::uint64_t> ids_after(Child& child, const std::string& prefix) {
  std::vector<std::uint64_t> ids;
  for (const auto& line : test::lines_after(child, prefix)) {
    std::istringstream words(line);
    for (std::uint64_t id = 0; words >> id;) ids.push_back(id);
  }
  return ids;
}

// A server's own counters, from its "counters k=v …" line.
std::map<std::string, std::uint64_t> printed_counters(Child& child) {
  std::map<std::string, std::uint64_t> counters;
  std::istringstream words(test::line_after(child, "counters "));
  for (std::string word; words >> word;) {
    const auto eq = word.find('=');
    if (eq != std::string::npos) counters[word.substr(0, eq)] = std::stoull(word.substr(eq + 1));
  }
  return counters;
}

// ---- the ledger: caller outcomes against server logs ----

struct Load {
  int servers = 1, processes = 4, threads = 25;
  long calls = 50, window = 1;  // per thread; calls in flight per thread
  long deadline_min_us = 200'000, deadline_max_us = 200'000;
  long work_min_us = 5'000, work_max_us = 5'000;
};

struct Ledger {
  long total = 0;                                // calls the load makes
  std::map<std::uint64_t, std::string> outcome;  // id -> outcome at its caller
  std::map<std::uint64_t, int> ran;              // id -> times a server ran it
  std::map<std::string, long> counts;            // outcome -> calls
  long repeated = 0;                             // ids in two ledger lines
  long latest_timeout_us = 0;                    // a timeout's outcome, past its deadline
  std::uint64_t server_calls = 0;                // summed "calls" the servers printed
  ServiceInfo info;                              // after every server left

  [[nodiscard]] long count(const std::string& name) const {
    auto it = counts.find(name);
    return it == counts.end() ? 0 : it->second;
  }
};

// Runs `load` against a fresh bus: servers, then caller processes; waits
// until the servers consumed every request, stops them and collects both sides.
void run_load(const Load& load, Ledger& ledger) {
  auto bus = test::ScopedBus::create();
  std::vector<Child> children;
  children.reserve(static_cast<std::size_t>(load.servers + load.processes));
  spawn_servers(children, bus.name(), load.servers);
  const auto servers = static_cast<std::size_t>(load.servers);
  ASSERT_TRUE(wait_all(children, 0, servers, "ready", 10s));
  for (int p = 0; p < load.processes; ++p) {
    // --linger: callers stay attached until the servers are done with them.
    const std::vector<std::pair<const char*, long>> numbers{
        {"--process", p},
        {"--threads", load.threads},
        {"--calls", load.calls},
        {"--window", load.window},
        {"--deadline-min-us", load.deadline_min_us},
        {"--deadline-max-us", load.deadline_max_us},
        {"--work-min-us", load.work_min_us},
        {"--work-max-us", load.work_max_us},
        {"--linger", 1}};
    std::vector<std::string> args{"--bus", bus.name(), "--service", kService};
    for (const auto& [flag, value] : numbers) {
      args.emplace_back(flag);
      args.push_back(std::to_string(value));
    }
    children.push_back(Child::spawn("call_load", args));
  }
  ledger.total = load.processes * load.threads * load.calls;
  ASSERT_TRUE(wait_all(children, servers, children.size(), "done", 120s));
  for (std::size_t i = servers; i < children.size(); ++i) {
    for (const auto& line : test::lines_after(children[i], "o ")) {
      std::istringstream words(line);
      std::uint64_t id = 0;
      std::string outcome;
      long late_us = 0;
      words >> id >> outcome >> late_us;
      if (!ledger.outcome.emplace(id, outcome).second) ++ledger.repeated;
      ++ledger.counts[outcome];
      if (outcome.starts_with("timeout")) {
        ledger.latest_timeout_us = std::max(ledger.latest_timeout_us, late_us);
      }
    }
  }
  // Every request that reached the mailbox is consumed: run or skipped.
  const long sent = ledger.count("reply") + ledger.count("timeout_in_progress") +
                    ledger.count("timeout_not_started");
  ASSERT_TRUE(test::wait_until(30s, [&] {
    const auto t = service_info(bus).totals;
    return static_cast<long>(t.calls + t.expired_skipped + t.caller_gone + t.bad_messages) >= sent;
  })) << "the servers did not consume every request";
  ASSERT_TRUE(stop_servers(children, 0, servers));
  for (std::size_t i = 0; i < servers; ++i) {
    for (std::uint64_t id : ids_after(children[i], "ran")) ++ledger.ran[id];
    ledger.server_calls += printed_counters(children[i])["calls"];
  }
  for (std::size_t i = servers; i < children.size(); ++i) {
    ::kill(children[i].pid(), SIGUSR1);
    EXPECT_EQ(children[i].wait(10s), 0) << children[i].output().substr(0, 2000);
  }
  ledger.info = service_info(bus);
}

// The promise: each call ends in exactly one outcome, and it matches what
// the servers did.
void expect_agreement(const Ledger& ledger) {
  EXPECT_EQ(static_cast<long>(ledger.outcome.size()), ledger.total);
  EXPECT_EQ(ledger.repeated, 0) << "a call id has two outcomes";
  long violations = 0;
  std::ostringstream examples;
  auto violation = [&](std::uint64_t id, const std::string& what) {
    if (++violations <= 10) examples << "\n  call " << id << ": " << what;
  };
  for (const auto& [id, outcome] : ledger.outcome) {
    const bool ran = ledger.ran.contains(id);
    if (outcome == "reply" || outcome == "timeout_in_progress") {
      if (!ran) violation(id, outcome + ", but no server ran it");
    } else if (outcome == "timeout_not_started") {
      if (ran) violation(id, "timeout_not_started, but a server ran it");
    } else {
      violation(id, "unexpected outcome " + outcome);
    }
  }
  std::uint64_t runs = 0;
  for (const auto& [id, times] : ledger.ran) {
    runs += static_cast<std::uint64_t>(times);
    if (times > 1) violation(id, "ran " + std::to_string(times) + " times");
    if (!ledger.outcome.contains(id)) violation(id, "ran, but no caller has an outcome for it");
  }
  EXPECT_EQ(violations, 0) << violations << " calls disagree, for example:" << examples.str();

  const long replies = ledger.count("reply");
  const long in_progress = ledger.count("timeout_in_progress");
  const long not_started = ledger.count("timeout_not_started");
  EXPECT_EQ(replies + in_progress + not_started, ledger.total) << "outcomes are missing";
  const ServerCounters& t = ledger.info.totals;
  EXPECT_EQ(runs, ledger.server_calls);
  EXPECT_EQ(t.calls, runs);
  EXPECT_EQ(t.replies, static_cast<std::uint64_t>(replies));
  EXPECT_EQ(t.late_replies, static_cast<std::uint64_t>(in_progress));
  EXPECT_EQ(t.expired_skipped, static_cast<std::uint64_t>(not_started));
  EXPECT_EQ(t.caller_gone, 0u) << "every caller stayed attached";
  EXPECT_EQ(t.bad_messages, 0u);
  EXPECT_EQ(outcome_count(ledger.info, Errc::timeout_not_started),
            static_cast<std::uint64_t>(not_started));
  EXPECT_EQ(outcome_count(ledger.info, Errc::timeout_in_progress),
            static_cast<std::uint64_t>(in_progress));
}

std::string summary(const Ledger& ledger) {
  std::ostringstream text;
  text << ledger.total << " calls:";
  for (const auto& [outcome, n] : ledger.counts) text << " " << outcome << "=" << n;
  text << "; expired_skipped=" << ledger.info.totals.expired_skipped
       << " caller_gone=" << ledger.info.totals.caller_gone << "; latest timeout came "
       << ledger.latest_timeout_us << " µs after its deadline";
  return text.str();
}

TEST(CallProcess, CallerOutcomesAndServerLogAgreeWhenOneSlowServerIsOverloaded) {
  // 100 callers in 4 processes, one server at 5 ms a call, 200 ms deadlines:
  // the server can answer about 40 callers per deadline, so most calls time out.
  Load load;
  load.calls = std::max(5L, test::scaled(50));
  Ledger ledger;
  ASSERT_NO_FATAL_FAILURE(run_load(load, ledger));
  expect_agreement(ledger);
  const long timeouts = ledger.count("timeout_not_started") + ledger.count("timeout_in_progress");
  EXPECT_GT(timeouts, ledger.total / 4) << summary(ledger);
  EXPECT_GT(ledger.count("reply"), 0) << summary(ledger);
  std::cout << summary(ledger) << "\n";
}

TEST(CallProcess, PoolOfEightServersAnswersEveryCallBeforeItsDeadline) {
  Load load;
  load.servers = 8;
  load.calls = std::max(5L, test::scaled(50));
  load.deadline_min_us = load.deadline_max_us = 2'000'000;
  Ledger ledger;
  ASSERT_NO_FATAL_FAILURE(run_load(load, ledger));
  expect_agreement(ledger);
  EXPECT_EQ(ledger.count("reply"), ledger.total) << summary(ledger);
}

TEST(CallProcess, CallerOutcomesAndServerLogsAgreeExactlyUnderRandomDeadlines) {
  // The race itself: handlers of 1–20 ms, deadlines uniform in 0–30 ms, so
  // servers take calls while their callers give up. 4 caller processes of
  // 6 threads with 4 calls in flight each; 8 servers.
  Load load;
  load.servers = 8;
  load.processes = 4;
  load.threads = 6;
  load.window = 4;
  load.calls = std::max(20L, test::scaled(10'000) / (load.processes * load.threads));
  load.deadline_min_us = 0;
  load.deadline_max_us = 30'000;
  load.work_min_us = 1'000;
  load.work_max_us = 20'000;
  Ledger ledger;
  ASSERT_NO_FATAL_FAILURE(run_load(load, ledger));
  expect_agreement(ledger);
  // All three sides of the race happened.
  EXPECT_GT(ledger.count("reply"), 0) << summary(ledger);
  EXPECT_GT(ledger.count("timeout_in_progress"), 0) << summary(ledger);
  EXPECT_GT(ledger.count("timeout_not_started"), 0) << summary(ledger);
  std::cout << summary(ledger) << "\n";
}

// A caller that reads its reply and exits at once, before its server looked
// at it again: the reply was delivered, so it counts in `replies`, never in
// `late_replies` or `caller_gone`. Both share one CPU and the server is
// SCHED_IDLE, so its wake-up hands the CPU to the caller, which runs to its
// exit before the server's next instruction (every round, not by chance).
//
// Server::finish_call counts `replies` at its REPLIED CAS, before it looks
// at whether the caller is still attached (it may have read and left).
TEST(CallProcess, ReplyReadRightBeforeItsCallerExitsCountsAsAReply) {
  auto bus = test::ScopedBus::create();
  std::vector<Child> children;
  children.push_back(Child::spawn(
      "call_server", {"--bus", bus.name(), "--service", kService, "--cpu", "0", "--idle", "1"}));
  ASSERT_TRUE(wait_all(children, 0, 1, "ready", 10s));
  const int rounds = 10;
  for (int round = 0; round < rounds; ++round) {
    children.push_back(Child::spawn(
        "call_load", {"--bus", bus.name(), "--service", kService, "--process",
                      std::to_string(round), "--threads", "1", "--calls", "1", "--deadline-min-us",
                      "5000000", "--work-min-us", "1000", "--cpu", "0"}));
    ASSERT_TRUE(wait_all(children, children.size() - 1, children.size(), "done", 10s));
    std::istringstream line(test::line_after(children.back(), "o "));
    std::string id, outcome;
    line >> id >> outcome;
    EXPECT_EQ(outcome, "reply") << "round " << round;
    EXPECT_EQ(children.back().wait(10s), 0);
  }
  ASSERT_TRUE(stop_servers(children, 0, 1));
  const auto t = service_info(bus).totals;
  EXPECT_EQ(t.calls, static_cast<std::uint64_t>(rounds));
  EXPECT_EQ(t.replies, static_cast<std::uint64_t>(rounds));
  EXPECT_EQ(t.late_replies, 0u);
  EXPECT_EQ(t.caller_gone, 0u);
}

TEST(CallProcess, IdleServerTakesEveryCallWhileItsSiblingIsStuck) {
  auto bus = test::ScopedBus::create();
  std::vector<Child> servers;
  servers.reserve(2);
  spawn_servers(servers, bus.name(), 2);
  ASSERT_TRUE(wait_all(servers, 0, 2, "ready", 10s));
  auto service = bus->service(kService);
  ASSERT_TRUE(service) << service.error().message();

  // One server takes the stall request and blocks in its handler until released.
  constexpr std::uint64_t kStallId = 999'999;
  auto stalled = service->send_request(send_email(kStallId, 0, "stall"), within(60s));
  ASSERT_TRUE(stalled) << to_string(stalled.error());
  ASSERT_TRUE(test::wait_until(10s, [&] {
    return servers[0].printed("stalled") || servers[1].printed("stalled");
  })) << "no server took the stall request";
  const std::size_t a = servers[0].printed("stalled") ? 0 : 1;
  const std::size_t b = 1 - a;

  const int calls = 100;
  int on_b = 0;
  std::ostringstream wrong;
  for (int i = 0; i < calls; ++i) {
    auto reply = service->call(send_email(static_cast<std::uint64_t>(i), 1'000), within(200ms));
    if (!reply) {
      wrong << "\n  call " << i << ": " << to_string(reply.error());
      continue;
    }
    const auto [id, pid] = sent_by(*reply);
    if (id == static_cast<std::uint64_t>(i) && pid == servers[b].pid()) {
      ++on_b;
    } else {
      wrong << "\n  call " << i << ": reply " << id << " from pid " << pid;
    }
  }
  EXPECT_EQ(on_b, calls) << "calls not answered by the idle server:" << wrong.str();

  // Still stuck: A has finished nothing, B everything.
  const auto info = service_info(bus);
  ASSERT_EQ(info.servers.size(), 2u);
  for (const auto& server : info.servers) {
    EXPECT_EQ(server.counters.calls, server.pid == servers[b].pid() ? 100u : 0u)
        << "pid " << server.pid;
  }
  ASSERT_FALSE(servers[a].printed("stall not released"));

  ::kill(servers[a].pid(), SIGUSR1);
  auto released = stalled->wait();
  ASSERT_TRUE(released) << to_string(released.error());
  EXPECT_EQ(sent_by(*released), std::make_pair(kStallId, static_cast<int>(servers[a].pid())));
  ASSERT_TRUE(stop_servers(servers, 0, 2));
  EXPECT_EQ(ids_after(servers[a], "ran"), std::vector<std::uint64_t>{kStallId});
  EXPECT_EQ(ids_after(servers[b], "ran").size(), static_cast<std::size_t>(calls));
}

}  // namespace
}  // namespace shmbus
