// Forged requests, random call-slot words and random registry bytes under the
// server, the caller and the service lookup.
//
// What another process writes is data, never trusted (DESIGN "Shared-memory
// rules"): a request record names its call slot by {sender, correlation}, and
// a call slot's control word decides the call; both are bytes any process of
// the bus can write. Whatever they hold, the server never crashes, never
// touches memory outside the call slot the record names, counts every record
// it does not run (bad_messages, expired_skipped, caller_gone) and keeps
// serving; the caller gets a reply or one of the typed outcomes of
// client.hpp; a lookup gets a service or a typed error.
//
// Records are forged through a BusProbe (tests/support/bus_probe.hpp): a
// second attachment that claims and commits cells of the service's pool
// mailbox like any producer, then overwrites the header words a producer
// writes. Seeded: SHMBUS_FUZZ_SEED=<n> replays a run.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fuzz/fuzz_support.hpp"
#include "ring/ring.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/layout/calls.hpp"
#include "shmbus/layout/control.hpp"
#include "shmbus/layout/registry.hpp"
#include "shmbus/server.hpp"
#include "support/bus_probe.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using layout::call_control;
using layout::CallState;
using test::Fuzz;

constexpr std::uint32_t kMaxProcesses = 8;
constexpr std::uint32_t kInFlight = 4;
constexpr std::uint32_t kMaxReply = 64;
constexpr std::uint32_t kMaxRecord = 128;
constexpr char kIdentifier[] = "FUZZ";

std::string trace(const Fuzz& fuzz, long round) {
  return "round " + std::to_string(round) + " (SHMBUS_FUZZ_SEED=" + std::to_string(fuzz.seed()) +
         ")";
}

CreateOptions bus_options() {
  CreateOptions options;
  options.max_processes = kMaxProcesses;
  options.max_in_flight = kInFlight;
  options.max_reply = kMaxReply;
  return options;
}

ServiceOptions service_options() {
  ServiceOptions options;
  options.mailbox_capacity = 16;
  options.max_record = kMaxRecord;
  std::memcpy(options.schema.request_identifier.data(), kIdentifier, 4);
  return options;
}

// A request the service accepts: its identifier at bytes 4..7.
std::vector<std::byte> good_request(std::uint64_t n) {
  std::vector<std::byte> out(16);
  std::memcpy(out.data() + 4, kIdentifier, 4);
  std::memcpy(out.data() + 8, &n, sizeof n);
  return out;
}

// The reference of a process that was attached to `bus` and is gone.
ProcessRef gone_process(const std::string& bus) {
  auto other = Bus::attach(bus, {.label = "gone"});
  EXPECT_TRUE(other) << other.error().message();
  return other ? other->self() : ProcessRef{};
}

// Process references a forged word or record may name.
struct Refs {
  std::vector<std::uint32_t> alive;
  std::uint32_t dead = 0;

  std::uint32_t any(Fuzz& fuzz) const {
    switch (fuzz.in(0, 5)) {
      case 0:
        return alive[fuzz.in(0, alive.size() - 1)];
      case 1:
        return dead;
      case 2:
        return 0;
      case 3:
        return layout::kOrphanRef;
      case 4:  // a slot of this bus, any generation
        return layout::process_ref(static_cast<std::uint32_t>(fuzz.in(0, kMaxProcesses - 1)),
                                   static_cast<std::uint32_t>(fuzz.next()));
      default:  // any 24 bits: mostly slots the bus does not have
        return static_cast<std::uint32_t>(fuzz.next() & layout::kCallWhoMask);
    }
  }
};

// A control word: mostly the states a slot goes through, with small
// generations so that forged records name them; sometimes anything.
std::uint64_t random_call_word(Fuzz& fuzz, const Refs& refs, std::uint64_t generation) {
  if (fuzz.chance(10)) return fuzz.next();
  const auto state = static_cast<CallState>(fuzz.chance(8) ? fuzz.in(7, 15) : fuzz.in(0, 6));
  std::uint32_t who = refs.any(fuzz);
  if (state == CallState::failed && fuzz.chance(2)) {
    who = static_cast<std::uint32_t>(
        fuzz.pick<Errc>({Errc::bad_message, Errc::record_too_large, Errc::server_crashed,
                         Errc::mailbox_full}));
  }
  if (state == CallState::free && fuzz.chance(2)) {
    who = static_cast<std::uint32_t>(fuzz.in(layout::kFreedNormally, layout::kFreedCallerGone));
  }
  if (fuzz.chance(4)) generation = fuzz.chance(2) ? fuzz.next() : generation + fuzz.in(1, 2);
  return call_control(state, who, generation);
}

void plant_slot(Fuzz& fuzz, layout::CallSlotHeader& slot, const Refs& refs) {
  detail::store_release(slot.control, random_call_word(fuzz, refs, fuzz.in(0, 3)));
  detail::store_relaxed(slot.deadline_ns,
                        fuzz.pick<std::uint64_t>({0, 1, ~std::uint64_t{0}, fuzz.next()}));
  detail::store_relaxed(slot.length,
                        fuzz.pick<std::uint32_t>({0, kMaxReply, kMaxReply + 1, fuzz.u32_edge()}));
  detail::store_relaxed(slot.service, fuzz.pick<std::uint32_t>({0, 1, 64, 65, fuzz.u32_edge()}));
}

// One forged record in `ring` (the probe's view of the pool): claimed and
// committed like any record, then its header words overwritten. In a third
// of them the record names a call slot planted PENDING(g) just before, as a
// real caller leaves it, so that the server runs the call. Returns the
// header as forged and whether its length is one a receiver hands out
// (false: torn, skipped by the ring), or nullopt when the pool is full.
struct ForgeResult {
  bool delivered;
  layout::CellHeader header;  // as forged
};
std::optional<ForgeResult> forge(Fuzz& fuzz, detail::Ring& ring, const test::BusProbe& probe,
                                 const Refs& refs, std::uint32_t sender_slots_of_interest) {
  const auto length = static_cast<std::uint32_t>(fuzz.in(0, kMaxRecord));
  auto position = ring.try_claim(length);
  if (!position) {
    EXPECT_EQ(position.error(), Errc::mailbox_full);
    return std::nullopt;
  }
  std::byte* payload = ring.payload(*position);
  fuzz.fill({payload, length});
  const bool targeted = fuzz.chance(3);
  if (length >= 8 && (targeted || fuzz.chance(2))) std::memcpy(payload + 4, kIdentifier, 4);
  ring.commit(*position, length);
  layout::CellHeader& cell = ring.cell(*position);
  if (targeted) {
    std::uint32_t sender = refs.any(fuzz);
    if (layout::ref_slot(sender) >= kMaxProcesses) sender = refs.dead;
    const auto index = static_cast<std::uint32_t>(fuzz.in(0, kInFlight - 1));
    const std::uint64_t generation = fuzz.in(0, 4);
    auto& slot = probe.control().call_slot(layout::ref_slot(sender), index);
    detail::store_relaxed(slot.deadline_ns, fuzz.chance(8) ? std::uint64_t{1} : ~std::uint64_t{0});
    detail::store_release(slot.control, call_control(CallState::pending, 0, generation));
    cell.type = static_cast<std::uint16_t>(layout::MessageKind::call);
    cell.correlation = layout::call_correlation(index, generation);
    cell.sender = sender;
    cell.flags = 0;
    return ForgeResult{true, cell};
  }
  cell.type = fuzz.chance(4) ? static_cast<std::uint16_t>(fuzz.pick<std::uint64_t>({0, 3, fuzz.next()}))
                             : fuzz.pick<std::uint16_t>({1, 1, 1, 2});
  const std::uint32_t index = fuzz.chance(6)
                                  ? fuzz.pick<std::uint32_t>({kInFlight, (1u << 28) - 1,
                                                              static_cast<std::uint32_t>(fuzz.next())})
                                  : static_cast<std::uint32_t>(fuzz.in(0, kInFlight - 1));
  cell.correlation = fuzz.chance(8) ? fuzz.next() : layout::call_correlation(index, fuzz.in(0, 4));
  cell.sender = fuzz.chance(4) ? layout::process_ref(static_cast<std::uint32_t>(fuzz.in(
                                                         0, sender_slots_of_interest - 1)),
                                                     static_cast<std::uint32_t>(fuzz.next()))
                               : refs.any(fuzz);
  cell.flags = fuzz.chance(12) ? static_cast<std::uint8_t>(fuzz.next()) : 0;
  cell.sequence = static_cast<std::uint32_t>(fuzz.next());
  bool delivered = true;
  if (fuzz.chance(10)) {  // a torn length: the ring never hands it out
    cell.length = fuzz.pick<std::uint32_t>({kMaxRecord + 1, 0xffffffffu, fuzz.u32_edge() | 0x1000});
    delivered = cell.length <= kMaxRecord;
  }
  return ForgeResult{delivered, cell};
}

// Runs calls and casts on whatever the server hands it, and checks that the
// request and the reply area are where the record says they are.
struct CheckingHandler : Handler {
  CheckingHandler(Fuzz& fuzz_in, test::BusProbe& probe_in) : fuzz(fuzz_in), probe(probe_in) {}

  Fuzz& fuzz;
  test::BusProbe& probe;
  // The server's view of call slot (0, 0)'s reply area, learnt from the first call.
  const std::byte* reply_base = nullptr;
  std::uint32_t stride = 0;
  bool tamper = false;       // sometimes play the caller giving up mid-call
  bool echo = false;         // reply with the request (the good calls)
  std::uint64_t calls = 0, casts = 0, tampered = 0;

  void handle_call(const Request& request, ReplyWriter& reply) override {
    ++calls;
    const RecordInfo& info = request.info();
    EXPECT_LE(request.payload().size(), kMaxRecord);
    const std::uint32_t process = layout::ref_slot(info.sender.value);
    const std::uint32_t index = layout::correlation_index(info.correlation);
    EXPECT_LT(process, kMaxProcesses);
    EXPECT_LT(index, kInFlight);
    EXPECT_EQ(reply.buffer().size(), kMaxReply);
    const std::uint64_t at = (std::uint64_t{process} * kInFlight + index) * stride;
    if (reply_base == nullptr) reply_base = reply.buffer().data() - at;
    EXPECT_EQ(reply.buffer().data(), reply_base + at)
        << "the reply area is not that of the slot the record names";
    if (echo) {
      const auto assigned = reply.assign(request.payload());
      EXPECT_EQ(assigned.has_value(), request.payload().size() <= kMaxReply);
      return;
    }
    std::memset(reply.buffer().data(), 0xa5, reply.buffer().size());  // all of it is ours
    reply.commit(fuzz.in(0, kMaxReply + 8));
    if (tamper && fuzz.chance(8)) {
      // The caller's deadline passes while we run: TAKEN(g, S) -> ABANDONED(g, S).
      auto& slot = probe.control().call_slot(process, index);
      std::uint64_t word = detail::load_acquire(slot.control);
      if (layout::call_state(word) == CallState::taken &&
          detail::compare_exchange(
              slot.control, word,
              call_control(CallState::abandoned, layout::call_who(word),
                           layout::call_generation(word)))) {
        ++tampered;
      }
    }
  }
  void handle_cast(const Request& request) override {
    ++casts;
    EXPECT_LE(request.payload().size(), kMaxRecord);
  }
};

// Whether a process's call slot may be handed out by its acquire(): no live
// server can still write it (call_slots.cpp).
bool recyclable(const test::BusProbe& probe, std::uint64_t word) {
  const CallState state = layout::call_state(word);
  const bool server_may_write = state == CallState::taken || state == CallState::abandoned;
  return !server_may_write || !probe.table().is_alive(layout::call_who(word));
}

TEST(CallFuzz, ForgedRequestsAndSlotWordsNeverCrashTheServerWhichCountsThemAndKeepsServing) {
  Fuzz fuzz;
  auto bus = test::ScopedBus::create(bus_options());
  auto server = Server::start(bus.bus(), "fz", service_options());
  ASSERT_TRUE(server) << server.error().message();
  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  auto client = Bus::attach(bus.name(), {.label = "client"});
  ASSERT_TRUE(client) << client.error().message();
  auto service = client->service("fz");
  ASSERT_TRUE(service) << service.error().message();
  auto pool = probe.pool("fz");
  ASSERT_TRUE(pool) << pool.error().message();
  detail::Ring& ring = test::ring_of(*pool);
  const Refs refs{{bus->self().value, probe.self().value, client->self().value},
                  gone_process(bus.name()).value};
  const std::uint32_t live_slots = 4;  // bus, probe, client, gone: slots 0..3

  CheckingHandler handler(fuzz, probe);
  handler.stride = layout::control_layout(kMaxProcesses, kInFlight, kMaxReply).call_stride;
  std::uint64_t good_calls = 0;
  auto good_call = [&] {
    // The client's slots hold whatever was planted: it must find one its
    // acquire may recycle, else too_many_in_flight is the right answer.
    bool any = false;
    for (std::uint32_t i = 0; i < kInFlight; ++i) {
      any = any || recyclable(probe, detail::load_acquire(probe.call_slot(client->self(), i).control));
    }
    const auto request = good_request(++good_calls);
    auto pending = service->send_request(request, {.deadline = deadline_in(10s)});
    if (!any) {
      ASSERT_FALSE(pending) << "handed out a slot a live server may write";
      EXPECT_EQ(pending.error(), Errc::too_many_in_flight);
      for (std::uint32_t i = 0; i < kInFlight; ++i) {  // the servers let go
        detail::store_release(probe.call_slot(client->self(), i).control, std::uint64_t{0});
      }
      pending = service->send_request(request, {.deadline = deadline_in(10s)});
    }
    ASSERT_TRUE(pending) << to_string(pending.error());
    handler.echo = true;
    const bool served = server->serve_one(handler, deadline_in(2s));
    handler.echo = false;
    ASSERT_TRUE(served);
    auto reply = pending->poll();
    ASSERT_TRUE(reply) << to_string(reply.error());
    ASSERT_EQ(reply->payload().size(), request.size());
    EXPECT_EQ(std::memcmp(reply->payload().data(), request.data(), request.size()), 0);
  };
  ASSERT_NO_FATAL_FAILURE(good_call());  // also teaches the handler where reply areas are

  const long rounds = test::scaled(2000);
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    for (std::uint32_t p = 0; p < kMaxProcesses; ++p) {
      for (std::uint32_t i = 0; i < kInFlight; ++i) {
        if (fuzz.chance(3)) plant_slot(fuzz, probe.control().call_slot(p, i), refs);
      }
    }
    const ServerCounters before = server->counters();
    const MailboxCounters pool_before = pool->counters();
    const std::uint64_t calls_before = handler.calls, casts_before = handler.casts,
                        tampered_before = handler.tampered;
    handler.tamper = fuzz.chance(2);
    std::vector<ForgeResult> forged;
    long delivered = 0, torn = 0;
    const long records = static_cast<long>(fuzz.in(0, 6));
    for (long r = 0; r < records; ++r) {
      auto one = forge(fuzz, ring, probe, refs, live_slots);
      ASSERT_TRUE(one) << "the pool is drained every round";
      (one->delivered ? delivered : torn) += 1;
      if (one->delivered) forged.push_back(*one);
    }
    // Served in order, one at a time. A record the server skips is counted by
    // what its slot's word says; two skips are counted nowhere (each already
    // is elsewhere): a record marked redelivered, and a slot freed because its
    // taker died (both: `redelivered`, calls.hpp kFreedTakerDied).
    long uncountable = 0;
    for (const ForgeResult& record : forged) {
      const std::uint32_t process = layout::ref_slot(record.header.sender);
      const std::uint32_t index = layout::correlation_index(record.header.correlation);
      const std::uint64_t g = layout::correlation_generation(record.header.correlation);
      bool maybe_uncounted = (record.header.flags & layout::kRecordRedelivered) != 0;
      if (record.header.type == static_cast<std::uint16_t>(layout::MessageKind::call) &&
          process < kMaxProcesses && index < kInFlight) {
        const std::uint64_t now =
            detail::load_acquire(probe.control().call_slot(process, index).control);
        maybe_uncounted =
            maybe_uncounted ||
            now == call_control(CallState::free, layout::kFreedTakerDied,
                                (g + 1) & layout::kCallGenerationMask);
      }
      uncountable += maybe_uncounted ? 1 : 0;
      ASSERT_TRUE(server->serve_one(handler, Clock::now(), WaitMode::busy_poll))
          << "a record with a sane length was not handed to the server";
    }
    ASSERT_FALSE(server->serve_one(handler, Clock::now(), WaitMode::busy_poll))
        << "more records were served than forged";
    EXPECT_EQ(service->depth(), 0u);

    // Every record the server got ends in exactly one count: run (calls,
    // casts), refused (bad_messages), not run (expired_skipped, caller_gone,
    // dead letters). A run call whose caller is gone adds caller_gone and
    // late_replies; one whose caller gave up adds late_replies alone.
    const ServerCounters after = server->counters();
    const MailboxCounters pool_after = pool->counters();
    const std::uint64_t tampered = handler.tampered - tampered_before;
    EXPECT_EQ(after.calls - before.calls, handler.calls - calls_before);
    EXPECT_EQ(after.casts - before.casts, handler.casts - casts_before);
    const std::uint64_t late = after.late_replies - before.late_replies;
    ASSERT_GE(late, tampered);
    const std::uint64_t gone_after_run = late - tampered;
    const std::uint64_t gone = after.caller_gone - before.caller_gone;
    ASSERT_GE(gone, gone_after_run);
    const std::uint64_t counted =
        (after.calls - before.calls) + (after.casts - before.casts) +
        (after.bad_messages - before.bad_messages) +
        (after.expired_skipped - before.expired_skipped) + (gone - gone_after_run) +
        (after.dead_lettered - before.dead_lettered) +
        (after.dead_letters_dropped - before.dead_letters_dropped);
    EXPECT_LE(counted, static_cast<std::uint64_t>(delivered));
    EXPECT_GE(counted, static_cast<std::uint64_t>(delivered - uncountable));
    EXPECT_EQ(pool_after.bad_messages - pool_before.bad_messages,
              static_cast<std::uint64_t>(torn) + (after.bad_messages - before.bad_messages));
    EXPECT_LE(after.replies - before.replies, after.calls - before.calls);

    if (fuzz.chance(4) || round + 1 == rounds) {
      ASSERT_NO_FATAL_FAILURE(good_call());
    }
  }
  const ServerCounters totals = server->counters();
  std::printf("[   INFO   ] calls %llu, casts %llu, bad_messages %llu, expired_skipped %llu, "
              "caller_gone %llu, late_replies %llu, replies_too_large %llu\n",
              static_cast<unsigned long long>(totals.calls),
              static_cast<unsigned long long>(totals.casts),
              static_cast<unsigned long long>(totals.bad_messages),
              static_cast<unsigned long long>(totals.expired_skipped),
              static_cast<unsigned long long>(totals.caller_gone),
              static_cast<unsigned long long>(totals.late_replies),
              static_cast<unsigned long long>(totals.replies_too_large));
  // The planting reaches every kind of outcome (each in several percent of the records).
  if (rounds < 200) return;
  EXPECT_GT(totals.calls, good_calls);
  EXPECT_GT(totals.bad_messages, 0u);
  EXPECT_GT(totals.expired_skipped, 0u);
  EXPECT_GT(totals.caller_gone, 0u);
  EXPECT_GT(totals.replies_too_large, 0u);
  EXPECT_GT(totals.late_replies, 0u);
}

// What PendingCall::poll concludes from a slot word alone (layout/calls.hpp,
// client.hpp): the outcome, or `empty` while undecided. nullopt: a Reply.
std::optional<Errc> poll_outcome(std::uint64_t word, std::uint64_t generation,
                                 std::uint32_t length, bool taker_alive) {
  if (layout::call_generation(word) != generation) return Errc::server_crashed;
  switch (layout::call_state(word)) {
    case CallState::replied:
      return length <= kMaxReply ? std::nullopt : std::optional<Errc>(Errc::bad_message);
    case CallState::expired:
      return Errc::timeout_not_started;
    case CallState::failed: {
      const auto code = static_cast<Errc>(layout::call_who(word));
      return code == Errc::bad_message || code == Errc::record_too_large ||
                     code == Errc::server_crashed
                 ? code
                 : Errc::bad_message;
    }
    case CallState::pending:
      return Errc::empty;
    case CallState::taken:
      return taker_alive ? Errc::empty : Errc::server_crashed;
    default:  // free or abandoned under a live call, states nobody writes
      return Errc::server_crashed;
  }
}

bool typed_call_outcome(Errc e) {
  return e == Errc::timeout_not_started || e == Errc::timeout_in_progress ||
         e == Errc::server_crashed || e == Errc::bad_message || e == Errc::record_too_large;
}

TEST(CallFuzz, RandomSlotWordsUnderAPendingCallGiveTheCallerATypedOutcome) {
  Fuzz fuzz;
  auto bus = test::ScopedBus::create(bus_options());
  auto server = Server::start(bus.bus(), "fz", service_options());
  ASSERT_TRUE(server) << server.error().message();
  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  auto pool = probe.pool("fz");
  ASSERT_TRUE(pool) << pool.error().message();
  detail::Ring& ring = test::ring_of(*pool);
  const Refs refs{{probe.self().value}, gone_process(bus.name()).value};
  CheckingHandler handler(fuzz, probe);
  handler.stride = layout::control_layout(kMaxProcesses, kInFlight, kMaxReply).call_stride;

  const long rounds = test::scaled(1000);
  long replies = 0, exact = 0;
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    // A caller per round: what one call leaves in its slot is the next
    // owner's to sweep, not a leak of this one's.
    auto client = Bus::attach(bus.name(), {.label = "caller"});
    ASSERT_TRUE(client) << client.error().message();
    auto service = client->service("fz");
    ASSERT_TRUE(service) << service.error().message();
    auto pending = service->send_request(good_request(static_cast<std::uint64_t>(round)),
                                         {.deadline = deadline_in(10s)});
    if (!pending) {
      // Its process slot's call slots may all be held by live takers (the
      // probe), left so by earlier rounds: then there is no slot to give.
      ASSERT_EQ(pending.error(), Errc::too_many_in_flight);
      for (std::uint32_t i = 0; i < kInFlight; ++i) {
        EXPECT_FALSE(recyclable(probe, detail::load_acquire(probe.call_slot(client->self(), i).control)));
      }
      for (std::uint32_t i = 0; i < kInFlight; ++i) {  // the probe, as their server, lets go
        auto& slot = probe.call_slot(client->self(), i);
        detail::store_release(slot.control, std::uint64_t{0});
      }
      continue;
    }
    const std::uint32_t index =
        layout::correlation_index(ring.cell(ring.claimed() - 1).correlation);
    ASSERT_LT(index, kInFlight);
    auto& slot = probe.call_slot(client->self(), index);
    const std::uint64_t g = layout::call_generation(detail::load_acquire(slot.control));
    ASSERT_EQ(detail::load_acquire(slot.control), call_control(CallState::pending, 0, g));

    const std::uint64_t word = random_call_word(fuzz, refs, g);
    const std::uint32_t length =
        fuzz.pick<std::uint32_t>({0, 1, kMaxReply, kMaxReply + 1, fuzz.u32_edge()});
    detail::store_relaxed(slot.length, length);
    if (fuzz.chance(3)) detail::store_relaxed(slot.deadline_ns, std::uint64_t{1});
    detail::store_release(slot.control, word);

    std::optional<Expected<Reply>> outcome;
    if (fuzz.chance(2)) {
      // The caller looks first: its answer follows from the word alone.
      const bool alive = probe.table().is_alive(layout::call_who(word));
      const auto expected = poll_outcome(word, g, length, alive);
      outcome.emplace(pending->poll());
      ++exact;
      if (!expected) {
        ASSERT_TRUE(*outcome) << "expected a reply, got " << to_string(outcome->error());
        EXPECT_EQ((*outcome)->payload().size(), length);
      } else {
        ASSERT_FALSE(*outcome) << "expected " << to_string(*expected) << ", got a reply";
        EXPECT_EQ(outcome->error(), *expected);
      }
      ASSERT_TRUE(server->serve_one(handler, deadline_in(2s)));  // the record: whatever it finds
    } else {
      ASSERT_TRUE(server->serve_one(handler, deadline_in(2s)));
    }
    if (!outcome || (!*outcome && outcome->error() == Errc::empty)) {
      outcome.emplace(fuzz.chance(2) ? pending->poll() : pending->cancel());
      if (!*outcome && outcome->error() == Errc::empty) outcome.emplace(pending->cancel());
    }
    if (*outcome) {
      ++replies;
      EXPECT_LE((*outcome)->payload().size(), kMaxReply);
    } else {
      EXPECT_TRUE(typed_call_outcome(outcome->error())) << to_string(outcome->error());
    }
    outcome.reset();
    // A slot a live server may still write is that server's to free: the
    // probe, playing it, lets go (TAKEN or ABANDONED(g, S) -> FREE(g + 1)).
    for (std::uint32_t i = 0; i < kInFlight; ++i) {
      auto& s = probe.call_slot(client->self(), i);
      std::uint64_t now = detail::load_acquire(s.control);
      if (!recyclable(probe, now)) {
        (void)detail::compare_exchange(
            s.control, now,
            call_control(CallState::free, 0, layout::call_generation(now) + 1));
      }
    }
  }
  std::printf("[   INFO   ] %ld rounds: %ld replies, %ld outcomes predicted from the word\n", rounds,
              replies, exact);
}

// ---- the registry -------------------------------------------------------------------------------

// The first live entry named `name`, as Registry::find (lock-free, in index order) sees it.
const layout::ServiceIdentity* find_live(const detail::ControlView& view, std::string_view name) {
  for (std::uint32_t i = 0; i < layout::kMaxServices; ++i) {
    const auto& id = view.service(i).identity;
    if (static_cast<layout::ServiceState>(static_cast<std::uint32_t>(id.state)) !=
        layout::ServiceState::live) {
      continue;
    }
    if (std::string_view(id.name, strnlen(id.name, sizeof id.name)) == name) return &id;
  }
  return nullptr;
}

void write_name(Fuzz& fuzz, char (&to)[48]) {
  static const char* const kNames[] = {"real", "ghost", "fresh", ""};
  std::memset(to, 0, sizeof to);
  switch (fuzz.in(0, 3)) {
    case 0: {  // 48 bytes, no NUL
      for (char& ch : to) ch = static_cast<char>(fuzz.in(1, 255));
      break;
    }
    case 1: {  // a path-like name
      std::strcpy(to, fuzz.chance(2) ? "../../etc/passwd" : "a/b");
      break;
    }
    default: {
      const char* name = kNames[fuzz.in(0, 3)];
      std::strcpy(to, name);
      if (fuzz.chance(8)) to[std::strlen(name) + 1] = 'x';  // bytes after the NUL
    }
  }
}

// Random bytes, eight per draw (a registry is ~1.1 MB).
void fill_fast(Fuzz& fuzz, std::span<std::byte> bytes) {
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    const std::uint64_t word = fuzz.next();
    std::memcpy(bytes.data() + i, &word, 8);
  }
  fuzz.fill(bytes.subspan(i));
}

// Scrambles registry entries (never the robust mutex: a pthread mutex is not
// data a reader validates, and locking garbage is not what this tests).
void scramble_registry(Fuzz& fuzz, const detail::ControlView& view, const Refs& refs) {
  auto& header = view.registry();
  if (fuzz.chance(4)) {
    header.epoch = fuzz.next();
    header.capacity = fuzz.u32_edge();
  }
  const bool all_random = fuzz.chance(4);
  for (std::uint32_t i = 0; i < layout::kMaxServices; ++i) {
    layout::ServiceEntry& entry = view.service(i);
    if (all_random) {
      fill_fast(fuzz, {reinterpret_cast<std::byte*>(&entry), sizeof entry});
      if (fuzz.chance(16)) entry.identity.state = (fuzz.next() << 32) | 2;  // live
      continue;
    }
    if (!fuzz.chance(4)) continue;
    auto& id = entry.identity;
    const std::uint64_t generation = fuzz.next() << 32;
    id.state = generation | fuzz.pick<std::uint64_t>({0, 1, 2, 2, 2, 3, 0xffffffff});
    write_name(fuzz, id.name);
    if (fuzz.chance(2)) fuzz.fill({reinterpret_cast<std::byte*>(id.request_identifier), 4});
    if (fuzz.chance(4)) fuzz.fill({reinterpret_cast<std::byte*>(id.reply_identifier), 4});
    id.schema_hash = fuzz.chance(2) ? 0 : fuzz.next();
    if (fuzz.chance(4)) {
      fuzz.fill({reinterpret_cast<std::byte*>(id.request_type), sizeof id.request_type});
      fuzz.fill({reinterpret_cast<std::byte*>(id.schema_path), sizeof id.schema_path});
    }
    id.mailbox_capacity = fuzz.u32_edge();
    id.max_record = fuzz.u32_edge();
    id.max_deliveries = fuzz.u32_edge();
    id.dead_letter_capacity = fuzz.u32_edge();
    id.partitions = fuzz.chance(2) ? 0 : fuzz.pick<std::uint32_t>({1, 2, 3, 64, 65, 0xffffffffu});
    for (auto& server : entry.servers) {
      if (!fuzz.chance(8)) continue;
      server.owner = refs.any(fuzz);
      server.state = fuzz.u32_edge();
      fuzz.fill({reinterpret_cast<std::byte*>(&server.counters), sizeof server.counters});
    }
    if (fuzz.chance(4)) {
      fuzz.fill({reinterpret_cast<std::byte*>(&entry.counters), sizeof entry.counters});
    }
  }
}

bool has_identifier(const layout::ServiceIdentity& id, std::span<const std::byte> bytes) {
  static constexpr char kZero[4] = {};
  if (std::memcmp(id.request_identifier, kZero, 4) == 0) return true;
  return bytes.size() >= 8 && std::memcmp(bytes.data() + 4, id.request_identifier, 4) == 0;
}

TEST(CallFuzz, RandomRegistryBytesGiveALookupATypedAnswer) {
  Fuzz fuzz;
  auto bus = test::ScopedBus::create(bus_options());
  ASSERT_TRUE(bus->register_service("real", {}));
  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  const Refs refs{{bus->self().value, probe.self().value}, gone_process(bus.name()).value};
  const detail::ControlView& view = probe.control();
  // Everything after the mutex: the registry as registered, restored every round.
  auto* first = reinterpret_cast<std::byte*>(&view.registry()) + 64;
  const std::size_t span =
      sizeof(layout::RegistryHeader) - 64 + layout::kMaxServices * sizeof(layout::ServiceEntry);
  const std::vector<std::byte> pristine(first, first + span);

  const long rounds = test::scaled(300);
  long found = 0;
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    scramble_registry(fuzz, view, refs);
    for (const char* name : {"real", "ghost", "fresh", "nobody"}) {
      SCOPED_TRACE(name);
      const layout::ServiceIdentity* id = find_live(view, name);
      // Registry::find takes the first live entry of that name; its pool (and
      // partition) mailboxes must then exist: only "real" has any.
      std::optional<Errc> expected;
      if (id == nullptr) {
        expected = Errc::no_such_service;
      } else if (std::string_view(name) != "real" || std::min(id->partitions, layout::kMaxPartitions) > 0) {
        expected = Errc::no_such_mailbox;  // a live entry whose mailboxes are missing
      }
      auto service = bus->service(name);
      if (expected) {
        ASSERT_FALSE(service) << "looked up a service with no mailbox";
        EXPECT_EQ(service.error().code, *expected) << service.error().message();
        continue;
      }
      ASSERT_TRUE(service) << service.error().message();
      ++found;
      const auto bytes = fuzz.bytes(fuzz.in(0, 64));
      auto cast = service->cast(bytes);
      if (!has_identifier(*id, bytes)) {
        ASSERT_FALSE(cast);
        EXPECT_EQ(cast.error(), Errc::bad_message);
      } else if (!cast) {
        EXPECT_EQ(cast.error(), Errc::mailbox_full);
      }
    }
    if (fuzz.chance(4)) {  // each missing mailbox costs a failed open: not every round
      for (const ServiceInfo& info : bus->services()) {  // read, bounded, never trusted
        EXPECT_LE(info.name.size(), 48u);
        EXPECT_LE(info.servers.size(), layout::kMaxServersPerService);
        EXPECT_LE(info.options.partitions, layout::kMaxPartitions);
      }
    }
    std::memcpy(first, pristine.data(), span);
  }
  std::printf("[   INFO   ] %ld of %ld lookups of a scrambled registry found the service\n", found,
              4 * rounds);
  if (rounds >= 50) {
    EXPECT_GT(found, 0);
  }
}

// ---- a length rewritten while the record is taken ---------------------------------------------

// LIBRARY BUG (double fetch): Ring::try_take (bus/src/ring/ring_consumer.cpp,
// the `c.length > max_record_` check after the take CAS) checks the cell's
// length, and Receiver::make_delivery (bus/src/bus/mailbox.cpp) then reads
// `cell.length` from shared memory again to size the payload span ("try_take
// and take_over checked length <= max_record: the span stays in the cell").
// A process that rewrites the word in between (a buggy or hostile producer:
// the word is in its mapping) gets a Delivery whose payload runs up to 4 GiB
// past the cell, which Server::handle_call / handle_cast then copy
// (MessageBuffer::assign, dead-letter try_send) or hand to a handler. Same
// pattern in Ring::take_over. Fix: have try_take / take_over return the
// length they checked (or copy the header into private memory once) and
// build the Delivery from that copy.
TEST(CallFuzz, LengthRewrittenAfterTheTakeCheckNeverWidensThePayload) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.kind = layout::RingKind::mpsc, .capacity = 2, .max_record = 64});
  auto receiver = mailbox.receiver();
  ASSERT_TRUE(receiver) << receiver.error().message();
  detail::Ring& ring = test::ring_of(mailbox);
  std::atomic<std::uint32_t*> target{nullptr};
  std::atomic<bool> stop{false};
  std::thread forger([&] {
    std::uint32_t flip = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      if (std::uint32_t* length = target.load(std::memory_order_acquire)) {
        std::atomic_ref<std::uint32_t>(*length).store((++flip & 1) ? 8u : 0xfffff000u,
                                                      std::memory_order_relaxed);
      }
    }
  });
  const std::vector<std::byte> record(8, std::byte{7});
  long widened = 0, attempts = 0;
  const Deadline until = deadline_in(3s);
  while (widened == 0 && Clock::now() < until) {
    ++attempts;
    const std::uint64_t position = ring.claimed();
    ASSERT_TRUE(mailbox.try_send(record));
    target.store(&ring.cell(position).length, std::memory_order_release);
    auto delivery = receiver->try_receive();
    target.store(nullptr, std::memory_order_release);
    if (!delivery) continue;  // the check saw the forged length: skipped, counted
    if (delivery->payload().size() > mailbox.max_record()) ++widened;
  }
  stop.store(true);
  forger.join();
  EXPECT_EQ(widened, 0) << "after " << attempts << " attempts: a delivery's payload reached "
                        << "past its cell (length read again after the check)";
}

}  // namespace
}  // namespace shmbus
