// Keyed routing across processes: per-key order holds while the pool changes.
//
// Four server processes serve a keyed service (16 partitions); two producer
// processes send rounds over 10,000 keys (scaled), 4 messages per key and
// round back to back (so a partition's ring holds runs of one key, which two
// servers taking from it at once would reorder or overlap), each message
// carrying its key's sequence number; about one in 64 is a call, the rest
// casts. While the traffic flows a fifth server joins, one leaves gracefully
// (Server::stop() called from inside a handler, which then keeps its message
// 2 ms more: the server finishes it, takes nothing more, and leaves the pool)
// and one is killed -9: holding a cast, holding a call, or wherever it is.
// Every run is logged in a shared mapped file (process/keyed_wire.hpp) with
// a start and an end ticket from one shared counter, so the runs of all
// processes merge into one order, and what the killed server wrote survives
// it. Per key, in ticket order:
//   - the sequence numbers are 0, 1, 2, … with none missing or repeated,
//     except that a cast the killed server held is run again, marked
//     redelivered, before any later message of its key, and a call it held
//     ends in server_crashed at its caller and never runs again;
//   - each run ends before the next one of the key starts: no two servers
//     ever ran one key at once, across hand-overs, the leave and the kill.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "process/child_lines.hpp"
#include "process/keyed_wire.hpp"
#include "shmbus/bus.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::KeyedLog;
using test::KeyedLogEntry;

constexpr int kProducers = 2;
constexpr long kCallEvery = 64;
constexpr long kBurst = 4;       // messages per key and round, sent back to back
constexpr long kMaxRounds = 12;  // bounds the log; the test stops producers long before
constexpr std::uint16_t kLeaver = 2;
constexpr std::uint16_t kVictim = 3;
constexpr std::uint16_t kJoiner = 4;

// A temporary directory, removed with its files at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "shmbus_keyed_XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// The log entry of one run, copied out of the shared file.
struct KeyRun {
  std::uint64_t key = 0;
  std::uint32_t seq = 0;
  std::uint16_t server = 0;
  std::uint8_t flags = 0;
  std::uint8_t deliveries = 0;
  std::uint64_t start = 0;
  std::uint64_t end = 0;  // 0: never ended (its server was killed running it)

  [[nodiscard]] bool redelivered() const noexcept { return (flags & test::kEntryRedelivered) != 0; }
  [[nodiscard]] bool call() const noexcept { return (flags & test::kEntryCall) != 0; }
  [[nodiscard]] std::string text() const {
    std::ostringstream out;
    out << "{key " << key << " seq " << seq << " server " << server << " start " << start << " end "
        << end << (redelivered() ? " redelivered" : "") << (call() ? " call" : " cast")
        << " deliveries " << int{deliveries} << "}";
    return out.str();
  }
};

// Failures found while checking the log; the first few are kept for the report.
struct Findings {
  long count = 0;
  std::string first;
  void add(const std::string& what) {
    if (++count <= 10) first += what + "\n";
  }
};

// "done rounds=<r> casts=<c> calls=<q>" of a producer.
struct ProducerDone {
  long rounds = -1;
  long casts = 0;
  long calls = 0;
};
ProducerDone producer_done(Child& child) {
  ProducerDone done;
  const std::string line = test::line_after(child, "done ");
  std::sscanf(line.c_str(), "rounds=%ld casts=%ld calls=%ld", &done.rounds, &done.casts,
              &done.calls);
  return done;
}

Child spawn_server(const std::string& bus, const std::string& log, std::uint16_t id) {
  std::vector<std::string> args{"--bus", bus, "--log", log, "--id", std::to_string(id)};
  if (id == kVictim) args.insert(args.end(), {"--victim", "1"});
  if (id == kLeaver) args.insert(args.end(), {"--stop-in-hand", "1"});
  return Child::spawn("keyed_server", args);
}

// What the pool looks like now, for failure messages.
std::string pool_state(Bus& bus, std::vector<Child>& producers) {
  std::ostringstream out;
  for (const auto& info : bus.services()) {
    if (info.name != test::kKeyedService) continue;
    out << "service depth " << info.depth << ", dead letters " << info.dead_letters << "\n";
    for (const auto& server : info.servers) {
      out << "  server pid " << server.pid << (server.alive ? " alive" : " dead")
          << (server.leaving ? " leaving" : "") << ", casts " << server.counters.casts << ", calls "
          << server.counters.calls << ", redelivered " << server.counters.redelivered << "\n";
    }
  }
  for (auto& producer : producers) {
    out << "producer " << producer.pid() << " printed:\n" << producer.output().substr(0, 1000);
  }
  return out.str();
}

// Waits until the servers together finished `count` runs.
::testing::AssertionResult wait_finished(const KeyedLog& log, std::uint64_t count, Bus& bus,
                                         std::vector<Child>& producers,
                                         std::chrono::milliseconds timeout = 60s) {
  if (test::wait_until(timeout, [&] { return log.header().finished.load() >= count; })) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "the servers finished " << log.header().finished.load() << " runs, not " << count
         << ", within " << timeout.count() << " ms; " << pool_state(bus, producers);
}

// SIGTERM to a keyed_server: it finishes the message in hand, leaves, says
// "done" and exits 0.
::testing::AssertionResult stop_server(Child& server) {
  ::kill(server.pid(), SIGTERM);
  if (auto done = test::wait_printed(server, "done", 30s); !done) return done;
  if (const int status = server.wait(10s); status != 0) {
    return ::testing::AssertionFailure() << "server " << server.pid() << " exited with " << status;
  }
  return ::testing::AssertionSuccess();
}

// How the victim dies: holding a cast it took (so a redelivery is certain),
// holding a call (its caller gets server_crashed, the call never runs again),
// or wherever it happens to be when the test kills it.
enum class Kill { holding_a_cast, holding_a_call, at_a_random_point };

// What the scenario reports for the checks.
struct Outcome {
  std::uint64_t keys = 0;
  std::vector<long> rounds;                                   // per producer
  std::set<std::pair<std::uint64_t, std::uint32_t>> crashed;  // calls that got server_crashed
  std::uint64_t held_key = 0;                                 // what the victim held
  std::uint32_t held_seq = 0;
  std::uint64_t leaving_key = 0;  // what the leaver had in hand when it stopped
  std::uint32_t leaving_seq = 0;
  long casts = 0, calls = 0;
  std::uint64_t total = 0;  // messages sent
};

// What check_log() found.
struct Check {
  Findings findings;
  std::uint64_t runs = 0, redelivered = 0, unfinished = 0, torn = 0, keys_moved = 0;
  std::vector<std::uint64_t> per_server = std::vector<std::uint64_t>(5, 0);
  KeyRun leaver_last;  // the leaver's last run
  std::vector<KeyRun> unfinished_runs;
};

// Checks every run in the log, merged per key in start-ticket order. The
// victim held at most one record when it died: that run may be unfinished, or
// torn (killed while writing its entry), or missing (killed before its
// handler began); a cast it held comes back marked redelivered before any
// later message of its key, a call it held is not run again.
Check check_log(const KeyedLog& log, const Outcome& outcome) {
  Check check;
  Findings& findings = check.findings;
  const std::uint64_t keys = outcome.keys;
  std::vector<std::vector<KeyRun>> by_key(keys);
  const std::uint64_t slots = std::min(log.header().slots.load(), log.header().capacity);
  for (std::uint64_t slot = 0; slot < slots; ++slot) {
    const KeyedLogEntry& entry = log.entry(slot);
    KeyRun run{entry.key,
               entry.seq,
               entry.server,
               entry.flags,
               entry.deliveries,
               test::load_word(entry.start),
               test::load_word(entry.end)};
    if (run.start == 0) {  // the victim died writing it
      ++check.torn;
      continue;
    }
    if (run.key >= keys || run.server >= check.per_server.size()) {
      findings.add("a foreign log entry " + run.text());
      continue;
    }
    ++check.runs;
    ++check.per_server[run.server];
    if (run.server == kLeaver && run.start > check.leaver_last.start) check.leaver_last = run;
    if (run.end == 0) {
      ++check.unfinished;
      check.unfinished_runs.push_back(run);
      if (run.server != kVictim) findings.add("a run that never ended: " + run.text());
    }
    if (run.call() != test::keyed_is_call(run.key, run.seq, kCallEvery)) {
      findings.add("run as the wrong kind: " + run.text());
    }
    if (outcome.crashed.contains({run.key, run.seq}) && run.server != kVictim) {
      findings.add("a call that ended in server_crashed was run by a live server: " + run.text());
    }
    by_key[run.key].push_back(run);
  }
  auto crashed = [&](std::uint64_t key, std::uint32_t seq) {
    return outcome.crashed.contains({key, seq});
  };
  for (std::uint64_t key = 0; key < keys; ++key) {
    auto& runs = by_key[key];
    std::sort(runs.begin(), runs.end(),
              [](const KeyRun& a, const KeyRun& b) { return a.start < b.start; });
    std::uint32_t next = 0;  // the next seq due
    std::set<std::uint16_t> servers_of_key;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const KeyRun& run = runs[i];
      const KeyRun* previous = i == 0 ? nullptr : &runs[i - 1];
      servers_of_key.insert(run.server);
      if (previous != nullptr && previous->end != 0 && previous->end > run.start) {
        findings.add("two runs of one key at once: " + previous->text() + " and " + run.text());
      }
      if (previous != nullptr && previous->end == 0 && !previous->call() &&
          !(run.redelivered() && run.seq == previous->seq)) {
        findings.add("a run before the redelivery of the interrupted " + previous->text() + ": " +
                     run.text());
      }
      while (next < run.seq && crashed(key, next)) ++next;  // a crashed call never ran
      if (run.redelivered()) {
        ++check.redelivered;
        if (run.call() || run.server == kVictim || run.deliveries != 2) {
          findings.add("a wrong redelivery: " + run.text());
        }
        const bool repeats_previous = previous != nullptr && run.seq + 1 == next &&
                                      previous->seq == run.seq && previous->server == kVictim;
        if (run.seq == next) {
          ++next;  // the victim died before its run of this cast was logged
        } else if (!repeats_previous) {
          findings.add("key " + std::to_string(key) + " expected seq " + std::to_string(next) +
                       ", redelivered " + run.text());
        }
        continue;
      }
      if (run.seq != next) {
        findings.add("key " + std::to_string(key) + " expected seq " + std::to_string(next) +
                     ", ran " + run.text());
      }
      if (run.deliveries != 1) findings.add("a first delivery counted twice: " + run.text());
      next = run.seq + 1;
    }
    // Every message of the key ran: its producer sent seqs 0 … rounds × burst - 1.
    const auto sent = static_cast<std::uint32_t>(outcome.rounds[key % kProducers] * kBurst);
    while (next < sent && crashed(key, next)) ++next;
    if (next != sent) {
      findings.add("key " + std::to_string(key) + " ran seqs up to " + std::to_string(next) +
                   " of " + std::to_string(sent));
    }
    if (servers_of_key.size() > 1) ++check.keys_moved;
  }
  return check;
}

// The scenario: 4 servers, 2 producers over `keys` keys; while they send,
// server 4 joins, server 2 leaves, server 3 is killed -9.
void run_scenario(Kill kill, Outcome& outcome, Check& check) {
  const auto started = std::chrono::steady_clock::now();
  const auto keys = static_cast<std::uint64_t>(std::max(1000L, test::scaled(10'000)));
  outcome.keys = keys;
  auto bus = test::ScopedBus::create();
  TempDir dir;
  ASSERT_FALSE(dir.path().empty()) << "mkdtemp failed";
  const std::string log_path = dir.path() + "/runs";
  const std::uint64_t round = keys * kBurst;  // messages per round
  const KeyedLog log = KeyedLog::create(log_path, round * (kMaxRounds + 1));
  ASSERT_TRUE(log.ok()) << "cannot create " << log_path;
  ASSERT_TRUE(bus->register_service(test::kKeyedService, test::keyed_service_options()));
  auto service_result = bus->service(test::kKeyedService);
  ASSERT_TRUE(service_result) << service_result.error().message();

  // servers[i] runs with --id i: 0 and 1 stay, 2 leaves, 3 is killed, 4 joins.
  std::vector<Child> servers;
  servers.reserve(5);
  for (std::uint16_t id = 0; id < 4; ++id) {
    servers.push_back(spawn_server(bus.name(), log_path, id));
  }
  for (auto& server : servers) ASSERT_TRUE(test::wait_printed(server, "ready", 10s));

  std::vector<Child> producers;
  producers.reserve(kProducers);
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(
        Child::spawn("keyed_producer",
                     {"--bus", bus.name(), "--log", log_path, "--producer", std::to_string(p),
                      "--producers", std::to_string(kProducers), "--keys", std::to_string(keys),
                      "--call-every", std::to_string(kCallEvery), "--burst", std::to_string(kBurst),
                      "--max-rounds", std::to_string(kMaxRounds)}));
  }
  auto producers_running = [&] {
    for (auto& producer : producers) {
      if (producer.printed("done") || producer.printed("error:")) return false;
    }
    return true;
  };

  // Join, leave and kill, each while the producers are sending.
  ASSERT_TRUE(wait_finished(log, round / 2, bus.bus(), producers));
  servers.push_back(spawn_server(bus.name(), log_path, kJoiner));
  ASSERT_TRUE(test::wait_printed(servers[kJoiner], "ready", 10s));

  ASSERT_TRUE(wait_finished(log, round, bus.bus(), producers));
  ASSERT_TRUE(stop_server(servers[kLeaver]));
  std::istringstream(test::line_after(servers[kLeaver], "stopping in hand ")) >>
      outcome.leaving_key >> outcome.leaving_seq;

  if (kill != Kill::at_a_random_point) {
    ASSERT_TRUE(wait_finished(log, round * 3 / 2, bus.bus(), producers));
    // Hold the next cast (call) it takes.
    ::kill(servers[kVictim].pid(), kill == Kill::holding_a_cast ? SIGUSR1 : SIGUSR2);
    ASSERT_TRUE(test::wait_printed(servers[kVictim], "holding ", 30s));
    std::istringstream(test::line_after(servers[kVictim], "holding ")) >> outcome.held_key >>
        outcome.held_seq;
  } else {
    std::random_device seed;
    const std::uint64_t at = round * 3 / 2 + seed() % (round / 2);
    std::printf("killing server %u after %llu runs\n", unsigned{kVictim},
                static_cast<unsigned long long>(at));
    ASSERT_TRUE(wait_finished(log, at, bus.bus(), producers));
  }
  const std::uint64_t finished_at_kill = log.header().finished.load();
  servers[kVictim].kill_9();
  EXPECT_EQ(servers[kVictim].wait(10s), 128 + SIGKILL);

  // Half a round's worth of runs after the kill (the victim's partitions
  // taken over), then the producers finish their round and stop.
  ASSERT_TRUE(wait_finished(log, finished_at_kill + round / 2, bus.bus(), producers));
  EXPECT_TRUE(producers_running())
      << "a producer stopped before the join, leave and kill were over";
  log.header().stop_producers.store(1);
  std::uint64_t total = 0;
  for (int p = 0; p < kProducers; ++p) {
    ASSERT_TRUE(test::wait_printed(producers[p], "done", 60s));
    EXPECT_EQ(producers[p].wait(10s), 0);
    const ProducerDone done = producer_done(producers[p]);
    ASSERT_GT(done.rounds, 0) << producers[p].output();
    const std::uint64_t own_keys =
        (keys - static_cast<std::uint64_t>(p) + kProducers - 1) / kProducers;
    const std::uint64_t sent = static_cast<std::uint64_t>(done.rounds * kBurst) * own_keys;
    EXPECT_EQ(static_cast<std::uint64_t>(done.casts + done.calls), sent);
    total += sent;
    outcome.rounds.push_back(done.rounds);
    outcome.casts += done.casts;
    outcome.calls += done.calls;
    for (const auto& line : test::lines_after(producers[p], "crashed ")) {
      std::uint64_t key = 0;
      std::uint32_t seq = 0;
      std::istringstream(line) >> key >> seq;
      outcome.crashed.insert({key, seq});
    }
  }

  // Every message sent ran to its end (a crashed call need not have), and
  // none is left queued; the servers then finish the one in hand and leave.
  const std::uint64_t must_finish = total - outcome.crashed.size();
  ASSERT_TRUE(test::wait_until(
      60s,
      [&] { return log.header().finished.load() >= must_finish && service_result->depth() == 0; }))
      << "finished " << log.header().finished.load() << " of " << must_finish << "; "
      << pool_state(bus.bus(), producers);
  for (const std::uint16_t id : {std::uint16_t{0}, std::uint16_t{1}, kJoiner}) {
    ASSERT_TRUE(stop_server(servers[id])) << "server " << id;
  }

  check = check_log(log, outcome);
  EXPECT_EQ(check.findings.count, 0) << check.findings.first;
  // Every message ran once, but for the one the victim held: a cast's run
  // may be logged twice (the victim's and the redelivery), a crashed call's
  // not at all.
  EXPECT_GE(check.runs + check.torn + outcome.crashed.size(), total);
  EXPECT_LE(check.runs + check.torn, total + check.redelivered);
  outcome.total = total;
  // The leaver took nothing after the message in hand when it was stopped,
  // and finished that one (every run but the victim's ended: checked above).
  EXPECT_EQ(check.leaver_last.key, outcome.leaving_key) << check.leaver_last.text();
  EXPECT_EQ(check.leaver_last.seq, outcome.leaving_seq) << check.leaver_last.text();
  EXPECT_NE(check.leaver_last.end, 0u);
  // The pool really changed under the keys.
  EXPECT_GT(check.per_server[kLeaver], 0u);
  EXPECT_GT(check.per_server[kVictim], 0u);
  EXPECT_GT(check.per_server[kJoiner], 0u);
  EXPECT_GT(check.keys_moved, 0u);
  EXPECT_GT(outcome.calls, 0);
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  std::printf(
      "keys %llu, messages %llu (casts %ld, calls %ld, crashed calls %zu), runs per server "
      "%llu %llu %llu %llu %llu, redelivered %llu, unfinished %llu, torn %llu, keys moved "
      "%llu, %lld ms\n",
      static_cast<unsigned long long>(keys), static_cast<unsigned long long>(total), outcome.casts,
      outcome.calls, outcome.crashed.size(), static_cast<unsigned long long>(check.per_server[0]),
      static_cast<unsigned long long>(check.per_server[1]),
      static_cast<unsigned long long>(check.per_server[2]),
      static_cast<unsigned long long>(check.per_server[3]),
      static_cast<unsigned long long>(check.per_server[4]),
      static_cast<unsigned long long>(check.redelivered),
      static_cast<unsigned long long>(check.unfinished),
      static_cast<unsigned long long>(check.torn),
      static_cast<unsigned long long>(check.keys_moved), static_cast<long long>(elapsed.count()));
}

TEST(KeyedProcess, KeepsPerKeyOrderWhileServersJoinLeaveAndOneIsKilledHoldingACast) {
  Outcome outcome;
  Check check;
  run_scenario(Kill::holding_a_cast, outcome, check);
  if (HasFatalFailure()) return;
  // The held cast never ended on the victim and ran again, once, elsewhere.
  ASSERT_EQ(check.unfinished_runs.size(), 1u);
  const KeyRun& held = check.unfinished_runs.front();
  EXPECT_EQ(held.server, kVictim);
  EXPECT_FALSE(held.call());
  EXPECT_FALSE(held.redelivered());
  EXPECT_EQ(held.key, outcome.held_key);
  EXPECT_EQ(held.seq, outcome.held_seq);
  EXPECT_EQ(check.redelivered, 1u);
  EXPECT_EQ(check.torn, 0u);
  EXPECT_EQ(check.runs, outcome.total + 1);
  EXPECT_TRUE(outcome.crashed.empty());
}

TEST(KeyedProcess, KeepsPerKeyOrderWhileServersJoinLeaveAndOneIsKilledHoldingACall) {
  Outcome outcome;
  Check check;
  run_scenario(Kill::holding_a_call, outcome, check);
  if (HasFatalFailure()) return;
  // The held call never ended, its caller got server_crashed, and the
  // partition's next owner skipped it (no run of it anywhere else).
  ASSERT_EQ(check.unfinished_runs.size(), 1u);
  const KeyRun& held = check.unfinished_runs.front();
  EXPECT_EQ(held.server, kVictim);
  EXPECT_TRUE(held.call());
  EXPECT_EQ(held.key, outcome.held_key);
  EXPECT_EQ(held.seq, outcome.held_seq);
  const std::set<std::pair<std::uint64_t, std::uint32_t>> crashed{{held.key, held.seq}};
  EXPECT_EQ(outcome.crashed, crashed);
  EXPECT_EQ(check.redelivered, 0u);
  EXPECT_EQ(check.torn, 0u);
  EXPECT_EQ(check.runs, outcome.total);
}

TEST(KeyedProcess, KeepsPerKeyOrderWhileServersJoinLeaveAndOneIsKilledAtARandomPoint) {
  Outcome outcome;
  Check check;
  run_scenario(Kill::at_a_random_point, outcome, check);
  if (HasFatalFailure()) return;
  // The victim held at most one record: one cast redelivered or one call
  // crashed, or nothing.
  EXPECT_LE(check.unfinished + check.torn, 1u);
  EXPECT_LE(check.redelivered + outcome.crashed.size(), 1u);
}

}  // namespace
}  // namespace shmbus
