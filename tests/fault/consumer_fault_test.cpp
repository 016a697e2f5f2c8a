// Consumers killed with SIGKILL around a take: a record held by a dead
// consumer is taken again (by the next receiver of an mpsc mailbox, by a live
// sibling of an mpmc one), marked redelivered with deliveries == 2; a consumer
// killed before its take leaves the record to be delivered normally; one
// killed after its release does not get the record delivered twice.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <string>
#include <thread>

#include "fault/collector.hpp"
#include "fault/fault_support.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using layout::RingKind;
using test::Child;
using test::Stamp;

const char* kind_name(RingKind kind) { return kind == RingKind::mpsc ? "mpsc" : "mpmc"; }

// A consumer process that takes one record and stops at `point`: a kill point
// name, or "holding" (it received the record and holds it in its own code).
Child spawn_consumer(test::ScopedBus& bus, const std::string& point, bool release = false) {
  std::vector<std::string> args{"--bus", bus.name(), "--mailbox", "orders"};
  if (point != "holding") args.insert(args.end(), {"--stop-at", point});
  if (release) args.insert(args.end(), {"--release", "1"});
  Child consumer = Child::spawn("take_and_hold", args);
  const bool stopped = test::wait_until(10s, [&] {
    return point == "holding" ? consumer.printed("holding ") : consumer.reached(point);
  });
  EXPECT_TRUE(stopped) << "consumer never reached " << point << ": " << consumer.output();
  return consumer;
}

// The first `count` records a live consumer receives after `dead` is killed:
// for mpsc a new receiver (the only entry is the dead consumer's), for mpmc a
// sibling that is already parked in receive() when the consumer dies.
std::vector<test::Received> receive_after_death(Mailbox& mailbox, Child& dead, std::size_t count) {
  std::optional<test::Collector> live;
  if (mailbox.kind() == RingKind::mpmc) live.emplace(mailbox.receiver().value());
  dead.kill_9();
  if (mailbox.kind() == RingKind::mpsc) {
    EXPECT_EQ(dead.wait(), 128 + SIGKILL);
    live.emplace(mailbox.receiver().value());
  }
  EXPECT_TRUE(test::wait_until(5s, [&] { return live->all().size() >= count; }))
      << live->all().size() << " of " << count << " records arrived after the consumer died";
  return live->all();
}

struct Case {
  RingKind kind;
  const char* point;
};

class ConsumerKilledHolding : public ::testing::TestWithParam<Case> {};

TEST_P(ConsumerKilledHolding, RecordIsTakenAgainMarkedRedeliveredNotLost) {
  const Case c = GetParam();
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("orders", {.kind = c.kind, .capacity = 8, .max_record = 64});
  const long rounds = test::scaled(10);
  for (long round = 1; round <= rounds; ++round) {
    SCOPED_TRACE(std::string(kind_name(c.kind)) + " round " + std::to_string(round));
    const auto index = static_cast<std::uint32_t>(round);
    test::send_marker(mailbox, index);
    Child consumer = spawn_consumer(bus, c.point);
    ASSERT_FALSE(HasFailure());

    const auto got = receive_after_death(mailbox, consumer, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].stamp, (Stamp{test::kTestProcess, index})) << "a torn or foreign record";
    EXPECT_TRUE(got[0].info.redelivered);
    EXPECT_EQ(got[0].info.deliveries, 2);
    if (std::string(c.point) == "holding") {
      EXPECT_TRUE(consumer.printed("holding " + std::to_string(got[0].info.position) + " "))
          << "redelivered a record the dead consumer did not hold: " << consumer.output();
    }
    EXPECT_EQ(mailbox.counters().redelivered, static_cast<std::uint64_t>(round));
    EXPECT_EQ(mailbox.counters().consumed, static_cast<std::uint64_t>(round));
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(
    RingFault, ConsumerKilledHolding,
    ::testing::Values(Case{RingKind::mpsc, "ring_after_take"}, Case{RingKind::mpsc, "holding"},
                      Case{RingKind::mpmc, "ring_after_take"}, Case{RingKind::mpmc, "holding"}),
    [](const auto& param_info) {
      return std::string(kind_name(param_info.param.kind)) + "_" + param_info.param.point;
    });

class ConsumerKilledAroundTake : public ::testing::TestWithParam<RingKind> {};

TEST_P(ConsumerKilledAroundTake, RecordIsDeliveredNormallyWhenKilledBeforeTheTake) {
  const Case c{GetParam(), "ring_before_take"};
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("orders", {.kind = c.kind, .capacity = 8, .max_record = 64});
  const long rounds = test::scaled(10);
  for (long round = 1; round <= rounds; ++round) {
    SCOPED_TRACE(std::string(kind_name(c.kind)) + " round " + std::to_string(round));
    const auto index = static_cast<std::uint32_t>(round);
    test::send_marker(mailbox, index);
    Child consumer = spawn_consumer(bus, "ring_before_take");
    ASSERT_FALSE(HasFailure());

    const auto got = receive_after_death(mailbox, consumer, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].stamp, (Stamp{test::kTestProcess, index}));
    EXPECT_FALSE(got[0].info.redelivered);
    EXPECT_EQ(got[0].info.deliveries, 1);
    EXPECT_EQ(mailbox.counters().redelivered, 0u);
    EXPECT_EQ(mailbox.counters().consumed, static_cast<std::uint64_t>(round));
    if (HasFailure()) return;
  }
}

TEST_P(ConsumerKilledAroundTake, RecordIsNotDeliveredTwiceWhenKilledAfterTheRelease) {
  const Case c{GetParam(), "ring_after_release"};
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("orders", {.kind = c.kind, .capacity = 8, .max_record = 64});
  const long rounds = test::scaled(10);
  for (long round = 1; round <= rounds; ++round) {
    SCOPED_TRACE(std::string(kind_name(c.kind)) + " round " + std::to_string(round));
    const auto first = static_cast<std::uint32_t>(2 * round);
    test::send_marker(mailbox, first);
    Child consumer = spawn_consumer(bus, "ring_after_release", /*release=*/true);
    ASSERT_FALSE(HasFailure());
    consumer.kill_9();
    ASSERT_EQ(consumer.wait(), 128 + SIGKILL);

    // A receiver that inherits (mpsc) or recovers (mpmc) the dead consumer's
    // entry finds no record to take over: the next one is the second marker.
    test::send_marker(mailbox, first + 1);
    auto receiver = mailbox.receiver();
    ASSERT_TRUE(receiver) << receiver.error().message();
    auto got = mailbox.kind() == RingKind::mpsc ? receiver->try_receive() : receiver->recover();
    ASSERT_TRUE(got);
    EXPECT_EQ(test::read_stamp(got->payload()), (Stamp{test::kTestProcess, first + 1}))
        << "the released record was delivered again";
    EXPECT_FALSE(got->info().redelivered);
    EXPECT_EQ(got->info().deliveries, 1);
    got->done();
    EXPECT_FALSE(receiver->recover()) << "a record was left to take over";
    EXPECT_EQ(mailbox.counters().redelivered, 0u);
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(RingFault, ConsumerKilledAroundTake,
                         ::testing::Values(RingKind::mpsc, RingKind::mpmc),
                         [](const auto& param_info) {
                           return std::string(kind_name(param_info.param));
                         });

// A receiver used to look for dead consumers only after a park that lasted a
// whole recheck interval, so a sibling woken by new records at least every
// 50 ms never took over a dead sibling's record (fixed in beab160: receivers
// recover once per interval, busy or idle). Here a producer thread sends one
// record every 10 ms (a paced load, not a synchronisation) and the sibling
// waits with long deadlines, like a server.
TEST(RingFault, MpmcSiblingUnderSteadyTrafficTakesOverDeadConsumersRecord) {
  auto bus = test::ScopedBus::create();
  auto mailbox =
      bus.mailbox("orders", {.kind = RingKind::mpmc, .capacity = 1024, .max_record = 64});
  test::send_marker(mailbox, 0);
  Child consumer = spawn_consumer(bus, "holding");
  ASSERT_FALSE(HasFailure());
  consumer.kill_9();
  ASSERT_EQ(consumer.wait(), 128 + SIGKILL);

  std::atomic<bool> stop{false};
  std::thread load([&] {
    auto next = Clock::now();
    for (std::uint32_t i = 1; !stop.load() && i < 1000; ++i) {
      next += 10ms;
      std::this_thread::sleep_until(next);
      test::send_marker(mailbox, i);
    }
  });
  auto sibling = mailbox.receiver().value();
  bool taken_over = false;
  int received = 0;
  const Deadline give_up = deadline_in(40 * kParkRecheckInterval);  // bounded: 2 s
  while (!taken_over && Clock::now() < give_up) {
    auto got = sibling.receive(deadline_in(5s), WaitMode::park);
    if (!got) break;
    ++received;
    taken_over = got->info().redelivered;
  }
  stop.store(true);
  load.join();
  EXPECT_TRUE(taken_over) << "after " << received
                          << " records the sibling still had not taken over the dead "
                             "consumer's record (counters().redelivered = "
                          << mailbox.counters().redelivered << ")";
}

}  // namespace
}  // namespace shmbus
