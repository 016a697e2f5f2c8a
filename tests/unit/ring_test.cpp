// Single-process behaviour of a mailbox ring, including planted states that
// dead processes leave behind (the Aeron technique: write the raw layout bytes,
// then assert what the reader does).
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "ring/ring.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/detail/atomic.hpp"
#include "support/ring_access.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using layout::CellState;

std::vector<std::byte> bytes_of(std::size_t n, int seed = 0) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  return out;
}

using test::ring_of;

// A process reference that names nobody alive: slot 5, a generation it never had.
constexpr std::uint32_t kDeadRef = layout::process_ref(5, 77);

TEST(MpscRing, EmptyRingReceivesNothing) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 8, .max_record = 64});
  auto receiver = mailbox.receiver().value();
  auto got = receiver.try_receive();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), Errc::empty);
  EXPECT_EQ(mailbox.depth(), 0u);
}

TEST(MpscRing, DeliversRecordsIntactAndInOrder) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 8, .max_record = 64});
  auto receiver = mailbox.receiver().value();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(mailbox.try_send(bytes_of(10 + i, i), {.type = 7}));
  for (int i = 0; i < 5; ++i) {
    auto got = receiver.try_receive();
    ASSERT_TRUE(got) << i;
    const auto expected = bytes_of(10 + i, i);
    ASSERT_EQ(got->payload().size(), expected.size());
    EXPECT_EQ(std::memcmp(got->payload().data(), expected.data(), expected.size()), 0);
    EXPECT_EQ(got->info().type, 7);
    EXPECT_EQ(got->info().sequence, static_cast<std::uint32_t>(i));
    EXPECT_EQ(got->info().deliveries, 1);
    EXPECT_FALSE(got->info().redelivered);
    EXPECT_EQ(got->info().sender, bus->self());
  }
  EXPECT_EQ(mailbox.counters().consumed, 5u);
}

TEST(MpscRing, FullRingRefusesAndCountsThenAcceptsAfterConsume) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 16});
  auto receiver = mailbox.receiver().value();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(mailbox.try_send(bytes_of(8)));
  auto refused = mailbox.try_send(bytes_of(8));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), Errc::mailbox_full);
  EXPECT_EQ(mailbox.counters().full_refusals, 1u);
  auto timed = mailbox.send(bytes_of(8), deadline_in(20ms));
  ASSERT_FALSE(timed);
  EXPECT_EQ(timed.error(), Errc::mailbox_full);
  { auto got = receiver.try_receive(); ASSERT_TRUE(got); }
  EXPECT_TRUE(mailbox.try_send(bytes_of(8)));
}

TEST(MpscRing, WrapsAroundManyTimes) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 32});
  auto receiver = mailbox.receiver().value();
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(mailbox.try_send(bytes_of(i % 33, i)));
    if (i % 3 == 2) {
      for (int k = 0; k < 3; ++k) {
        auto got = receiver.try_receive();
        ASSERT_TRUE(got);
      }
    }
  }
}

TEST(MpscRing, AcceptsMaximumSizeAndZeroLength) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 100});
  auto receiver = mailbox.receiver().value();
  ASSERT_TRUE(mailbox.try_send(bytes_of(100)));
  ASSERT_TRUE(mailbox.try_send({}));
  auto first = receiver.try_receive();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->payload().size(), 100u);
  first->done();
  auto second = receiver.try_receive();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->payload().size(), 0u);
}

TEST(MpscRing, RefusesRecordLargerThanMax) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 100});
  auto refused = mailbox.try_send(bytes_of(101));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), Errc::record_too_large);
  EXPECT_EQ(mailbox.counters().claimed, 0u);  // nothing was claimed
}

TEST(MpscRing, SecondConsumerOfMpscIsRefused) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 16});
  auto first = mailbox.receiver();
  ASSERT_TRUE(first);
  auto second = mailbox.receiver();
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Errc::too_many_consumers);
}

TEST(MpscRing, AbortedClaimIsSkippedAndCounted) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 16});
  auto receiver = mailbox.receiver().value();
  { auto claim = mailbox.try_claim(8); ASSERT_TRUE(claim); }  // destroyed: aborted
  ASSERT_TRUE(mailbox.try_send(bytes_of(3)));
  auto got = receiver.try_receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->payload().size(), 3u);
  EXPECT_EQ(mailbox.counters().sender_aborted, 1u);
}

TEST(MpscRingPlanted, ClaimOfDeadProducerIsSkippedOnceKnownDead) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 16});
  auto& ring = ring_of(mailbox);
  // Position 0 claimed by a dead producer; position 1 committed behind it.
  ring.cell(0).control = layout::cell_control(CellState::claimed, kDeadRef, 0);
  ring.header().producer.tail_position = 1;
  ASSERT_TRUE(mailbox.try_send(bytes_of(5)));
  auto receiver = mailbox.receiver().value();
  auto got = receiver.receive(deadline_in(5s), WaitMode::park);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->info().position, 1u);
  EXPECT_EQ(mailbox.counters().sender_aborted, 1u);
}

TEST(MpscRingPlanted, ClaimOfLiveProducerBlocksTheConsumer) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 16});
  auto claim = mailbox.try_claim(4);
  ASSERT_TRUE(claim);
  ASSERT_TRUE(mailbox.try_send(bytes_of(5)));
  auto receiver = mailbox.receiver().value();
  EXPECT_EQ(receiver.receive(deadline_in(120ms), WaitMode::park).error(), Errc::empty);
  claim->commit();
  auto first = receiver.try_receive();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->payload().size(), 4u);
}

TEST(MpscRingPlanted, RecordTakenByDeadConsumerIsRedelivered) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 16});
  ASSERT_TRUE(mailbox.try_send(bytes_of(6, 9)));
  auto& ring = ring_of(mailbox);
  // A consumer that died holding position 0: entry 0 and the cell say so.
  ring.cell(0).control = layout::cell_control(CellState::taken, kDeadRef, 0);
  ring.cell(0).deliveries = 1;
  ring.header().consumers[0].owner = kDeadRef;
  ring.header().consumers[0].held = 1;
  ring.header().consumer.head_position = 1;
  auto receiver = mailbox.receiver().value();
  auto got = receiver.try_receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->info().position, 0u);
  EXPECT_TRUE(got->info().redelivered);
  EXPECT_EQ(got->info().deliveries, 2);
  const auto expected = bytes_of(6, 9);
  EXPECT_EQ(std::memcmp(got->payload().data(), expected.data(), 6), 0);
  EXPECT_EQ(mailbox.counters().redelivered, 1u);
}

TEST(MpscRingPlanted, TornStateAndOversizeLengthAreSkippedAsBadMessages) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 16});
  ASSERT_TRUE(mailbox.try_send(bytes_of(4)));
  ASSERT_TRUE(mailbox.try_send(bytes_of(4)));
  ASSERT_TRUE(mailbox.try_send(bytes_of(4)));
  auto& ring = ring_of(mailbox);
  ring.cell(0).control = (std::uint64_t{7} << layout::kStateShift) | 0;  // state 7: never written
  ring.cell(1).length = 1u << 30;                                       // past the cell
  auto receiver = mailbox.receiver().value();
  auto got = receiver.try_receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->info().position, 2u);
  EXPECT_EQ(mailbox.counters().bad_messages, 2u);
}

}  // namespace
}  // namespace shmbus
