// Many producer processes, one mailbox: every record arrives exactly once,
// intact, and in each producer's order (the iceoryx stress technique:
// per-producer sequence numbers, checksums, completeness checks). More
// processes than cores here, so waiters park and senders block for room.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "process/child_lines.hpp"
#include "process/stress_record.hpp"
#include "shmbus/bus.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::Child;
namespace stress = test::stress;

constexpr int kProducers = 4;
constexpr auto kProducerWait = "park";  // more processes than cores: never spin

MailboxOptions stress_mailbox(layout::RingKind kind) {
  MailboxOptions options;
  options.kind = kind;
  options.capacity = 1024;
  options.max_record = stress::kMaxRecord;
  return options;
}

std::vector<Child> spawn_producers(const std::string& bus, long count) {
  std::vector<Child> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(Child::spawn(
        "produce", {"--bus", bus, "--mailbox", "m", "--producer", std::to_string(p), "--count",
                    std::to_string(count), "--wait", kProducerWait}));
  }
  return producers;
}

std::string outputs_of(std::vector<Child>& children) {
  std::string all;
  for (auto& child : children) all += "[" + std::to_string(child.pid()) + "] " + child.output() + "\n";
  return all;
}

TEST(RingStress, ProducerProcessesIntoOneMpscMailboxDeliverEachRecordOnceIntactInOrder) {
  const long n = test::scaled(1'000'000);
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", stress_mailbox(layout::RingKind::mpsc));
  auto receiver = mailbox.receiver().value();
  auto producers = spawn_producers(bus.name(), n);

  std::array<std::uint64_t, kProducers> next{};
  std::array<std::uint32_t, kProducers> sender{};
  const std::uint64_t total = static_cast<std::uint64_t>(n) * kProducers;
  for (std::uint64_t received = 0; received < total; ++received) {
    auto delivery = receiver.receive(deadline_in(30s), WaitMode::spin_then_park);
    ASSERT_TRUE(delivery) << "after " << received << " records: " << to_string(delivery.error())
                          << "\n" << outputs_of(producers);
    stress::RecordHead head{};
    const RecordInfo& info = delivery->info();
    if (!stress::verify(delivery->payload(), head) || head.producer >= kProducers ||
        head.sequence != next[head.producer] || info.sequence != head.sequence ||
        info.redelivered || info.deliveries != 1 ||
        (sender[head.producer] != 0 && sender[head.producer] != info.sender.value)) {
      FAIL() << "record " << received << ": producer " << head.producer << " sequence "
             << head.sequence << " (expected " << next[head.producer % kProducers]
             << "), intact " << stress::verify(delivery->payload(), head) << ", ring sequence "
             << info.sequence << ", deliveries " << int{info.deliveries};
    }
    sender[head.producer] = info.sender.value;
    ++next[head.producer];
  }
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(next[p], static_cast<std::uint64_t>(n)) << p;
  for (auto& producer : producers) {
    ASSERT_TRUE(test::wait_printed(producer, "done"));
    EXPECT_EQ(producer.wait(), 0) << producer.output();
  }
  EXPECT_EQ(receiver.try_receive().error(), Errc::empty) << "nothing beyond what was sent";
  const MailboxCounters counters = mailbox.counters();
  EXPECT_EQ(counters.consumed, total);
  EXPECT_EQ(counters.claimed, total);
  EXPECT_EQ(counters.sender_aborted, 0u);
  EXPECT_EQ(counters.bad_messages, 0u);
  EXPECT_EQ(counters.redelivered, 0u);
}

TEST(RingStress, ProducerProcessesIntoAnMpmcMailboxReachTwoConsumerProcessesExactlyOnce) {
  constexpr int kConsumers = 2;
  const long n = test::scaled(1'000'000);
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", stress_mailbox(layout::RingKind::mpmc));
  std::vector<Child> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.push_back(
        Child::spawn("consume_stats", {"--bus", bus.name(), "--mailbox", "m", "--wait", "park"}));
  }
  for (auto& consumer : consumers) ASSERT_TRUE(test::wait_printed(consumer, "ready"));
  auto producers = spawn_producers(bus.name(), n);
  for (auto& producer : producers) {
    ASSERT_TRUE(test::wait_printed(producer, "done", 170s)) << outputs_of(consumers);
    EXPECT_EQ(producer.wait(), 0) << producer.output();
  }
  // One stop record per consumer, behind every data record: a consumer that
  // took a stop receives nothing more, so the other stop reaches the other.
  for (int c = 0; c < kConsumers; ++c) {
    SendOptions stop;
    stop.type = stress::kStopType;
    ASSERT_TRUE(mailbox.send({}, deadline_in(30s), stop, WaitMode::park));
  }
  std::array<stress::Totals, kProducers> totals{};
  for (auto& consumer : consumers) {
    ASSERT_TRUE(test::wait_printed(consumer, "done ", 60s));
    EXPECT_EQ(consumer.wait(), 0) << consumer.output();
    for (const std::string& line : test::lines_after(consumer, "stats ")) {
      std::istringstream fields(line);
      std::uint32_t producer = 0;
      stress::Totals seen;
      fields >> producer >> seen.count >> seen.sum >> seen.sum_squares;
      ASSERT_LT(producer, static_cast<std::uint32_t>(kProducers)) << line;
      totals[producer].count += seen.count;
      totals[producer].sum += seen.sum;
      totals[producer].sum_squares += seen.sum_squares;
    }
  }
  const stress::Totals all = stress::Totals::of_all(static_cast<std::uint64_t>(n));
  for (int p = 0; p < kProducers; ++p) {
    EXPECT_EQ(totals[p].count, all.count) << "producer " << p;
    EXPECT_EQ(totals[p].sum, all.sum) << "producer " << p;
    EXPECT_EQ(totals[p].sum_squares, all.sum_squares) << "producer " << p;
  }
  const MailboxCounters counters = mailbox.counters();
  EXPECT_EQ(counters.consumed, static_cast<std::uint64_t>(n) * kProducers + kConsumers);
  EXPECT_EQ(counters.sender_aborted, 0u);
  EXPECT_EQ(counters.bad_messages, 0u);
  EXPECT_EQ(counters.redelivered, 0u);
  EXPECT_EQ(mailbox.depth(), 0u);
}

}  // namespace
}  // namespace shmbus
