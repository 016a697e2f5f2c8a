// crash_support.hpp — helpers of the crash tests: server children, the run
// log, a batch of calls in flight, the service's ledger.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fault/crash_wire.hpp"
#include "support/service_row.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus::test {

using namespace std::chrono_literals;

inline constexpr const char* kCrashService = "work";
inline constexpr const char* kRunLog = "runs";

// A bus big enough for ~1,000 calls in flight from one process, with small
// replies (so its control segment stays a few MiB).
[[nodiscard]] inline CreateOptions crash_bus_options() {
  CreateOptions options;
  options.max_processes = 16;
  options.max_in_flight = 1024;
  options.max_reply = 64;
  return options;
}

// Spawns a crash_server of kCrashService and waits until it serves.
// `extra`: more flags (--log, --gate, --stop-at, --capacity, …).
[[nodiscard]] inline Child spawn_crash_server(ScopedBus& bus, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--bus", bus.name(), "--service", kCrashService};
  args.insert(args.end(), extra.begin(), extra.end());
  Child server = Child::spawn("crash_server", args);
  EXPECT_TRUE(wait_until(10s, [&] { return server.printed("ready") || server.printed("error"); }) &&
              server.printed("ready"))
      << "the server never started: " << server.output();
  return server;
}

// The crash service's row of Bus::services() (an empty row if it is not listed).
[[nodiscard]] inline ServiceInfo crash_service_info(const Bus& bus, const char* name = kCrashService) {
  return service_row(bus, name);
}

[[nodiscard]] inline std::string totals_text(const ServerCounters& c) {
  return "calls=" + std::to_string(c.calls) + " casts=" + std::to_string(c.casts) +
         " replies=" + std::to_string(c.replies) + " expired_skipped=" + std::to_string(c.expired_skipped) +
         " late_replies=" + std::to_string(c.late_replies) + " caller_gone=" + std::to_string(c.caller_gone) +
         " redelivered=" + std::to_string(c.redelivered) + " dead_lettered=" + std::to_string(c.dead_lettered) +
         " dead_letters_dropped=" + std::to_string(c.dead_letters_dropped) +
         " bad_messages=" + std::to_string(c.bad_messages);
}

// The log of runs that crash_server --log kRunLog writes: one CrashLog per
// handler run that ended. The test is its only reader.
class RunLog {
 public:
  explicit RunLog(ScopedBus& bus)
      : mailbox_(bus.mailbox(kRunLog, {.kind = layout::RingKind::mpsc, .capacity = 4096, .max_record = 64})),
        receiver_(mailbox_.receiver().value()) {}

  // Takes what has arrived; returns how many runs are logged in all.
  std::size_t drain() {
    while (auto got = receiver_.try_receive()) {
      const auto entry = read_wire<CrashLog>(got->payload());
      got->done();
      if (!entry) {
        ADD_FAILURE() << "a torn run log record";
        continue;
      }
      runs_.push_back(*entry);
    }
    return runs_.size();
  }
  // Waits (bounded) until `count` runs are logged.
  [[nodiscard]] bool wait_for(std::size_t count, std::chrono::milliseconds timeout = 10s) {
    return wait_until(timeout, [&] { return drain() >= count; });
  }
  [[nodiscard]] const std::vector<CrashLog>& runs() const { return runs_; }
  // Runs of message `index` of `kind`.
  [[nodiscard]] std::vector<CrashLog> runs_of(std::uint64_t index, CrashKind kind) const {
    std::vector<CrashLog> out;
    for (const auto& r : runs_) {
      if (r.index == index && r.kind == kind) out.push_back(r);
    }
    return out;
  }
  // How often each index of `kind` ran.
  [[nodiscard]] std::map<std::uint64_t, int> run_counts(CrashKind kind) const {
    std::map<std::uint64_t, int> counts;
    for (const auto& r : runs_) {
      if (r.kind == kind) ++counts[r.index];
    }
    return counts;
  }

 private:
  Mailbox mailbox_;
  Receiver receiver_;
  std::vector<CrashLog> runs_;
};

// Calls in flight from the test process, polled to their outcomes.
class CallBatch {
 public:
  // Sends call `index` with `action`; fails the test if it was refused.
  void send(Service& service, std::uint64_t index, CrashAction action, Deadline deadline) {
    auto sent = service.send_request(wire_bytes(CrashRequest{index, action}), call_until(deadline));
    ASSERT_TRUE(sent) << "send_request " << index << ": " << to_string(sent.error());
    calls_.push_back({index, std::move(*sent), std::nullopt, false});
  }
  // Moves call number `i` (in sending order) out, for a thread to wait on.
  [[nodiscard]] PendingCall take(std::size_t i) {
    calls_[i].finished = true;
    calls_[i].outcome = Errc::empty;  // not ours to judge any more
    return std::move(*calls_[i].pending);
  }
  // Polls every unfinished call once; true when all have an outcome.
  bool poll_all() {
    bool all = true;
    for (auto& c : calls_) {
      if (c.finished) continue;
      auto got = c.pending->poll();
      if (!got && got.error() == Errc::empty) {
        all = false;
        continue;
      }
      c.finished = true;
      if (!got) {
        c.outcome = got.error();
        continue;
      }
      const auto reply = read_wire<CrashReply>(got->payload());
      if (!reply || reply->index != c.index + 1) c.outcome = Errc::bad_message;  // not its reply
    }
    return all;
  }
  [[nodiscard]] bool wait_all(std::chrono::milliseconds timeout = 15s) {
    return wait_until(timeout, [&] { return poll_all(); });
  }
  // The calls whose outcome was not their own reply, as "index:outcome …".
  [[nodiscard]] std::string failures() const {
    std::string text;
    for (const auto& c : calls_) {
      if (!c.finished) text += std::to_string(c.index) + ":unfinished ";
      else if (c.outcome && *c.outcome != Errc::empty) text += std::to_string(c.index) + ":" + to_string(*c.outcome) + " ";
    }
    return text;
  }
  [[nodiscard]] std::size_t size() const { return calls_.size(); }

 private:
  struct Call {
    std::uint64_t index;
    std::optional<PendingCall> pending;
    std::optional<Errc> outcome;  // nullopt: replied with its own reply
    bool finished;
  };
  std::vector<Call> calls_;
};

}  // namespace shmbus::test
