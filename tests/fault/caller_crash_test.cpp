// Callers killed with SIGKILL (DESIGN.md, Promise 4; layout/calls.hpp
// "Crash: caller …"), and the ledger of calls whose caller is gone.
//
// With calls in flight: once its process slot is reclaimed — by
// Bus::reclaim_dead() (or a server's own periodic reclaim), or by the next
// process that joins the slot — its call slots are recycled, the replies
// nobody will read are counted (late_replies and caller_gone), the calls
// nobody started are skipped (caller_gone), and a live caller's calls are
// not disturbed. Deterministic: the dead caller's calls are
//   0 … R-1   replied before it dies, never read     (late_replies, caller_gone: the sweep)
//   R         taken, the server waits at a gate       (late_replies, caller_gone: the server)
//   R+1 … N-1 queued behind R                         (caller_gone: skipped by the server)
// and the gate opens only after the slot was reclaimed.
//
// Also: a caller killed between PENDING and its request's commit leaves no
// call behind; a reclaim racing servers that reply to the dead caller counts
// each call once; a caller that reads its reply and exits is a reply.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fault/crash_support.hpp"
#include "fault/fault_support.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/layout/control.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using layout::CallState;
using test::CallBatch;
using test::Child;
using test::CrashAction;
using test::kCrashService;

constexpr long kDoomedCalls = 32;  // N
constexpr long kRepliedFirst = 8;  // R

// The call words of a bus made with crash_bus_options(), mapped read-only
// from its control segment: a look at the words layout/calls.hpp describes,
// as other processes write them.
class CallWords {
 public:
  explicit CallWords(const std::string& bus)
      : options_(test::crash_bus_options()),
        layout_(layout::control_layout(options_.max_processes, options_.max_in_flight, options_.max_reply)) {
    const int fd = ::open(("/dev/shm/shmbus." + bus).c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << "cannot open the control segment of " << bus;
    void* at = ::mmap(nullptr, layout_.total_size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    EXPECT_NE(at, MAP_FAILED);
    base_ = at == MAP_FAILED ? nullptr : static_cast<const std::byte*>(at);
  }
  CallWords(const CallWords&) = delete;
  CallWords& operator=(const CallWords&) = delete;
  ~CallWords() {
    if (base_ != nullptr) ::munmap(const_cast<std::byte*>(base_), layout_.total_size);
  }

  [[nodiscard]] CallState state(std::uint32_t process, std::uint32_t index) const {
    const std::uint64_t at =
        layout_.calls_offset + (std::uint64_t{process} * options_.max_in_flight + index) * layout_.call_stride;
    const auto& slot = *reinterpret_cast<const layout::CallSlotHeader*>(base_ + at);
    return layout::call_state(detail::load_acquire(slot.control));
  }
  // How many of process slot `process`'s call slots are in each state.
  [[nodiscard]] std::map<CallState, int> states(std::uint32_t process) const {
    std::map<CallState, int> count;
    for (std::uint32_t i = 0; i < options_.max_in_flight; ++i) ++count[state(process, i)];
    return count;
  }
  [[nodiscard]] int all() const { return static_cast<int>(options_.max_in_flight); }

 private:
  CreateOptions options_;
  layout::ControlLayout layout_;
  const std::byte* base_ = nullptr;
};

std::optional<std::uint32_t> process_slot_of(const Bus& bus, pid_t pid) {
  for (const auto& row : bus.processes()) {
    if (row.pid == pid) return row.slot;
  }
  return std::nullopt;
}

// Reclaims the dead process `pid`. A server may have done it already (servers
// reclaim dead processes now and then): true once its slot is free, by
// whoever freed it.
bool reclaim(Bus& bus, pid_t pid) {
  (void)bus.reclaim_dead();
  return !process_slot_of(bus, pid);
}

// Who recycles the dead caller's process slot.
enum class Reclaimer { reclaim_dead, next_joiner };

class CallerKilledWithCallsInFlight : public ::testing::TestWithParam<Reclaimer> {};

TEST_P(CallerKilledWithCallsInFlight, ItsSlotsAreReclaimedLateRepliesCountedAndOtherCallsReplied) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options()));
  auto service = bus->service(kCrashService).value();
  auto gate = bus.mailbox("gate", {.kind = layout::RingKind::mpsc, .capacity = 2, .max_record = 8});

  // The live caller (this process) sends half its calls before the doomed
  // caller and half after, so the server serves them on both sides of it.
  const long live = std::clamp(test::scaled(200), 2L, 900L);
  const Deadline deadline = deadline_in(20s);
  CallBatch calls;
  for (long i = 0; i < live / 2; ++i) calls.send(service, static_cast<std::uint64_t>(i), CrashAction::reply, deadline);
  Child doomed = Child::spawn("crash_caller", {"--bus", bus.name(), "--service", kCrashService, "--count",
                                               std::to_string(kDoomedCalls), "--gate-at",
                                               std::to_string(kRepliedFirst)});
  ASSERT_TRUE(test::wait_until(10s, [&] { return doomed.printed("sent ") || doomed.printed("error"); }) &&
              doomed.printed("sent " + std::to_string(kDoomedCalls)))
      << doomed.output();
  for (long i = live / 2; i < live; ++i) calls.send(service, static_cast<std::uint64_t>(i), CrashAction::reply, deadline);
  ASSERT_FALSE(HasFailure());
  Child server = test::spawn_crash_server(bus, {"--gate", "gate"});
  ASSERT_TRUE(test::wait_until(10s, [&] { return server.printed("gated "); })) << server.output();
  ASSERT_TRUE(server.printed("gated " + std::to_string(kRepliedFirst))) << server.output();

  const std::uint32_t process = process_slot_of(bus.bus(), doomed.pid()).value();
  const CallWords words(bus.name());
  auto states = words.states(process);
  EXPECT_EQ(states[CallState::replied], kRepliedFirst);
  EXPECT_EQ(states[CallState::taken], 1);
  EXPECT_EQ(states[CallState::pending], kDoomedCalls - kRepliedFirst - 1);

  doomed.kill_9();
  ASSERT_EQ(doomed.wait(), 128 + SIGKILL);
  std::optional<Child> joiner;
  if (GetParam() == Reclaimer::reclaim_dead) {
    EXPECT_TRUE(reclaim(bus.bus(), doomed.pid()));
  } else {
    joiner.emplace(Child::spawn("crash_caller", {"--bus", bus.name(), "--service", kCrashService,
                                                 "--count", "8", "--wait", "1", "--hold", "1"}));
    ASSERT_TRUE(test::wait_until(10s, [&] { return joiner->printed("sent 8") || joiner->printed("error"); }))
        << joiner->output();
    ASSERT_EQ(process_slot_of(bus.bus(), joiner->pid()), std::optional<std::uint32_t>(process))
        << "the joiner did not take the dead caller's process slot";
  }
  // Recycled at once, except the call its (live) server still runs.
  states = words.states(process);
  EXPECT_EQ(states[CallState::taken], 1);
  EXPECT_EQ(states[CallState::replied], 0);
  EXPECT_EQ(states[CallState::pending], GetParam() == Reclaimer::reclaim_dead ? 0 : 8)
      << "the joiner's own calls are its only pending ones";

  ASSERT_TRUE(gate.try_send(test::wire_bytes(std::uint64_t{1})));
  ASSERT_TRUE(calls.wait_all()) << "unfinished: " << calls.failures();
  EXPECT_EQ(calls.failures(), "") << "the live caller's calls were disturbed";
  const long joined_calls = joiner ? 8 : 0;
  if (joiner) {
    EXPECT_TRUE(test::wait_until(10s, [&] { return joiner->printed("done "); })) << joiner->output();
    EXPECT_TRUE(joiner->printed("done replied=8 failed=0")) << joiner->output();
  }

  // The ledger of the dead caller's N calls: each is caller_gone exactly once;
  // the R + 1 that ran were replied to nobody (late_replies).
  const auto u = [](long v) { return static_cast<std::uint64_t>(v); };
  ServiceInfo info;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.caller_gone >= u(kDoomedCalls) && info.depth == 0 &&
           info.totals.replies >= u(live + kRepliedFirst + 1 + joined_calls);
  })) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.caller_gone, u(kDoomedCalls)) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.late_replies, u(kRepliedFirst + 1)) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.calls, u(live + kRepliedFirst + 1 + joined_calls)) << test::totals_text(info.totals);
  // `replies` counts every reply written into its caller's slot; the R + 1
  // that nobody read are also late_replies (and caller_gone) above.
  EXPECT_EQ(info.totals.replies, u(live + kRepliedFirst + 1 + joined_calls))
      << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.expired_skipped, 0u);
  EXPECT_EQ(test::outcomes_text(info), "none") << "no caller saw anything but replies";

  // Every call slot of the dead caller's process slot is free again (the
  // gated one freed by its server after its late reply).
  EXPECT_TRUE(test::wait_until(5s, [&] {
    states = words.states(process);
    return states[CallState::free] == words.all();
  })) << "taken=" << states[CallState::taken] << " replied=" << states[CallState::replied]
      << " pending=" << states[CallState::pending] << " abandoned=" << states[CallState::abandoned];
}

INSTANTIATE_TEST_SUITE_P(CallerCrash, CallerKilledWithCallsInFlight,
                         ::testing::Values(Reclaimer::reclaim_dead, Reclaimer::next_joiner),
                         [](const auto& param) {
                           return param.param == Reclaimer::reclaim_dead ? "reclaim_dead" : "next_joiner";
                         });

// layout/calls.hpp "Crash: caller, after PENDING, before the record is
// committed": no record names the call slot; the next owner of the process
// slot recycles it, and the pool skips the dead claim and serves on.
TEST(CallerCrash, CallerKilledBeforeCommittingItsRequestLeavesNoCallBehind) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options()));
  auto service = bus->service(kCrashService).value();
  test::RunLog log(bus);
  Child server = test::spawn_crash_server(bus, {"--log", test::kRunLog});
  Child doomed = Child::spawn("crash_caller", {"--bus", bus.name(), "--service", kCrashService, "--count",
                                               "1", "--stop-at", "ring_before_commit"});
  ASSERT_TRUE(test::wait_until(10s, [&] { return doomed.reached("ring_before_commit"); })) << doomed.output();
  const std::uint32_t process = process_slot_of(bus.bus(), doomed.pid()).value();
  const CallWords words(bus.name());
  EXPECT_EQ(words.states(process)[CallState::pending], 1);
  doomed.kill_9();
  ASSERT_EQ(doomed.wait(), 128 + SIGKILL);

  // Calls sent behind the dead claim are served.
  CallBatch calls;
  for (std::uint64_t i = 0; i < 10; ++i) calls.send(service, i, CrashAction::reply, deadline_in(20s));
  ASSERT_TRUE(calls.wait_all()) << calls.failures();
  EXPECT_EQ(calls.failures(), "");

  EXPECT_TRUE(reclaim(bus.bus(), doomed.pid()));
  EXPECT_EQ(words.states(process)[CallState::free], words.all());
  ServiceInfo info;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.replies == 10;
  })) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.calls, 10u) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.caller_gone, 0u) << "a call that was never sent was counted";
  EXPECT_EQ(info.totals.late_replies, 0u);
  EXPECT_EQ(info.totals.expired_skipped, 0u);
  EXPECT_EQ(info.totals.bad_messages, 0u);
  EXPECT_EQ(log.drain(), 10u);
}

// Races the sweep of Bus::reclaim_dead() with servers that are replying to
// the dead caller's calls (a dead caller's calls run until its slot is
// reclaimed). Both servers wait at a gate in its first two calls until it is
// dead; the gates open, and once its call #4 is decided the slot is
// reclaimed, while the servers still reply to the rest. Whichever of a
// server and the sweep frees a replied slot counts it, and only one: every
// call is caller_gone exactly once, every call run is a late reply.
TEST(CallerCrash, ReclaimingACallerWhileServersReplyToItCountsEachOfItsCallsOnce) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options()));
  auto gate = bus.mailbox("gate", {.kind = layout::RingKind::mpmc, .capacity = 4, .max_record = 8});
  std::vector<Child> servers;
  for (int i = 0; i < 2; ++i) servers.push_back(test::spawn_crash_server(bus, {"--gate", "gate"}));
  ASSERT_FALSE(HasFailure());
  const CallWords words(bus.name());
  auto gated = [&] {
    std::size_t n = 0;
    for (auto& server : servers) n += test::lines_after(server.output(), "gated ").size();
    return n;
  };
  constexpr std::uint64_t kCalls = 1000;
  const long rounds = test::scaled(20);
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const ServerCounters before = test::crash_service_info(bus.bus()).totals;
    Child doomed = Child::spawn("crash_caller", {"--bus", bus.name(), "--service", kCrashService, "--count",
                                                 std::to_string(kCalls), "--gate-at", "0", "--gate-count", "2",
                                                 "--work", "1"});
    ASSERT_TRUE(test::wait_until(10s, [&] {
      return doomed.printed("sent ") && gated() == 2 * static_cast<std::size_t>(round + 1);
    })) << doomed.output();
    const std::uint32_t process = process_slot_of(bus.bus(), doomed.pid()).value();
    doomed.kill_9();
    ASSERT_EQ(doomed.wait(), 128 + SIGKILL);
    for (int i = 0; i < 2; ++i) ASSERT_TRUE(gate.try_send(test::wire_bytes(std::uint64_t{1})));
    // Spin, not yield: with both cores busy serving, a yielding test would
    // come back after the servers are done. Bounded like any wait.
    const Deadline give_up = deadline_in(5s);
    while (words.state(process, 4) == CallState::pending && Clock::now() < give_up) {
    }
    EXPECT_TRUE(reclaim(bus.bus(), doomed.pid()));

    ServerCounters after;
    EXPECT_TRUE(test::wait_until(10s, [&] {
      const ServiceInfo info = test::crash_service_info(bus.bus());
      after = info.totals;
      return info.depth == 0 && after.caller_gone - before.caller_gone >= kCalls;
    })) << test::totals_text(after);
    const std::uint64_t ran = after.calls - before.calls;
    EXPECT_EQ(after.caller_gone - before.caller_gone, kCalls) << "ran " << ran << ": " << test::totals_text(after);
    EXPECT_EQ(after.late_replies - before.late_replies, ran) << test::totals_text(after);
    EXPECT_EQ(after.expired_skipped - before.expired_skipped, 0u) << test::totals_text(after);
    EXPECT_EQ(words.states(process)[CallState::free], words.all());
    if (HasFailure()) return;
  }
}

// A caller that reads its reply and leaves the bus at once (a CLI call, a
// short-lived worker) got its reply: the server must count it in `replies`,
// whenever the caller detaches, or the ledger misses a call.
//
// (Server::finish_call counts `replies` at its REPLIED CAS; only the party
// that discards an unread reply adds late_replies and caller_gone.)
TEST(CallerCrash, ACallerThatReadsItsReplyAndExitsAtOnceIsCountedAsReplied) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options()));
  Child server = test::spawn_crash_server(bus);
  ASSERT_FALSE(HasFailure());
  const long callers = test::scaled(100);
  for (long i = 0; i < callers; ++i) {
    Child caller = Child::spawn("crash_caller", {"--bus", bus.name(), "--service", kCrashService, "--count",
                                                 "1", "--slow", "1", "--wait", "1"});
    ASSERT_EQ(caller.wait(10s), 0) << caller.output();
    ASSERT_TRUE(caller.printed("done replied=1 failed=0")) << caller.output();
  }
  ServiceInfo info;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.calls == static_cast<std::uint64_t>(callers) && info.depth == 0;
  })) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.replies, static_cast<std::uint64_t>(callers))
      << "replies read by their callers, not counted: " << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.late_replies, 0u) << test::totals_text(info.totals);
}

}  // namespace
}  // namespace shmbus
