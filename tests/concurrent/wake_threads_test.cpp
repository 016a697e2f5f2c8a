// Wake-ups between threads: a parked consumer is woken by a producer's
// commit, a producer parked on a full ring by a consumer's release. The
// low-level tests park through the private Ring with a one-minute timeout, so
// a lost wake-up (a broken Dekker pair) cannot hide behind the 50 ms recheck
// of the public receive and send: it fails the test's bounded wait.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "fault/stamped_record.hpp"
#include "ring/ring.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/detail/atomic.hpp"
#include "support/ring_access.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"
#include "wait/futex.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

using test::ring_of;

// One park of the consumer of an mpsc mailbox, whose only entry is 0.
void park_once(detail::Ring& ring, Deadline until) { ring.wait_for_data(/*entry=*/0, until); }

std::uint32_t waiters(const layout::WakeLine& line) { return detail::load_seq_cst(line.waiters); }

std::vector<std::byte> record(std::uint32_t index) {
  std::vector<std::byte> payload(test::stamped_size({1, index}, 64));
  test::write_stamp(payload, {1, index});
  return payload;
}

// How the test thread times its side against the parking thread: after it
// parked, racing its waiters increment, or before it even looked.
enum class Timing { after_park, racing, before };

Timing random_timing(std::mt19937& random) {
  return static_cast<Timing>(std::uniform_int_distribution<int>(0, 2)(random));
}

void spin(std::mt19937& random) {
  const int n = std::uniform_int_distribution<int>(0, 2000)(random);
  for (int i = 0; i < n; ++i) detail::cpu_relax();
}

TEST(WakeThreads, ParkedConsumerThreadIsWokenByAProducerThread) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 8, .max_record = 64});
  layout::WakeLine& data = ring_of(mailbox).header().data;
  const long rounds = test::scaled(2000);
  std::atomic<long> received{0};
  std::atomic<bool> failed{false};
  std::thread consumer([&] {
    auto receiver = mailbox.receiver().value();
    for (long i = 0; i < rounds && !failed.load(); ++i) {
      auto delivery = receiver.receive(deadline_in(10s), WaitMode::park);
      if (!delivery || test::read_stamp(delivery->payload()) != test::Stamp{1, std::uint32_t(i)}) {
        failed.store(true);
        return;
      }
      delivery->done();
      received.fetch_add(1);
    }
  });
  for (long i = 0; i < rounds && !failed.load(); ++i) {
    ASSERT_TRUE(test::wait_until(5s, [&] { return waiters(data) > 0; })) << "consumer never parked";
    ASSERT_TRUE(mailbox.try_send(record(static_cast<std::uint32_t>(i))));
    ASSERT_TRUE(test::wait_until(5s, [&] { return received.load() == i + 1; }))
        << "round " << i << ": the parked consumer was not woken";
  }
  consumer.join();
  EXPECT_FALSE(failed.load());
  // Each send found the consumer parked (but for the rare send that lands in
  // its 50 ms re-check window): the wake-ups came from the producer.
  EXPECT_GE(mailbox.counters().consumer_wake_calls, static_cast<std::uint64_t>(rounds / 2));
}

TEST(WakeThreads, ConsumerParkingWhileAProducerCommitsNeverMissesTheWakeUp) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 8, .max_record = 64});
  detail::Ring& ring = ring_of(mailbox);
  std::mt19937 random(12345);
  const long rounds = test::scaled(20000);
  std::atomic<long> received{0};
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    auto receiver = mailbox.receiver().value();
    while (!stop.load()) {
      // One long park per call: only a wake-up (or the minute) ends it.
      while (!ring.data_ready() && !stop.load()) park_once(ring, deadline_in(60s));
      if (auto delivery = receiver.try_receive()) {
        delivery->done();
        received.fetch_add(1);
      }
    }
  });
  for (long i = 0; i < rounds; ++i) {
    switch (random_timing(random)) {
      case Timing::after_park:
        ASSERT_TRUE(test::wait_until(5s, [&] { return waiters(ring.header().data) > 0; }));
        break;
      case Timing::racing:
        spin(random);
        break;
      case Timing::before:
        break;
    }
    ASSERT_TRUE(mailbox.try_send(record(static_cast<std::uint32_t>(i))));
    const bool woken = test::wait_until(5s, [&] { return received.load() == i + 1; });
    if (!woken) {
      stop.store(true);
      ASSERT_TRUE(mailbox.try_send(record(0)));  // a second commit frees the parked thread
      consumer.join();
      FAIL() << "round " << i << ": the consumer missed the wake-up of a commit";
    }
  }
  stop.store(true);
  ASSERT_TRUE(mailbox.try_send(record(0)));
  consumer.join();
}

TEST(WakeThreads, ProducerParkedOnAFullRingIsWokenByTheRelease) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 2, .max_record = 64});
  detail::Ring& ring = ring_of(mailbox);
  auto receiver = mailbox.receiver().value();
  std::mt19937 random(54321);
  const long rounds = test::scaled(20000);
  while (mailbox.try_send(record(0))) {
  }
  std::atomic<long> sent{0};
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    for (long i = 1; i <= rounds && !stop.load(); ++i) {
      // One long park per call: only a release's wake-up (or the minute) ends it.
      Expected<Claim> claim = mailbox.try_claim(32);
      while (!claim && !stop.load()) {
        ring.wait_for_room(deadline_in(60s), WaitMode::park);
        claim = mailbox.try_claim(32);
      }
      if (!claim) return;
      claim->commit();
      sent.fetch_add(1);
    }
  });
  for (long i = 1; i <= rounds; ++i) {
    switch (random_timing(random)) {
      case Timing::after_park:
        ASSERT_TRUE(test::wait_until(5s, [&] { return waiters(ring.header().room) > 0; }));
        break;
      case Timing::racing:
        spin(random);
        break;
      case Timing::before:
        break;
    }
    auto delivery = receiver.try_receive();  // the ring is full: a record is there
    ASSERT_TRUE(delivery) << "round " << i;
    delivery->done();
    const bool woken = test::wait_until(5s, [&] { return sent.load() == i; });
    if (!woken) {
      stop.store(true);
      if (auto more = receiver.try_receive()) more->done();  // a second release frees it
      producer.join();
      FAIL() << "round " << i << ": the producer missed the wake-up of a release";
    }
  }
  producer.join();
  EXPECT_EQ(mailbox.counters().consumed, static_cast<std::uint64_t>(rounds));
  EXPECT_EQ(mailbox.depth(), 2u) << "the ring is full again, as before the first round";
}

}  // namespace
}  // namespace shmbus
