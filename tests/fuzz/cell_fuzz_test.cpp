// Random cell headers, ring hints and consumer entries under a Receiver.
//
// What another process writes into a mailbox is data, never trusted: whatever
// the cells, the head/tail hints and the consumer table hold, try_receive and
// recover return a delivery whose payload lies inside its cell or a typed
// error, never crash, and count what they skip (bad_messages, sender_aborted).
// The first test plants states whose outcome is known and checks it exactly;
// the second plants raw random headers and checks the safety rules only.
#include <gtest/gtest.h>
#include <shmbus/schemas/mailer_generated.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "fuzz/fuzz_support.hpp"
#include "ring/ring.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/message.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using layout::CellHeader;
using layout::CellState;
using test::Fuzz;
using test::ring_of;

// Process references that name nobody alive on a fresh bus (only slot 0 is used).
constexpr std::uint32_t kDeadRef = layout::process_ref(5, 77);
constexpr std::uint32_t kOtherDeadRef = layout::process_ref(900, 3);

std::string trace(const Fuzz& fuzz, long round) {
  return "round " + std::to_string(round) + " (SHMBUS_FUZZ_SEED=" + std::to_string(fuzz.seed()) +
         ")";
}

MailboxOptions random_options(Fuzz& fuzz) {
  MailboxOptions options;
  options.kind = fuzz.chance(2) ? layout::RingKind::mpsc : layout::RingKind::mpmc;
  options.capacity = 1u << fuzz.in(1, 5);
  options.max_record = fuzz.chance(3) ? fuzz.pick<std::uint32_t>({1, 31, 32, 33, 64, 96})
                                      : static_cast<std::uint32_t>(fuzz.in(1, 300));
  return options;
}

// Where the cells are, computed from the options this test chose and the fixed
// layout, not from the descriptor in shared memory.
struct Geometry {
  const std::byte* cells;
  std::uint64_t stride;
  std::uint32_t capacity;
  std::uint32_t max_record;
};

Geometry geometry_of(Mailbox& mailbox, const MailboxOptions& options) {
  const auto* base =
      reinterpret_cast<const std::byte*>(&ring_of(mailbox).header()) - layout::kRingHeaderOffset;
  const std::uint64_t stride = (sizeof(CellHeader) + options.max_record + layout::kCacheLine - 1) /
                               layout::kCacheLine * layout::kCacheLine;
  return {base + layout::kRingCellsOffset, stride, options.capacity, options.max_record};
}

// A planted cell flagged as a loan names no block that is in a record here:
// it must come out empty with a typed ref_error, never as bytes.
::testing::AssertionResult payload_inside_its_cell(const Geometry& g, const Delivery& delivery) {
  if (delivery.info().loaned) {
    const Errc e = delivery.info().ref_error;
    if (delivery.payload().empty() && (e == Errc::bad_ref || e == Errc::stale_ref)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "forged loan at position " << delivery.info().position
                                         << " resolved to " << delivery.payload().size() << " bytes";
  }
  const std::uint64_t index = delivery.info().position & (g.capacity - 1);
  const std::byte* cell = g.cells + index * g.stride;
  const std::byte* data = delivery.payload().data();
  const std::size_t size = delivery.payload().size();
  if (data != cell + sizeof(CellHeader)) {
    return ::testing::AssertionFailure() << "payload of position " << delivery.info().position
                                         << " does not start after its cell header";
  }
  if (size > g.max_record || data + size > cell + g.stride) {
    return ::testing::AssertionFailure()
           << "payload of position " << delivery.info().position << " has " << size
           << " bytes, max_record is " << g.max_record;
  }
  return ::testing::AssertionSuccess();
}

std::uint32_t random_owner(Fuzz& fuzz, std::uint32_t self) {
  switch (fuzz.in(0, 4)) {
    case 0:
      return 0;
    case 1:
      return self;
    case 2:
      return kDeadRef;
    case 3:
      return kOtherDeadRef;
    default: {
      std::uint32_t owner = 0;
      do owner = static_cast<std::uint32_t>(fuzz.next() & layout::kOwnerMask);
      while (owner == self);
      return owner;
    }
  }
}

std::uint32_t random_length(Fuzz& fuzz, std::uint32_t max_record) {
  switch (fuzz.in(0, 5)) {
    case 0:
      return 0;
    case 1:
      return max_record;
    case 2:
      return max_record + 1;
    case 3:
      return fuzz.u32_edge();
    default:
      return static_cast<std::uint32_t>(fuzz.in(0, max_record));
  }
}

std::uint64_t raw_control(std::uint64_t state, std::uint32_t owner, std::uint64_t seq) {
  return (state << layout::kStateShift) |
         ((std::uint64_t{owner} & layout::kOwnerMask) << layout::kOwnerShift) |
         (seq & layout::kSeqMask);
}

// Plants random bytes in every field of a cell header after `control`, and in its payload.
void scramble_cell(Fuzz& fuzz, detail::Ring& ring, std::uint64_t position,
                   std::uint32_t max_record) {
  CellHeader& cell = ring.cell(position);
  cell.length = random_length(fuzz, max_record);
  cell.sequence = static_cast<std::uint32_t>(fuzz.next());
  cell.sender = static_cast<std::uint32_t>(fuzz.next());
  cell.type = static_cast<std::uint16_t>(fuzz.next());
  cell.flags = static_cast<std::uint8_t>(fuzz.next());
  cell.deliveries = static_cast<std::uint8_t>(fuzz.next());
  cell.correlation = fuzz.next();
  fuzz.fill({ring.payload(position), max_record});
}

struct Expected {
  std::uint64_t position;
  std::vector<std::byte> payload;
  friend bool operator==(const Expected&, const Expected&) = default;
};

TEST(CellFuzz, PlantedCellStatesAreDeliveredSkippedOrCountedExactlyAsModelled) {
  Fuzz fuzz;
  auto bus = test::ScopedBus::create();
  const std::uint32_t self = bus->self().value;
  const long rounds = test::scaled(2000);
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    const MailboxOptions options = random_options(fuzz);
    const std::string name = "m" + std::to_string(round);
    {
      auto mailbox = bus.mailbox(name, options);
      auto& ring = ring_of(mailbox);
      const Geometry geometry = geometry_of(mailbox, options);
      const auto n = static_cast<std::uint32_t>(fuzz.in(0, options.capacity));
      for (std::uint32_t p = 0; p < n; ++p) {
        ASSERT_TRUE(mailbox.try_send(fuzz.bytes(fuzz.in(0, options.max_record))));
      }

      // Plant over the committed records, then predict what a receiver does
      // walking from position 0: it stops at the first free cell or live claim.
      std::vector<Expected> expected;
      std::uint64_t bad = 0, aborted = 0, consumed = 0;
      bool walking = true;
      for (std::uint32_t p = 0; p < n; ++p) {
        CellHeader& cell = ring.cell(p);
        if (fuzz.chance(2)) {
          scramble_cell(fuzz, ring, p, options.max_record);
          cell.control = raw_control(fuzz.in(0, 7), random_owner(fuzz, self), p);
        }
        if (!walking) continue;
        const auto state = static_cast<unsigned>(cell.control >> layout::kStateShift);
        const std::uint32_t owner = layout::control_owner(cell.control);
        switch (state) {
          case 0:
            walking = false;
            break;  // free for position p: nothing to take
          case 1:   // claimed: skipped once its owner is dead
            if (owner == self)
              walking = false;
            else
              ++aborted;
            break;
          case 2:
            ++consumed;
            if (cell.length > options.max_record) {
              ++bad;
            } else if ((cell.flags & layout::kRecordLoan) != 0) {
              // A forged loan ref: no block of the pool is in a record, so it
              // is delivered with an empty payload and a typed ref_error.
              expected.push_back({p, {}});
            } else {
              const std::byte* data = ring.payload(p);
              expected.push_back({p, {data, data + cell.length}});
            }
            break;
          case 3:
            break;  // taken by someone else: passed over
          case 4:
            ++aborted;
            break;
          default:
            ++bad;
            break;  // states 5..7 are never written
        }
      }

      auto receiver_result = mailbox.receiver();
      ASSERT_TRUE(receiver_result) << receiver_result.error().message();
      auto& receiver = *receiver_result;
      std::vector<Expected> got;
      for (std::uint32_t call = 0; call <= 2 * options.capacity + 2; ++call) {
        auto delivery = receiver.try_receive();
        if (!delivery) {
          ASSERT_EQ(delivery.error(), Errc::empty);
          delivery = receiver.recover();  // also skips claims of dead producers
        }
        if (!delivery) {
          ASSERT_EQ(delivery.error(), Errc::empty);
          break;
        }
        ASSERT_TRUE(payload_inside_its_cell(geometry, *delivery));
        const auto payload = delivery->payload();
        got.push_back({delivery->info().position, {payload.begin(), payload.end()}});
        ASSERT_LE(got.size(), options.capacity) << "more deliveries than cells";
      }
      EXPECT_EQ(got, expected);
      const MailboxCounters counters = mailbox.counters();
      EXPECT_EQ(counters.bad_messages, bad);
      EXPECT_EQ(counters.sender_aborted, aborted);
      EXPECT_EQ(counters.consumed, consumed);

      // A walk that reached the producers' tail leaves a working mailbox.
      if (walking && n < options.capacity) {
        const auto record = fuzz.bytes(fuzz.in(0, options.max_record));
        ASSERT_TRUE(mailbox.try_send(record));
        auto delivery = receiver.try_receive();
        ASSERT_TRUE(delivery);
        EXPECT_EQ(delivery->info().position, n);
        EXPECT_TRUE(std::equal(record.begin(), record.end(), delivery->payload().begin(),
                               delivery->payload().end()));
      }
    }
    ASSERT_TRUE(bus->remove_mailbox(name));
  }
}

TEST(CellFuzz, RandomCellHeadersHintsAndConsumerEntriesNeverBreakTheReceiver) {
  Fuzz fuzz;
  auto bus = test::ScopedBus::create();
  const std::uint32_t self = bus->self().value;
  const long rounds = test::scaled(2000);
  std::uint64_t deliveries = 0, refusals = 0;
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    const MailboxOptions options = random_options(fuzz);
    const std::uint32_t cap = options.capacity;
    const std::string name = "m" + std::to_string(round);
    {
      auto mailbox = bus.mailbox(name, options);
      auto& ring = ring_of(mailbox);
      const Geometry geometry = geometry_of(mailbox, options);

      // Real history first: some laps consumed, some records outstanding.
      const std::uint64_t laps = fuzz.in(0, 3 * cap);
      {
        auto warm = mailbox.receiver().value();
        for (std::uint64_t i = 0; i < laps; ++i) {
          ASSERT_TRUE(mailbox.try_send(fuzz.bytes(fuzz.in(0, options.max_record))));
          ASSERT_TRUE(warm.try_receive());
        }
      }
      const std::uint64_t outstanding = fuzz.in(0, cap);
      for (std::uint64_t i = 0; i < outstanding; ++i) {
        ASSERT_TRUE(mailbox.try_send(fuzz.bytes(fuzz.in(0, options.max_record))));
      }

      // Raw random headers. Sequence numbers stay within a few laps of the
      // cell's position (see the regressions below for far-off ones).
      const auto window = static_cast<std::int64_t>(2 * cap);
      const auto near = [&](std::uint64_t position) {
        return position + static_cast<std::uint64_t>(
                              static_cast<std::int64_t>(fuzz.in(0, 2 * window)) - window);
      };
      for (std::uint64_t i = 0; i < cap; ++i) {
        if (!fuzz.chance(2)) continue;
        const std::uint64_t p = laps + i;
        scramble_cell(fuzz, ring, p, options.max_record);
        const std::uint64_t seq = fuzz.chance(2) ? p : near(p);
        ring.cell(p).control = raw_control(fuzz.in(0, 7), random_owner(fuzz, self), seq);
      }
      layout::RingHeader& header = ring.header();
      if (fuzz.chance(4)) header.consumer.head_position = near(header.consumer.head_position);
      if (fuzz.chance(4)) header.producer.tail_position = near(header.producer.tail_position);
      if (fuzz.chance(2)) {
        // Dead consumers, some holding (taken) cells that name them.
        for (auto& entry : header.consumers) {
          if (!fuzz.chance(3)) continue;
          entry.owner = random_owner(fuzz, self);
          if (entry.owner == self) entry.owner = kDeadRef;
          const std::uint64_t p = laps + fuzz.in(0, cap - 1);
          entry.held = fuzz.chance(4) ? fuzz.next() : p + 1;
          if (fuzz.chance(2)) {
            ring.cell(p).control = raw_control(3, entry.owner, p);
            ring.cell(p).length = random_length(fuzz, options.max_record);
          }
        }
      }
      const MailboxCounters before = mailbox.counters();

      auto receiver_result = mailbox.receiver();
      if (!receiver_result) {
        EXPECT_EQ(receiver_result.error().code, Errc::too_many_consumers);
      } else {
        auto& receiver = *receiver_result;
        MessageBuffer scratch;
        bool drained = false;
        const std::uint32_t budget = 4 * (cap + layout::kMaxConsumersPerMailbox) + 16;
        for (std::uint32_t call = 0; call < budget && !drained; ++call) {
          const bool first_try = fuzz.chance(2);
          auto delivery = first_try ? receiver.try_receive() : receiver.recover();
          if (!delivery) {
            ASSERT_EQ(delivery.error(), Errc::empty);
            delivery = first_try ? receiver.recover() : receiver.try_receive();
          }
          if (!delivery) {
            ASSERT_EQ(delivery.error(), Errc::empty);
            drained = true;
            continue;
          }
          ++deliveries;
          ASSERT_TRUE(payload_inside_its_cell(geometry, *delivery));
          if (fuzz.chance(2)) {  // random payloads through the verifier too
            auto email = delivery->read<examples::mailer::SendEmail>("MAIL", scratch);
            if (!email) {
              EXPECT_EQ(email.error(), Errc::bad_message);
            }
          }
        }
        EXPECT_TRUE(drained) << "still delivering after " << budget << " calls";

        const MailboxCounters after = mailbox.counters();
        EXPECT_GE(after.bad_messages, before.bad_messages);
        EXPECT_GE(after.sender_aborted, before.sender_aborted);
        EXPECT_GE(after.consumed, before.consumed);
        EXPECT_GE(after.redelivered, before.redelivered);

        // The producer side over the same cells and hints: typed outcomes only.
        for (int i = 0; i < 4; ++i) {
          const std::size_t size = fuzz.in(0, options.max_record + 2);
          auto sent = mailbox.try_send(fuzz.bytes(size));
          if (sent) continue;
          ++refusals;
          EXPECT_EQ(sent.error(),
                    size > options.max_record ? Errc::record_too_large : Errc::mailbox_full);
        }
        for (std::uint32_t call = 0; call < 2 * cap + 2; ++call) {
          auto delivery = receiver.try_receive();
          if (!delivery) {
            ASSERT_EQ(delivery.error(), Errc::empty);
            break;
          }
          ASSERT_TRUE(payload_inside_its_cell(geometry, *delivery));
        }
      }
    }
    ASSERT_TRUE(bus->remove_mailbox(name));
  }
  std::printf("[   INFO   ] %llu deliveries, %llu refused sends\n",
              static_cast<unsigned long long>(deliveries),
              static_cast<unsigned long long>(refusals));
}

// ---- regressions of bugs the fuzzer found ------------------------------------------------------

// A cell whose seq lies far ahead of the head/tail hint (forged or torn) used
// to make try_receive()/try_send() walk the hint one position per iteration,
// up to 2^36 of them. Now a cell more than a lap ahead of a hint that has not
// moved is repaired and counted in bad_messages.
TEST(CellFuzz, CellsFarAheadOfTheHeadDoNotStallTryReceive) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 2, .max_record = 16});
  auto& ring = ring_of(mailbox);
  constexpr std::uint64_t kAhead = std::uint64_t{1} << 35;
  ring.cell(0).control = layout::cell_control(CellState::free, 0, kAhead);
  ring.cell(1).control = layout::cell_control(CellState::free, 0, kAhead + 1);
  auto receiver = mailbox.receiver().value();
  std::atomic<bool> returned{false};
  std::thread consumer([&] {
    auto got = receiver.try_receive();
    EXPECT_FALSE(got);
    returned = true;
  });
  const bool in_time = test::wait_until(2s, [&] { return returned.load(); });
  const std::uint64_t head = detail::load_relaxed(ring.header().consumer.head_position);
  EXPECT_TRUE(in_time) << "try_receive still running after 2 s; the head hint moved " << head
                       << " positions of the " << kAhead << " it will walk";
  // Unstick it: move the hint to where the loop would end.
  detail::store_relaxed(ring.header().consumer.head_position, kAhead);
  consumer.join();
}

TEST(CellFuzz, CellsFarAheadOfTheTailDoNotStallTrySend) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 2, .max_record = 16});
  auto& ring = ring_of(mailbox);
  constexpr std::uint64_t kAhead = std::uint64_t{1} << 35;
  ring.cell(0).control = layout::cell_control(CellState::committed, kDeadRef, kAhead);
  ring.cell(1).control = layout::cell_control(CellState::committed, kDeadRef, kAhead + 1);
  std::atomic<bool> returned{false};
  std::thread producer([&] {
    const std::byte record[4] = {};
    (void)mailbox.try_send(record);  // any typed outcome will do
    returned = true;
  });
  const bool in_time = test::wait_until(2s, [&] { return returned.load(); });
  const std::uint64_t tail = detail::load_relaxed(ring.header().producer.tail_position);
  EXPECT_TRUE(in_time) << "try_send still running after 2 s; the tail hint moved " << tail
                       << " positions of the " << kAhead << " it will walk";
  ring.cell(0).control = layout::cell_control(CellState::free, 0, kAhead + 2);
  detail::store_relaxed(ring.header().producer.tail_position, kAhead + 2);
  producer.join();
}

// Regression: Ring::take_over() used to CAS a dead consumer's cell to
// taken(p, self) and only then check `length <= max_record`, returning false
// without releasing the cell or counting it. The cell stayed taken by the live
// receiver and the mailbox was full for ever once producers wrapped round to
// it (fixed in d97b942: released and counted, as try_take does).
TEST(CellFuzz, OversizeRecordTakenOverFromADeadConsumerIsCountedAndReleased) {
  auto bus = test::ScopedBus::create();
  auto mailbox =
      bus.mailbox("m", {.kind = layout::RingKind::mpmc, .capacity = 4, .max_record = 16});
  auto& ring = ring_of(mailbox);
  const std::byte record[8] = {};
  ASSERT_TRUE(mailbox.try_send(record));
  // A consumer (now dead) took position 0, and the cell's length is torn.
  ring.cell(0).control = layout::cell_control(CellState::taken, kDeadRef, 0);
  ring.cell(0).length = 1u << 30;
  ring.header().consumer.head_position = 1;
  ring.header().consumers[5] = {kDeadRef, 0, 1};

  auto receiver = mailbox.receiver().value();
  auto got = receiver.recover();
  ASSERT_FALSE(got);
  EXPECT_EQ(mailbox.counters().bad_messages, 1u);
  EXPECT_EQ(ring.cell(0).control, layout::cell_control(CellState::free, 0, 4))
      << "the torn cell is still taken, by " << layout::control_owner(ring.cell(0).control)
      << " (this process is " << bus->self().value << ")";
  // A full lap later the producers reach the cell again.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(mailbox.try_send(record));
    ASSERT_TRUE(receiver.try_receive());
  }
  EXPECT_TRUE(mailbox.try_send(record)) << "position 4 never becomes free";
}

}  // namespace
}  // namespace shmbus
