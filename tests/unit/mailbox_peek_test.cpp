// Mailbox::peek: copies of the records a mailbox holds, taking none (the
// non-consuming read behind `shmbus dead-letters`).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "ring/ring.hpp"
#include "shmbus/bus.hpp"
#include "support/ring_access.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

using layout::CellState;
using layout::RingKind;

std::vector<std::byte> bytes_of(std::size_t n, int seed) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
  return out;
}

TEST(MailboxPeek, CopiesWaitingRecordsOldestFirstAndTakesNothing) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("dead", {.kind = RingKind::mpmc, .capacity = 8, .max_record = 64});
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(mailbox.try_send(bytes_of(10 + i, i), {.type = 2, .correlation = 100u + i}));
  }
  for (int round = 0; round < 2; ++round) {  // twice: the first peek changed nothing
    const auto records = mailbox.peek(16);
    ASSERT_EQ(records.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(records[i].info.position, i);
      EXPECT_EQ(records[i].info.type, 2u);
      EXPECT_EQ(records[i].info.correlation, 100u + i);
      EXPECT_FALSE(records[i].in_flight);
      EXPECT_EQ(records[i].payload, bytes_of(10 + i, static_cast<int>(i)));
    }
    EXPECT_EQ(mailbox.depth(), 3u);
  }
  // The receiver still gets every record, in order.
  auto receiver = mailbox.receiver().value();
  for (std::uint64_t i = 0; i < 3; ++i) {
    auto delivery = receiver.try_receive();
    ASSERT_TRUE(delivery);
    EXPECT_EQ(delivery->info().position, i);
  }
}

TEST(MailboxPeek, ShowsARecordHeldByALiveConsumerAsInFlightAndForgetsItOnceDone) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("dead", {.kind = RingKind::mpmc, .capacity = 4, .max_record = 16});
  ASSERT_TRUE(mailbox.try_send(bytes_of(4, 1)));
  ASSERT_TRUE(mailbox.try_send(bytes_of(4, 2)));
  auto receiver = mailbox.receiver().value();
  auto held = receiver.try_receive();
  ASSERT_TRUE(held);
  auto records = mailbox.peek(16);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_TRUE(records[0].in_flight);
  EXPECT_EQ(records[0].payload, bytes_of(4, 1));
  EXPECT_FALSE(records[1].in_flight);
  held->done();
  records = mailbox.peek(16);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].info.position, 1u);
}

TEST(MailboxPeek, ARecordHeldByADeadConsumerIsListedAndNotInFlight) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("dead", {.kind = RingKind::mpmc, .capacity = 4, .max_record = 16});
  ASSERT_TRUE(mailbox.try_send(bytes_of(5, 9)));
  // Plant: a dead consumer (a tool killed mid-requeue) took position 0.
  detail::Ring& ring = test::ring_of(mailbox);
  constexpr std::uint32_t dead = layout::process_ref(9, 42);
  ring.cell(0).control = layout::cell_control(CellState::taken, dead, 0);
  ring.header().consumers[3].owner = dead;
  ring.header().consumers[3].held = 1;
  ring.header().consumer.head_position = 1;
  const auto records = mailbox.peek(16);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_FALSE(records[0].in_flight);
  EXPECT_EQ(records[0].payload, bytes_of(5, 9));
}

TEST(MailboxPeek, FollowsPositionsAcrossLapsAndStopsAtMax) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("dead", {.kind = RingKind::mpmc, .capacity = 4, .max_record = 16});
  auto receiver = mailbox.receiver().value();
  for (int i = 0; i < 6; ++i) {  // positions 0…5 pass; 6…8 stay (cells 2, 3, 0)
    ASSERT_TRUE(mailbox.try_send(bytes_of(3, i)));
    receiver.try_receive()->done();
  }
  for (int i = 6; i < 9; ++i) ASSERT_TRUE(mailbox.try_send(bytes_of(3, i)));
  auto records = mailbox.peek(16);
  ASSERT_EQ(records.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(records[i].info.position, 6 + i);
    EXPECT_EQ(records[i].payload, bytes_of(3, static_cast<int>(6 + i)));
  }
  records = mailbox.peek(2);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].info.position, 7u);
}

TEST(MailboxPeek, LeavesOutClaimedTornAndForgedCells) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("dead", {.kind = RingKind::mpmc, .capacity = 8, .max_record = 16});
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(mailbox.try_send(bytes_of(4, i)));
  auto claim = mailbox.try_claim(4);  // position 4: claimed, never committed
  ASSERT_TRUE(claim);
  detail::Ring& ring = test::ring_of(mailbox);
  ring.cell(1).length = 1000;  // forged length: past the cell
  ring.cell(2).control = layout::cell_control(static_cast<CellState>(6), 0, 2);  // torn state
  ring.cell(3).control = layout::cell_control(CellState::committed, 0, 3 + 8);  // another lap
  const auto records = mailbox.peek(16);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].info.position, 0u);
  claim->abort();
}

// Records pass through a small ring while another thread peeks: every copy
// is one whole record (the re-check after the copy catches a cell reused
// meanwhile), in position order.
TEST(MailboxPeek, CopiesAreNeverTornWhileRecordsPassThrough) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the copy races with the next producer by design (a seqlock read): "
                  "ThreadSanitizer reports it, the re-check discards it";
#endif
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("dead", {.kind = RingKind::mpmc, .capacity = 4, .max_record = 256});
  const long wanted_copies = test::scaled(5000);
  const long max_records = 50 * wanted_copies;  // a bound, should the peeker starve
  std::atomic<bool> stop{false}, finished{false};
  std::thread traffic([&] {
    auto receiver = mailbox.receiver().value();
    std::vector<std::uint64_t> words(32);
    for (long i = 0; i < max_records && !stop.load(std::memory_order_relaxed); ++i) {
      for (std::size_t w = 0; w < words.size(); ++w) words[w] = static_cast<std::uint64_t>(i) * 1000 + w;
      const auto bytes = std::as_bytes(std::span(words));
      while (!mailbox.try_send(bytes)) {
        if (auto delivery = receiver.try_receive()) delivery->done();
      }
      if (i % 3 == 0) {
        if (auto delivery = receiver.try_receive()) delivery->done();
      }
    }
    finished.store(true);
  });
  long copies = 0, torn = 0, disorder = 0;
  while (!finished.load() && copies < wanted_copies) {
    std::uint64_t previous = 0;
    for (const auto& record : mailbox.peek(16)) {
      std::vector<std::uint64_t> words(record.payload.size() / 8);
      std::memcpy(words.data(), record.payload.data(), words.size() * 8);
      const std::uint64_t base = words.empty() ? 0 : words[0];
      for (std::size_t w = 0; w < words.size(); ++w) torn += words[w] != base + w;
      torn += words.size() != 32 || base / 1000 != record.info.position;
      disorder += copies > 0 && record.info.position < previous;
      previous = record.info.position;
      ++copies;
    }
  }
  stop.store(true);
  traffic.join();
  EXPECT_EQ(torn, 0);
  EXPECT_EQ(disorder, 0);
  EXPECT_GT(copies, 0);
}

TEST(MailboxPeek, DeadLettersOfAnUnknownServiceFailWithNoSuchService) {
  auto bus = test::ScopedBus::create();
  auto peeked = bus->peek_dead_letters("nobody", 8);
  ASSERT_FALSE(peeked);
  EXPECT_EQ(peeked.error().code, Errc::no_such_service);
}

TEST(MailboxPeek, DeadLettersOfAQuietServiceAreEmpty) {
  auto bus = test::ScopedBus::create();
  ASSERT_TRUE(bus->register_service("quiet", {}));
  auto peeked = bus->peek_dead_letters("quiet", 8);
  ASSERT_TRUE(peeked);
  EXPECT_TRUE(peeked->empty());
}

}  // namespace
}  // namespace shmbus
