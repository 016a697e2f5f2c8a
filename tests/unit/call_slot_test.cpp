// Planted call-slot states (Aeron style): a bus, a Server and a Service in one
// process; the test steps both sides itself (send_request, serve_one, poll)
// and writes raw control words into the call slots between the steps, through
// a BusProbe (tests/support/bus_probe.hpp). Each test names the state it
// plants and asserts what the caller and the server make of it, against the
// state machine of layout/calls.hpp.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "ring/ring.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/layout/calls.hpp"
#include "shmbus/server.hpp"
#include "support/bus_probe.hpp"
#include "support/ring_access.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using layout::call_control;
using layout::CallState;

constexpr std::size_t kEcho = std::numeric_limits<std::size_t>::max();

// Echoes the request, or commits `reply_length` bytes of 0x5a.
struct Echo : Handler {
  int calls = 0;
  int casts = 0;
  std::size_t reply_length = kEcho;
  std::span<std::byte> last_buffer;
  void handle_call(const Request& request, ReplyWriter& reply) override {
    ++calls;
    last_buffer = reply.buffer();
    if (reply_length == kEcho) {
      auto assigned = reply.assign(request.payload());
      EXPECT_EQ(assigned.has_value(), request.payload().size() <= reply.buffer().size());
      return;
    }
    std::memset(reply.buffer().data(), 0x5a, std::min(reply.buffer().size(), reply_length));
    reply.commit(reply_length);
  }
  void handle_cast(const Request&) override { ++casts; }
};

std::vector<std::byte> message(std::string_view text) {
  std::vector<std::byte> out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

// A request carrying FlatBuffers file identifier `id` at bytes 4..7.
std::vector<std::byte> with_identifier(const char* id) {
  auto out = message("root????payload!");
  std::memcpy(out.data() + 4, id, 4);
  return out;
}

// The reference of a process that was attached to `bus` and is gone.
ProcessRef gone_process(const std::string& bus) {
  auto other = Bus::attach(bus, {.label = "gone"});
  EXPECT_TRUE(other) << other.error().message();
  return other ? other->self() : ProcessRef{};
}

class CallSlotTest : public ::testing::Test {
 protected:
  // A bus (max_in_flight call slots per process, so the slot of a single
  // call is known: index 0 with max_in_flight 1), a server of "echo" and a
  // client handle of it, and a probe that reaches the call slots.
  void start(std::uint32_t max_in_flight = 1, std::uint32_t max_reply = 64,
             ServiceOptions options = {}) {
    CreateOptions bus_options;
    bus_options.max_in_flight = max_in_flight;
    bus_options.max_reply = max_reply;
    bus_.emplace(test::ScopedBus::create(bus_options));
    auto server = Server::start(bus(), "echo", options);
    ASSERT_TRUE(server) << server.error().message();
    server_.emplace(std::move(*server));
    auto service = bus().service("echo");
    ASSERT_TRUE(service) << service.error().message();
    service_.emplace(*service);
    probe_.emplace(bus_->name());
    ASSERT_TRUE(probe_->ok());
    auto pool = probe_->pool("echo");
    ASSERT_TRUE(pool) << pool.error().message();
    pool_.emplace(std::move(*pool));
  }

  Bus& bus() { return bus_->bus(); }
  const std::string& bus_name() const { return bus_->name(); }
  Service& service() { return *service_; }
  Server& server() { return *server_; }
  test::BusProbe& probe() { return *probe_; }
  Mailbox& pool() { return *pool_; }

  // Call slot `index` of the test's own process (the caller).
  layout::CallSlotHeader& slot(std::uint32_t index = 0) {
    return probe_->call_slot(bus().self(), index);
  }
  std::uint64_t word(std::uint32_t index = 0) { return detail::load_acquire(slot(index).control); }
  void plant(std::uint64_t control, std::uint32_t index = 0) {
    detail::store_release(slot(index).control, control);
  }
  std::uint64_t generation(std::uint32_t index = 0) { return layout::call_generation(word(index)); }

  // Sends `request` and checks that it left its slot PENDING; returns the call.
  PendingCall send(std::span<const std::byte> request, Deadline deadline = deadline_in(10s)) {
    auto pending = service().send_request(request, {.deadline = deadline});
    EXPECT_TRUE(pending) << to_string(pending.error());
    return std::move(*pending);
  }

  // Serves one record; false when none came within a second.
  bool serve() { return server().serve_one(handler_, deadline_in(1s)); }

  ServiceInfo info() {
    for (auto& s : bus().services()) {
      if (s.name == "echo") return s;
    }
    ADD_FAILURE() << "service echo is not listed";
    return {};
  }
  std::uint64_t outcomes(Errc e) { return info().outcomes[static_cast<std::size_t>(e)]; }

  // The pool's cell of the most recently sent record.
  struct Record {
    layout::CellHeader& header;
    std::byte* payload;
  };
  Record last_record() {
    auto& ring = test::ring_of(*pool_);
    const std::uint64_t position = ring.claimed() - 1;
    return {ring.cell(position), ring.payload(position)};
  }
  // The call slot the most recently sent request names.
  std::uint32_t sent_index() { return layout::correlation_index(last_record().header.correlation); }

  Echo handler_;

 private:
  std::optional<test::ScopedBus> bus_;
  std::optional<Server> server_;
  std::optional<Service> service_;
  std::optional<test::BusProbe> probe_;
  std::optional<Mailbox> pool_;

 protected:
  void TearDown() override {
    pool_.reset();
    probe_.reset();
    service_.reset();
    server_.reset();
    bus_.reset();
  }
};

TEST_F(CallSlotTest, ServedCallRepliesInPlaceAndFreesItsSlotOnceRead) {
  ASSERT_NO_FATAL_FAILURE(start());
  const auto request = message("hello, slot");
  auto pending = send(request);
  const std::uint64_t g = generation();
  EXPECT_EQ(word(), call_control(CallState::pending, 0, g));
  ASSERT_TRUE(serve());
  EXPECT_EQ(word(), call_control(CallState::replied, 0, g));
  {
    auto reply = pending.poll();
    ASSERT_TRUE(reply) << to_string(reply.error());
    ASSERT_EQ(reply->payload().size(), request.size());
    EXPECT_EQ(std::memcmp(reply->payload().data(), request.data(), request.size()), 0);
    // Read in place: the reply area right after the slot's header (the
    // probe maps it elsewhere, so compare through a byte written there).
    auto* area = reinterpret_cast<std::byte*>(&slot()) + sizeof(layout::CallSlotHeader);
    area[0] = std::byte{'H'};
    EXPECT_EQ(reply->payload()[0], std::byte{'H'});
    EXPECT_EQ(word(), call_control(CallState::replied, 0, g));  // held while the Reply lives
  }
  EXPECT_EQ(word(), call_control(CallState::free, 0, g + 1));
  EXPECT_EQ(server().counters().calls, 1u);
  EXPECT_EQ(server().counters().replies, 1u);
}

// The server takes a call only by its CAS PENDING(g) -> TAKEN(g, S): a record
// whose slot reads anything else was decided without it and is skipped. It
// counts the skip by what the word says (calls.hpp, kFreed*): a FREE(g + 1)
// word names why the slot was freed; any other word, with its caller still
// attached, means the call was given up (expired_skipped).
TEST_F(CallSlotTest, RequestWhoseSlotNoLongerReadsPendingIsSkippedAndCounted) {
  ASSERT_NO_FATAL_FAILURE(start(/*max_in_flight=*/2));
  enum class Counted { expired_skipped, caller_gone, nothing };
  struct Case {
    const char* planted;
    std::uint64_t (*word)(std::uint64_t g);
    Errc caller;
    Counted counted;
  };
  const Case cases[] = {
      {"EXPIRED(g)", [](std::uint64_t g) { return call_control(CallState::expired, 0, g); },
       Errc::timeout_not_started, Counted::expired_skipped},
      {"FREE(g)", [](std::uint64_t g) { return call_control(CallState::free, 0, g); },
       Errc::server_crashed, Counted::expired_skipped},
      {"FAILED(g, bad_message)",
       [](std::uint64_t g) {
         return call_control(CallState::failed, static_cast<std::uint32_t>(Errc::bad_message), g);
       },
       Errc::bad_message, Counted::expired_skipped},
      {"FAILED(g, server_crashed)",
       [](std::uint64_t g) {
         return call_control(CallState::failed, static_cast<std::uint32_t>(Errc::server_crashed),
                             g);
       },
       Errc::server_crashed, Counted::expired_skipped},
      {"FREE(g+1, freed normally)",
       [](std::uint64_t g) { return call_control(CallState::free, layout::kFreedNormally, g + 1); },
       Errc::server_crashed, Counted::expired_skipped},
      {"FREE(g+1, cancelled)",
       [](std::uint64_t g) { return call_control(CallState::free, layout::kFreedCancelled, g + 1); },
       Errc::server_crashed, Counted::expired_skipped},
      {"FREE(g+1, its caller gone)",
       [](std::uint64_t g) { return call_control(CallState::free, layout::kFreedCallerGone, g + 1); },
       Errc::server_crashed, Counted::caller_gone},
      {"FREE(g+1, its taker died)",  // the record was redelivered: counted there
       [](std::uint64_t g) { return call_control(CallState::free, layout::kFreedTakerDied, g + 1); },
       Errc::server_crashed, Counted::nothing},
      {"PENDING(g+1)", [](std::uint64_t g) { return call_control(CallState::pending, 0, g + 1); },
       Errc::server_crashed, Counted::expired_skipped},
      {"PENDING(g-1)", [](std::uint64_t g) { return call_control(CallState::pending, 0, g - 1); },
       Errc::server_crashed, Counted::expired_skipped},
  };
  std::uint64_t expired = 0, gone = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.planted);
    auto pending = send(message("skip me"));
    const std::uint32_t i = sent_index();
    const std::uint64_t g = generation(i);
    ASSERT_EQ(word(i), call_control(CallState::pending, 0, g));
    const std::uint64_t planted = c.word(g);
    plant(planted, i);
    const int calls_before = handler_.calls;
    ASSERT_TRUE(serve());
    EXPECT_EQ(handler_.calls, calls_before) << "the handler ran a call it never took";
    if (c.counted == Counted::expired_skipped) ++expired;
    if (c.counted == Counted::caller_gone) ++gone;
    EXPECT_EQ(server().counters().expired_skipped, expired);
    EXPECT_EQ(server().counters().caller_gone, gone);
    EXPECT_EQ(word(i), planted) << "the server wrote a slot it did not take";
    EXPECT_EQ(service().depth(), 0u);
    auto outcome = pending.poll();
    ASSERT_FALSE(outcome);
    EXPECT_EQ(outcome.error(), c.caller);
  }
  // Whatever those calls left behind, the slots are recycled for the next ones.
  for (int n = 0; n < 2; ++n) {
    auto pending = send(message("and now a real one"));
    ASSERT_TRUE(serve());
    auto reply = pending.poll();
    ASSERT_TRUE(reply) << to_string(reply.error());
  }
  EXPECT_EQ(handler_.calls, 2);
}

// Only the caller frees its slot: a word showing another generation was
// written by a process that must not, and the caller gives the slot back
// to its allocator, which recycles it from its word.
TEST_F(CallSlotTest, CallerWhoseSlotShowsAnotherGenerationGetsTheSlotBack) {
  ASSERT_NO_FATAL_FAILURE(start(/*max_in_flight=*/1));
  auto pending = send(message("generation moves"));
  const std::uint64_t g = generation();
  plant(call_control(CallState::pending, 0, g + 1));
  auto outcome = pending.poll();
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error(), Errc::server_crashed);
  ASSERT_TRUE(serve());  // its record: skipped
  // The only slot reads PENDING(g + 1), named by no record: recyclable.
  auto next = service().send_request(message("my slot back"));
  ASSERT_TRUE(next) << to_string(next.error()) << ": the slot was never given back";
  EXPECT_EQ(word(), call_control(CallState::pending, 0, g + 2));
}

TEST_F(CallSlotTest, RequestWhoseDeadlinePassedIsExpiredAndTheCallerTimesOutNotStarted) {
  ASSERT_NO_FATAL_FAILURE(start());
  {
    SCOPED_TRACE("planted: deadline_ns in the past, caller's own deadline far");
    auto pending = send(message("too late"));
    const std::uint64_t g = generation();
    detail::store_relaxed(slot().deadline_ns, std::uint64_t{1});
    ASSERT_TRUE(serve());
    EXPECT_EQ(handler_.calls, 0);
    EXPECT_EQ(word(), call_control(CallState::expired, 0, g));
    EXPECT_EQ(server().counters().expired_skipped, 1u);
    auto outcome = pending.poll();
    ASSERT_FALSE(outcome);
    EXPECT_EQ(outcome.error(), Errc::timeout_not_started);
    EXPECT_EQ(word(), call_control(CallState::free, 0, g + 1));
  }
  {
    SCOPED_TRACE("real: the deadline passes, then the server looks first");
    auto pending = send(message("too late again"), deadline_in(1ms));
    const std::uint64_t g = generation();
    ASSERT_TRUE(test::wait_until(1s, [&] { return Clock::now() > pending.deadline() + 1ms; }));
    ASSERT_TRUE(serve());
    EXPECT_EQ(handler_.calls, 0);
    EXPECT_EQ(word(), call_control(CallState::expired, 0, g));
    EXPECT_EQ(server().counters().expired_skipped, 2u);
    auto outcome = pending.poll();
    ASSERT_FALSE(outcome);
    EXPECT_EQ(outcome.error(), Errc::timeout_not_started);
  }
  {
    SCOPED_TRACE("real: the deadline passes, then the caller looks first");
    auto pending = send(message("given up"), deadline_in(1ms));
    const std::uint64_t g = generation();
    ASSERT_TRUE(test::wait_until(1s, [&] { return Clock::now() > pending.deadline() + 1ms; }));
    auto outcome = pending.poll();  // at its deadline poll gives the call up
    ASSERT_FALSE(outcome);
    EXPECT_EQ(outcome.error(), Errc::timeout_not_started);
    EXPECT_EQ(word(), call_control(CallState::free, layout::kFreedCancelled, g + 1));
    ASSERT_TRUE(serve());  // its record finds the slot freed: skipped
    EXPECT_EQ(handler_.calls, 0);
    EXPECT_EQ(server().counters().expired_skipped, 3u);
  }
  EXPECT_EQ(outcomes(Errc::timeout_not_started), 3u);
}

TEST_F(CallSlotTest, SlotLeftTakenByADeadServerIsServerCrashedForTheCallerAndNotRunAgain) {
  ASSERT_NO_FATAL_FAILURE(start());
  const ProcessRef dead = gone_process(bus_name());
  ASSERT_NE(dead.value, 0u);
  ASSERT_FALSE(bus().is_alive(dead));
  auto pending = send(message("crash on me"));
  const std::uint64_t g = generation();
  plant(call_control(CallState::taken, dead.value, g));
  auto outcome = pending.poll();
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error(), Errc::server_crashed);
  EXPECT_EQ(word(), call_control(CallState::free, layout::kFreedTakerDied, g + 1));
  EXPECT_EQ(outcomes(Errc::server_crashed), 1u);
  // The record, delivered again to a live server, finds the slot decided: at
  // most once. (A real taker's death redelivers the record and counts it in
  // `redelivered`; the skip itself is not counted again.)
  ASSERT_TRUE(serve());
  EXPECT_EQ(handler_.calls, 0);
  EXPECT_EQ(server().counters().expired_skipped, 0u);
  EXPECT_EQ(server().counters().caller_gone, 0u);
  EXPECT_EQ(service().depth(), 0u);
  EXPECT_EQ(word(), call_control(CallState::free, layout::kFreedTakerDied, g + 1));
}

TEST_F(CallSlotTest, SlotTakenByALiveServerIsAbandonedAtCancelAndKeptUntilThatServerIsGone) {
  ASSERT_NO_FATAL_FAILURE(start());
  std::optional<test::BusProbe> taker(std::in_place, bus_name(), "taker");
  ASSERT_TRUE(taker->ok());
  const ProcessRef live = taker->self();
  auto pending = send(message("slow"));
  const std::uint64_t g = generation();
  plant(call_control(CallState::taken, live.value, g));
  auto early = pending.poll();
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error(), Errc::empty);
  auto outcome = pending.cancel();
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error(), Errc::timeout_in_progress);
  EXPECT_EQ(word(), call_control(CallState::abandoned, live.value, g));
  // Its server may still write the slot: the only slot is not handed out.
  auto refused = service().send_request(message("no room"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), Errc::too_many_in_flight);
  EXPECT_EQ(word(), call_control(CallState::abandoned, live.value, g));
  taker.reset();  // that server is gone: nobody can write the slot any more
  auto next = send(message("recycled"));
  EXPECT_EQ(word(), call_control(CallState::pending, 0, g + 1));
  ASSERT_TRUE(serve());  // the abandoned call's record: skipped
  EXPECT_EQ(server().counters().expired_skipped, 1u);
  ASSERT_TRUE(serve());
  auto reply = next.poll();
  ASSERT_TRUE(reply) << to_string(reply.error());
  EXPECT_EQ(handler_.calls, 1);
}

// CallSlots::acquire (bus/src/calls/call_slots.cpp) hands out a slot only
// when no live server can still write it; every other state is recycled to
// FREE(g + 1) by CAS. The probe's own (single) slot takes each planted word.
TEST_F(CallSlotTest, AcquireRecyclesSlotsLeftInEachState) {
  ASSERT_NO_FATAL_FAILURE(start());
  const std::uint32_t alive = bus().self().value;
  const std::uint32_t dead = gone_process(bus_name()).value;
  ASSERT_FALSE(bus().is_alive(ProcessRef{dead}));
  constexpr std::uint64_t g = 7;
  constexpr std::uint64_t kBusy = ~std::uint64_t{0};
  const auto bad = static_cast<std::uint32_t>(Errc::bad_message);
  struct Case {
    const char* planted;
    std::uint64_t word;
    std::uint64_t handed_out;  // the generation acquire returns, or kBusy
    std::uint32_t why;         // kFreed* of the FREE word it recycles to
  };
  constexpr std::uint32_t kGone = layout::kFreedCallerGone;
  const Case cases[] = {
      {"FREE(g)", call_control(CallState::free, 0, g), g, 0},
      {"FREE(g, cancelled)", call_control(CallState::free, layout::kFreedCancelled, g), g,
       layout::kFreedCancelled},
      {"PENDING(g), its caller dead", call_control(CallState::pending, 0, g), g + 1, kGone},
      {"REPLIED(g), unread", call_control(CallState::replied, 0, g), g + 1, kGone},
      {"EXPIRED(g)", call_control(CallState::expired, 0, g), g + 1, kGone},
      {"FAILED(g, bad_message)", call_control(CallState::failed, bad, g), g + 1, kGone},
      {"TAKEN(g, dead server)", call_control(CallState::taken, dead, g), g + 1, kGone},
      {"TAKEN(g, nobody)", call_control(CallState::taken, 0, g), g + 1, kGone},
      {"TAKEN(g, live server)", call_control(CallState::taken, alive, g), kBusy, 0},
      // Our own abandoned call whose server has died since.
      {"ABANDONED(g, dead server)", call_control(CallState::abandoned, dead, g), g + 1,
       layout::kFreedTakerDied},
      {"ABANDONED(g, live server)", call_control(CallState::abandoned, alive, g), kBusy, 0},
      {"state 9, never written", call_control(static_cast<CallState>(9), alive, g), g + 1, kGone},
      {"state 15, never written", call_control(static_cast<CallState>(15), alive, g), g + 1, kGone},
      {"PENDING(last generation)", call_control(CallState::pending, 0, layout::kCallGenerationMask),
       0, kGone},
  };
  auto& slots = probe().call_slots();
  auto& own = slots.slot(0);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.planted);
    detail::store_release(own.control, c.word);
    auto ticket = slots.acquire();
    if (c.handed_out == kBusy) {
      ASSERT_FALSE(ticket);
      EXPECT_EQ(ticket.error(), Errc::too_many_in_flight);
      EXPECT_EQ(detail::load_acquire(own.control), c.word) << "a live server's slot was touched";
      continue;
    }
    ASSERT_TRUE(ticket) << to_string(ticket.error());
    EXPECT_EQ(ticket->index, 0u);
    EXPECT_EQ(ticket->generation, c.handed_out);
    EXPECT_EQ(detail::load_acquire(own.control), call_control(CallState::free, c.why, c.handed_out));
    // Held: a second acquire finds no slot.
    auto second = slots.acquire();
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error(), Errc::too_many_in_flight);
    slots.free(*ticket);
    EXPECT_EQ(detail::load_acquire(own.control),
              call_control(CallState::free, 0, (c.handed_out + 1) & layout::kCallGenerationMask));
  }
}

// A process slot's next owner sweeps the call slots its dead predecessor
// left: pending requests withdrawn, unread replies dropped and counted,
// slots a live server may still write left to it.
TEST_F(CallSlotTest, NextOwnerOfAProcessSlotSweepsTheCallSlotsLeftInIt) {
  ASSERT_NO_FATAL_FAILURE(start(/*max_in_flight=*/4));
  const std::uint32_t live_server = bus().self().value;
  const ProcessRef gone = gone_process(bus_name());
  const std::uint32_t process = layout::ref_slot(gone.value);
  auto left = [&](std::uint32_t i) -> layout::CallSlotHeader& {
    return probe().control().call_slot(process, i);
  };
  const std::uint32_t echo = 1;  // registry index + 1 of the only service
  const std::uint64_t words[] = {
      call_control(CallState::replied, 0, 3),              // unread reply
      call_control(CallState::pending, 0, 11),             // request withdrawn
      call_control(CallState::taken, live_server, 20),     // still running somewhere
      call_control(CallState::expired, 0, 30),             // outcome never collected
  };
  for (std::uint32_t i = 0; i < 4; ++i) {
    detail::store_release(left(i).control, words[i]);
    detail::store_relaxed(left(i).service, echo);
  }
  auto again = Bus::attach(bus_name(), {.label = "next owner"});
  ASSERT_TRUE(again) << again.error().message();
  ASSERT_EQ(layout::ref_slot(again->self().value), process) << "the test needs the same slot";
  constexpr std::uint32_t kGone = layout::kFreedCallerGone;
  EXPECT_EQ(detail::load_acquire(left(0).control), call_control(CallState::free, kGone, 4));
  EXPECT_EQ(detail::load_acquire(left(1).control), call_control(CallState::free, kGone, 12));
  EXPECT_EQ(detail::load_acquire(left(2).control), words[2]);
  EXPECT_EQ(detail::load_acquire(left(3).control), call_control(CallState::free, kGone, 31));
  const ServiceInfo s = info();
  EXPECT_EQ(s.totals.late_replies, 1u);
  EXPECT_EQ(s.totals.caller_gone, 1u);
}

TEST_F(CallSlotTest, TooManyInFlightWhenAllSlotsAreBusy) {
  ASSERT_NO_FATAL_FAILURE(start(/*max_in_flight=*/2));
  auto first = send(message("one"));
  auto second = send(message("two"));
  auto third = service().send_request(message("three"));
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error(), Errc::too_many_in_flight);
  EXPECT_EQ(service().depth(), 2u) << "refused before sending";
  EXPECT_EQ(outcomes(Errc::too_many_in_flight), 1u);
  ASSERT_TRUE(serve());
  ASSERT_TRUE(serve());
  {
    auto a = first.poll();
    auto b = second.poll();
    ASSERT_TRUE(a) << to_string(a.error());
    ASSERT_TRUE(b) << to_string(b.error());
    // Both slots are held while their replies are.
    auto refused = service().send_request(message("three"));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), Errc::too_many_in_flight);
  }
  auto retry = service().send_request(message("three"));
  ASSERT_TRUE(retry) << to_string(retry.error());
}

TEST_F(CallSlotTest, ReplyLargerThanMaxReplyIsRecordTooLarge) {
  ASSERT_NO_FATAL_FAILURE(start(/*max_in_flight=*/1, /*max_reply=*/64));
  {
    SCOPED_TRACE("exactly max_reply: a reply");
    handler_.reply_length = 64;
    auto pending = send(message("fill it"));
    ASSERT_TRUE(serve());
    EXPECT_EQ(handler_.last_buffer.size(), 64u);
    auto reply = pending.poll();
    ASSERT_TRUE(reply) << to_string(reply.error());
    EXPECT_EQ(reply->payload().size(), 64u);
  }
  {
    SCOPED_TRACE("one byte more: record_too_large");
    handler_.reply_length = 65;
    auto pending = send(message("overflow it"));
    const std::uint64_t g = generation();
    ASSERT_TRUE(serve());
    EXPECT_EQ(word(), call_control(CallState::failed,
                                   static_cast<std::uint32_t>(Errc::record_too_large), g));
    auto outcome = pending.poll();
    ASSERT_FALSE(outcome);
    EXPECT_EQ(outcome.error(), Errc::record_too_large);
    EXPECT_EQ(word(), call_control(CallState::free, 0, g + 1));
  }
  {
    SCOPED_TRACE("assign() of a larger reply");
    handler_.reply_length = kEcho;
    auto pending = send(std::vector<std::byte>(100, std::byte{1}));
    ASSERT_TRUE(serve());
    auto outcome = pending.poll();
    ASSERT_FALSE(outcome);
    EXPECT_EQ(outcome.error(), Errc::record_too_large);
  }
  EXPECT_EQ(server().counters().calls, 3u);
  EXPECT_EQ(server().counters().replies, 1u);
  EXPECT_EQ(server().counters().replies_too_large, 2u);
  {
    SCOPED_TRACE("planted REPLIED with a length above max_reply: never read past the area");
    auto pending = send(message("torn"));
    const std::uint64_t g = generation();
    detail::store_relaxed(slot().length, std::uint32_t{65});
    plant(call_control(CallState::replied, 0, g));
    auto outcome = pending.poll();
    ASSERT_FALSE(outcome);
    EXPECT_EQ(outcome.error(), Errc::bad_message);
    EXPECT_EQ(word(), call_control(CallState::free, 0, g + 1));
    ASSERT_TRUE(serve());  // its record: the slot was decided, skipped
    EXPECT_EQ(server().counters().expired_skipped, 1u);
  }
}

TEST_F(CallSlotTest, RequestOfAnotherIdentifierIsBadMessage) {
  ServiceOptions options;
  options.schema.request_identifier = {'E', 'C', 'H', 'O'};
  ASSERT_NO_FATAL_FAILURE(start(1, 64, options));
  {
    SCOPED_TRACE("the client refuses it before sending");
    auto refused = service().send_request(with_identifier("NOPE"));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), Errc::bad_message);
    EXPECT_EQ(service().depth(), 0u);
    EXPECT_EQ(word(), call_control(CallState::free, 0, 0)) << "no slot was taken";
    EXPECT_EQ(outcomes(Errc::bad_message), 1u);
  }
  {
    SCOPED_TRACE("the server refuses a record whose bytes say another type");
    auto pending = send(with_identifier("ECHO"));
    const std::uint64_t g = generation();
    std::memcpy(last_record().payload + 4, "ECHX", 4);
    ASSERT_TRUE(serve());
    EXPECT_EQ(handler_.calls, 0);
    EXPECT_EQ(server().counters().bad_messages, 1u);
    EXPECT_EQ(pool().counters().bad_messages, 1u);
    EXPECT_EQ(word(), call_control(CallState::failed,
                                   static_cast<std::uint32_t>(Errc::bad_message), g));
    auto outcome = pending.poll();
    ASSERT_FALSE(outcome);
    EXPECT_EQ(outcome.error(), Errc::bad_message);
    EXPECT_EQ(word(), call_control(CallState::free, 0, g + 1));
  }
  {
    SCOPED_TRACE("a record of no known type: refused, the slot untouched");
    auto pending = send(with_identifier("ECHO"));
    const std::uint64_t g = generation();
    last_record().header.type = 77;
    ASSERT_TRUE(serve());
    EXPECT_EQ(handler_.calls, 0);
    EXPECT_EQ(server().counters().bad_messages, 2u);
    EXPECT_EQ(word(), call_control(CallState::pending, 0, g));
    auto outcome = pending.cancel();  // nobody will take it: given up, not started
    ASSERT_FALSE(outcome);
    EXPECT_EQ(outcome.error(), Errc::timeout_not_started);
    EXPECT_EQ(word(), call_control(CallState::free, layout::kFreedCancelled, g + 1));
  }
  {
    SCOPED_TRACE("a record naming no call slot of the bus");
    auto pending = send(with_identifier("ECHO"));
    const std::uint64_t g = generation();
    last_record().header.correlation = layout::call_correlation(1, g);  // max_in_flight 1
    ASSERT_TRUE(serve());
    EXPECT_EQ(server().counters().bad_messages, 3u);
    EXPECT_EQ(word(), call_control(CallState::pending, 0, g));
    (void)pending.cancel();
  }
  {
    SCOPED_TRACE("FAILED with a code no server writes: bad_message");
    auto pending = send(with_identifier("ECHO"));
    const std::uint64_t g = generation();
    plant(call_control(CallState::failed, 0xABCDE, g));
    auto outcome = pending.poll();
    ASSERT_FALSE(outcome);
    EXPECT_EQ(outcome.error(), Errc::bad_message);
    ASSERT_TRUE(serve());
  }
  auto pending = send(with_identifier("ECHO"));
  ASSERT_TRUE(serve());
  auto reply = pending.poll();
  ASSERT_TRUE(reply) << to_string(reply.error());
  EXPECT_EQ(handler_.calls, 1);
}

}  // namespace
}  // namespace shmbus
