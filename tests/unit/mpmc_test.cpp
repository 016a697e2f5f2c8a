// Many consumers of one pool mailbox, in one process.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "ring/ring.hpp"
#include "shmbus/bus.hpp"
#include "support/ring_access.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using layout::RingKind;

std::vector<std::byte> bytes_of(std::size_t n, int seed) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i + seed) & 0xff);
  return out;
}

TEST(MpmcRing, TwoConsumersEachTakeTheNextRecord) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("pool", {.kind = RingKind::mpmc, .capacity = 8, .max_record = 32});
  auto a = mailbox.receiver().value();
  auto b = mailbox.receiver().value();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(mailbox.try_send(bytes_of(4, i)));
  auto first = a.try_receive();   // a holds position 0 …
  auto second = b.try_receive();  // … and b is not blocked behind it
  ASSERT_TRUE(first);
  ASSERT_TRUE(second);
  EXPECT_EQ(first->info().position, 0u);
  EXPECT_EQ(second->info().position, 1u);
  second->done();
  auto third = b.try_receive();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->info().position, 2u);
}

TEST(MpmcRing, SiblingTakesOverTheRecordOfADeadConsumer) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("pool", {.kind = RingKind::mpmc, .capacity = 8, .max_record = 32});
  ASSERT_TRUE(mailbox.try_send(bytes_of(7, 3)));
  // Plant: consumer entry 5 belongs to a dead process that took position 0.
  detail::Ring& ring = test::ring_of(mailbox);
  constexpr std::uint32_t dead = layout::process_ref(9, 42);
  ring.cell(0).control = layout::cell_control(layout::CellState::taken, dead, 0);
  ring.cell(0).deliveries = 1;
  ring.header().consumers[5].owner = dead;
  ring.header().consumers[5].held = 1;
  ring.header().consumer.head_position = 1;

  auto sibling = mailbox.receiver().value();
  EXPECT_EQ(sibling.try_receive().error(), Errc::empty);  // nothing new at the head
  auto recovered = sibling.receive(deadline_in(5s), WaitMode::park);  // found at a re-check
  ASSERT_TRUE(recovered);
  EXPECT_EQ(recovered->info().position, 0u);
  EXPECT_TRUE(recovered->info().redelivered);
  EXPECT_EQ(recovered->info().deliveries, 2);
  EXPECT_EQ(ring.header().consumers[5].owner, 0u);  // the dead entry is free again
  EXPECT_EQ(mailbox.counters().redelivered, 1u);
}

TEST(MpmcRing, SixtyFiveConsumersAreRefused) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("pool", {.kind = RingKind::mpmc, .capacity = 8, .max_record = 32});
  std::vector<Receiver> receivers;
  for (int i = 0; i < 64; ++i) receivers.push_back(mailbox.receiver().value());
  auto refused = mailbox.receiver();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::too_many_consumers);
}

}  // namespace
}  // namespace shmbus
