// Producer and consumer threads of one process on one mailbox (the
// ThreadSanitizer workhorse): every record arrives exactly once, intact, and
// in its producer's order (per consumer, for mpmc), also when producers block
// on a full ring.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fault/stamped_record.hpp"
#include "shmbus/bus.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using layout::RingKind;
using test::Stamp;

// What the threads saw; checked by the test thread once they are joined.
class Ledger {
 public:
  Ledger(std::uint32_t producers, std::uint32_t per_producer)
      : per_producer_(per_producer), seen_(std::size_t{producers} * per_producer) {}

  // Records one delivery; `last` is the calling consumer's latest index per producer.
  void record(std::span<const std::byte> payload, std::vector<long>& last, bool strictly_next) {
    const auto stamp = test::read_stamp(payload);
    if (!stamp || stamp->producer >= last.size() || stamp->index >= per_producer_) {
      fail("a torn or foreign record of " + std::to_string(payload.size()) + " bytes");
      return;
    }
    const long previous = last[stamp->producer];
    const long index = stamp->index;
    if (strictly_next ? index != previous + 1 : index <= previous) {
      fail("producer " + std::to_string(stamp->producer) + ": record " + std::to_string(index) +
           " after " + std::to_string(previous));
    }
    last[stamp->producer] = index;
    seen_[std::size_t{stamp->producer} * per_producer_ + stamp->index].fetch_add(1);
    received_.fetch_add(1);
  }
  void fail(const std::string& what) {
    failed_.store(true);
    std::lock_guard lock(mutex_);
    if (errors_.size() < 10) errors_.push_back(what);
  }

  [[nodiscard]] std::size_t received() const { return received_.load(); }
  // Whether the consumers should keep receiving.
  [[nodiscard]] bool open() const { return received_.load() < seen_.size() && !failed_.load(); }
  [[nodiscard]] std::size_t expected() const { return seen_.size(); }
  [[nodiscard]] std::vector<std::string> errors() const {
    std::lock_guard lock(mutex_);
    return errors_;
  }
  // Records delivered other than exactly once.
  [[nodiscard]] std::size_t not_exactly_once() const {
    std::size_t bad = 0;
    for (const auto& count : seen_) bad += count.load() != 1 ? 1 : 0;
    return bad;
  }

 private:
  std::uint32_t per_producer_;
  std::vector<std::atomic<std::uint8_t>> seen_;
  std::atomic<std::size_t> received_{0};
  std::atomic<bool> failed_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> errors_;
};

struct StressShape {
  RingKind kind;
  std::uint32_t capacity;
  std::uint32_t producers;
  std::uint32_t consumers;
  long per_producer;
  WaitMode mode;
};

// Runs the producer and consumer threads of `shape` over one mailbox and
// returns its counters; the ledger holds what the consumers saw.
MailboxCounters run_stress(const StressShape& shape, Ledger& ledger) {
  auto bus = test::ScopedBus::create();
  constexpr std::size_t kMaxRecord = 256;
  auto mailbox = bus.mailbox(
      "stress", {.kind = shape.kind, .capacity = shape.capacity, .max_record = kMaxRecord});
  const Deadline give_up = deadline_in(90s);  // bounds every wait of the threads

  std::vector<std::thread> threads;
  for (std::uint32_t c = 0; c < shape.consumers; ++c) {
    threads.emplace_back([&] {
      auto receiver = mailbox.receiver();
      if (!receiver) return ledger.fail("receiver: " + receiver.error().message());
      std::vector<long> last(shape.producers, -1);
      while (ledger.open() && Clock::now() < give_up) {
        auto delivery = receiver->receive(std::min(give_up, deadline_in(100ms)), shape.mode);
        if (delivery) ledger.record(delivery->payload(), last, shape.consumers == 1);
      }
    });
  }
  // Producers share one handle: many threads may send through one Mailbox.
  for (std::uint32_t p = 0; p < shape.producers; ++p) {
    threads.emplace_back([&, p] {
      std::vector<std::byte> buffer(kMaxRecord);
      for (long i = 0; i < shape.per_producer; ++i) {
        const Stamp stamp{p, static_cast<std::uint32_t>(i)};
        const std::span<std::byte> payload(buffer.data(), test::stamped_size(stamp, kMaxRecord));
        test::write_stamp(payload, stamp);
        auto sent = mailbox.send(payload, give_up, {}, shape.mode);
        if (!sent) {
          return ledger.fail("producer " + std::to_string(p) + " record " + std::to_string(i) +
                             ": " + to_string(sent.error()));
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  return mailbox.counters();
}

void expect_exactly_once_in_order(const Ledger& ledger, const MailboxCounters& counters) {
  for (const auto& error : ledger.errors()) ADD_FAILURE() << error;
  EXPECT_EQ(ledger.received(), ledger.expected());
  EXPECT_EQ(ledger.not_exactly_once(), 0u) << "records lost or duplicated";
  EXPECT_EQ(counters.consumed, ledger.expected());
  EXPECT_EQ(counters.claimed, ledger.expected());
  EXPECT_EQ(counters.sender_aborted, 0u);
  EXPECT_EQ(counters.redelivered, 0u);
  EXPECT_EQ(counters.bad_messages, 0u);
  EXPECT_EQ(counters.full_refusals, 0u) << "a blocking send gave up";
}

TEST(RingThreads, FourProducersOneMpscConsumerGetEveryRecordOnceIntactInProducerOrder) {
  const StressShape shape{RingKind::mpsc,          256, 4, 1, test::scaled(200000),
                          WaitMode::spin_then_park};
  Ledger ledger(shape.producers, static_cast<std::uint32_t>(shape.per_producer));
  const MailboxCounters counters = run_stress(shape, ledger);
  expect_exactly_once_in_order(ledger, counters);
}

TEST(RingThreads, FourProducersTwoMpmcConsumersGetEveryRecordExactlyOnceInProducerOrder) {
  const StressShape shape{RingKind::mpmc,          256, 4, 2, test::scaled(200000),
                          WaitMode::spin_then_park};
  Ledger ledger(shape.producers, static_cast<std::uint32_t>(shape.per_producer));
  const MailboxCounters counters = run_stress(shape, ledger);
  expect_exactly_once_in_order(ledger, counters);
}

TEST(RingThreads, ParkedProducersOnAFullRingAreWokenAndLoseNothing) {
  // Four records of room for four producers: most sends find the ring full
  // and park until the consumer frees a cell.
  const StressShape shape{RingKind::mpsc, 4, 4, 1, test::scaled(50000), WaitMode::park};
  Ledger ledger(shape.producers, static_cast<std::uint32_t>(shape.per_producer));
  const MailboxCounters counters = run_stress(shape, ledger);
  expect_exactly_once_in_order(ledger, counters);
  EXPECT_GT(counters.producer_wake_calls, 0u) << "no producer ever parked on the full ring";
}

TEST(RingThreads, FourProducersTwoMpmcConsumersThatParkLoseNothing) {
  const StressShape shape{RingKind::mpmc, 8, 4, 2, test::scaled(50000), WaitMode::park};
  Ledger ledger(shape.producers, static_cast<std::uint32_t>(shape.per_producer));
  const MailboxCounters counters = run_stress(shape, ledger);
  expect_exactly_once_in_order(ledger, counters);
}

}  // namespace
}  // namespace shmbus
