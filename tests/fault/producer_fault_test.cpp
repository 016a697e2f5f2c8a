// Producers killed with SIGKILL inside claim/commit, at named and at random
// points: the consumer never hangs, every committed record arrives once, in
// order and intact, and a claim is counted in sender_aborted exactly when its
// producer died before commit.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <random>
#include <string>

#include "fault/collector.hpp"
#include "fault/fault_support.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::Child;

constexpr std::size_t kMaxRecord = 512;

[[nodiscard]] bool dies_holding_claim(const std::string& point) {
  return point == "ring_after_claim" || point == "ring_after_tail" || point == "ring_before_commit";
}

std::vector<std::string> produce_args(const test::ScopedBus& bus, std::uint32_t id, long count) {
  return {"--bus",      bus.name(),
          "--mailbox",  "orders",
          "--id",       std::to_string(id),
          "--count",    std::to_string(count),
          "--max-size", std::to_string(kMaxRecord)};
}

// What every round ends with: the marker sent after the producer's death has
// arrived, the producer's committed records arrived exactly once, in order,
// and every claim is either consumed or counted as aborted.
void expect_round_complete(Mailbox& mailbox, test::Collector& collector, std::uint32_t id,
                           std::size_t committed, std::uint64_t aborted) {
  ASSERT_TRUE(test::wait_until(10s, [&] {
    return collector.has({test::kTestProcess, id});
  })) << "the consumer hangs: the marker sent after the producer died never arrived";
  EXPECT_TRUE(test::exactly_in_order(collector.from(id), committed));
  const MailboxCounters counters = mailbox.counters();
  EXPECT_EQ(counters.sender_aborted, aborted);
  EXPECT_EQ(counters.claimed, counters.consumed + counters.sender_aborted);
  EXPECT_EQ(collector.torn(), 0u);
}

class ProducerKilledAt : public ::testing::TestWithParam<const char*> {};

TEST_P(ProducerKilledAt, ConsumerSkipsOnlyAnUncommittedClaimAndLosesNothing) {
  const std::string point = GetParam();
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("orders", {.capacity = 16, .max_record = kMaxRecord});
  test::Collector collector(mailbox.receiver().value());

  const long rounds = test::scaled(20);
  std::uint64_t aborted = 0;
  for (long round = 1; round <= rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round) + ", killed at " + point);
    const auto id = static_cast<std::uint32_t>(round);
    const long before = round % 3;  // records committed before the one killed in flight
    auto args = produce_args(bus, id, before + 2);
    args.insert(args.end(), {"--kill-at-record", std::to_string(before), "--kill-point", point});
    Child producer = Child::spawn("fault_produce", args);
    ASSERT_TRUE(test::wait_until(10s, [&] { return producer.reached(point); }))
        << producer.output();

    // Claimed behind the stopped producer's record: a consumer that cannot get
    // past a dead claim never sees it.
    test::send_marker(mailbox, id);
    producer.kill_9();
    ASSERT_EQ(producer.wait(), 128 + SIGKILL);

    if (dies_holding_claim(point)) ++aborted;
    ASSERT_TRUE(test::wait_until(10s, [&] { return mailbox.counters().sender_aborted == aborted; }))
        << "sender_aborted is " << mailbox.counters().sender_aborted << ", expected " << aborted;
    const std::size_t committed =
        static_cast<std::size_t>(before) + (dies_holding_claim(point) ? 0 : 1);
    expect_round_complete(mailbox, collector, id, committed, aborted);
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(RingFault, ProducerKilledAt,
                         ::testing::Values("ring_after_claim", "ring_after_tail",
                                           "ring_before_commit", "ring_after_commit"),
                         [](const auto& param_info) { return std::string(param_info.param); });

// The tail is a hint moved after the claim CAS: a producer killed in between
// leaves it one behind. counters().claimed still counts that claim, before
// and after the consumer skips it.
TEST(RingFault, ClaimedCountsAClaimWhoseProducerDiedBeforeMovingTheTail) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("orders", {.capacity = 16, .max_record = kMaxRecord});
  test::Collector collector(mailbox.receiver().value());
  auto args = produce_args(bus, 1, 1);
  args.insert(args.end(), {"--stop-at", "ring_after_claim"});
  Child producer = Child::spawn("fault_produce", args);
  ASSERT_TRUE(test::wait_until(10s, [&] { return producer.reached("ring_after_claim"); }));
  producer.kill_9();
  ASSERT_EQ(producer.wait(), 128 + SIGKILL);
  ASSERT_TRUE(test::wait_until(10s, [&] { return mailbox.counters().sender_aborted == 1; }));
  const MailboxCounters counters = mailbox.counters();
  EXPECT_EQ(counters.claimed, 1u) << "the dead producer's claim is not counted";
  EXPECT_EQ(counters.claimed, counters.consumed + counters.sender_aborted);
}

TEST(RingFault, ProducerKilledAtRandomHookPassageLosesNoCommittedRecord) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("orders", {.capacity = 16, .max_record = kMaxRecord});
  test::Collector collector(mailbox.receiver().value());
  const std::uint64_t seed = test::test_seed();
  std::mt19937_64 random(seed);

  constexpr long kRecords = 24;
  // Kill points a producer passes: 2 while joining the process table, 4 per send.
  constexpr long kPassages = 2 + 4 * kRecords;
  const long rounds = test::scaled(200);
  std::uint64_t aborted = 0;
  for (long round = 1; round <= rounds; ++round) {
    const long stop_after = std::uniform_int_distribution<long>(1, kPassages)(random);
    SCOPED_TRACE("SHMBUS_TEST_SEED=" + std::to_string(seed) + " round " + std::to_string(round) +
                 " --stop-after " + std::to_string(stop_after));
    const auto id = static_cast<std::uint32_t>(round);
    auto args = produce_args(bus, id, kRecords);
    args.insert(args.end(), {"--stop-after", std::to_string(stop_after)});
    Child producer = Child::spawn("fault_produce", args);
    ASSERT_TRUE(test::wait_until(10s, [&] {
      return producer.printed("reached ") || producer.printed("done");
    })) << producer.output();
    producer.kill_9();
    ASSERT_GE(producer.wait(), 0);

    const std::string point = test::reached_point(producer.output());
    const auto sent = test::lines_after(producer.output(), "sent ").size();
    if (dies_holding_claim(point)) ++aborted;
    test::send_marker(mailbox, id);
    expect_round_complete(mailbox, collector, id, sent + (point == "ring_after_commit" ? 1 : 0),
                          aborted);
    if (HasFailure()) return;
  }
}

TEST(RingFault, ProducerKilledAtRandomMomentLosesNoCommittedRecord) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("orders", {.capacity = 16, .max_record = kMaxRecord});
  test::Collector collector(mailbox.receiver().value());
  const std::uint64_t seed = test::test_seed();
  std::mt19937_64 random(seed);

  constexpr long kRecords = 1000;
  const long rounds = test::scaled(200);
  std::uint64_t aborted = 0;
  long mid_stream = 0;  // rounds killed after some records and before the last
  long before_first = 0;
  for (long round = 1; round <= rounds; ++round) {
    const auto kill_after = std::uniform_int_distribution<std::size_t>(0, kRecords / 2)(random);
    SCOPED_TRACE("SHMBUS_TEST_SEED=" + std::to_string(seed) + " round " + std::to_string(round) +
                 " killed after " + std::to_string(kill_after) + " received");
    const auto id = static_cast<std::uint32_t>(round);
    Child producer = Child::spawn("fault_produce", produce_args(bus, id, kRecords));
    ASSERT_TRUE(test::wait_until(10s, [&] {
      return collector.count_from(id) >= kill_after || producer.printed("done");
    })) << producer.output();
    producer.kill_9();
    ASSERT_GE(producer.wait(), 0);

    // Said "sent i" after send(i) returned: `sent` records were committed for
    // sure, and at most one more (committed, then killed before saying so).
    const auto sent = test::lines_after(producer.output(), "sent ").size();
    if (sent > 0 && sent < kRecords) ++mid_stream;
    if (sent == 0) ++before_first;
    test::send_marker(mailbox, id);
    ASSERT_TRUE(test::wait_until(10s, [&] {
      return collector.has({test::kTestProcess, id});
    })) << "the consumer hangs: the marker sent after the producer died never arrived";
    const std::size_t arrived = collector.count_from(id);
    const std::uint64_t aborted_now = mailbox.counters().sender_aborted - aborted;
    EXPECT_TRUE(arrived == sent || arrived == sent + 1)
        << arrived << " arrived, " << sent << " sent";
    EXPECT_LE(aborted_now, 1u);
    EXPECT_LE(arrived + aborted_now, sent + 1) << "more claims than the producer made";
    aborted += aborted_now;
    expect_round_complete(mailbox, collector, id, arrived, aborted);
    if (HasFailure()) return;
  }
  std::printf(
      "%ld rounds: %ld killed before the first send, %ld mid-stream, %llu with a claim open\n",
      rounds, before_first, mid_stream, static_cast<unsigned long long>(aborted));
}

}  // namespace
}  // namespace shmbus
