// Wake-ups across processes: a send wakes a consumer parked in another
// process (its own mapping of the segment; the futex is keyed by the shared
// page, not the address), a parked consumer costs almost no CPU while idle,
// and a busy-polling consumer makes producers skip the wake system call.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>

#include "process/child_lines.hpp"
#include "support/shm_file.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/layout/ring.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::Child;

MailboxOptions small_mailbox(std::uint32_t capacity) {
  MailboxOptions options;
  options.capacity = capacity;
  options.max_record = 64;
  return options;
}

std::span<const std::byte> as_bytes(const std::uint64_t& word) {
  return {reinterpret_cast<const std::byte*>(&word), sizeof word};
}

// Parked consumers of a mailbox, read from its raw segment.
std::uint32_t data_waiters(const test::MappedFile& segment) {
  return detail::load_acquire(
      segment.at<layout::RingHeader>(layout::kRingHeaderOffset).data.waiters);
}

TEST(Wakeups, SendWakesAConsumerProcessParkedThroughItsOwnMapping) {
  constexpr int kRounds = 10;
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", small_mailbox(8));
  test::MappedFile raw(test::shm_path(bus.name(), "m"));
  ASSERT_TRUE(raw.ok());
  Child consumer = Child::spawn("receive", {"--bus", bus.name(), "--mailbox", "m", "--count",
                                            std::to_string(kRounds), "--echo", "1", "--wait", "park"});
  ASSERT_TRUE(test::wait_printed(consumer, "ready"));
  int woken_fast = 0;
  for (std::uint64_t i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(test::wait_until(10s, [&] { return data_waiters(raw) == 1; }))
        << "the consumer never parked; output:\n" << consumer.output();
    const auto sent_at = Clock::now();
    ASSERT_TRUE(mailbox.try_send(as_bytes(i)));
    ASSERT_TRUE(test::wait_printed(consumer, "got " + std::to_string(i), 10s));
    // Without a working wake the consumer would only find the record at its
    // own re-check, up to kParkRecheckInterval (50 ms) later.
    if (Clock::now() - sent_at < kParkRecheckInterval / 2) ++woken_fast;
  }
  ASSERT_TRUE(test::wait_printed(consumer, "done"));
  EXPECT_EQ(consumer.wait(), 0);
  EXPECT_GE(woken_fast, kRounds * 7 / 10) << "most deliveries are woken, not found at a re-check";
  // One wake call per send that found the consumer parked (all of them, but
  // for the rare send that falls into the consumer's own re-check).
  const std::uint64_t wake_calls = mailbox.counters().consumer_wake_calls;
  EXPECT_GE(wake_calls, static_cast<std::uint64_t>(kRounds * 7 / 10));
  EXPECT_LE(wake_calls, static_cast<std::uint64_t>(kRounds));
}

TEST(Wakeups, IdleParkedConsumerUsesAlmostNoCpu) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", small_mailbox(8));
  for (const char* mode : {"park", "spin_then_park"}) {
    Child idle = Child::spawn("idle_cpu", {"--bus", bus.name(), "--mailbox", "m", "--ms", "2000",
                                           "--wait", mode});
    ASSERT_TRUE(test::wait_printed(idle, "idle ", 20s));
    EXPECT_EQ(idle.wait(), 0);
    std::istringstream fields(test::line_after(idle, "idle "));
    std::string result, cpu_label, wall_label;
    long cpu_us = -1, wall_ms = -1;
    fields >> result >> cpu_label >> cpu_us >> wall_label >> wall_ms;
    EXPECT_EQ(result, "empty") << mode;
    EXPECT_GE(wall_ms, 2000) << mode;
    EXPECT_GE(cpu_us, 0) << mode;
    EXPECT_LT(cpu_us, 50'000) << mode << ": a 2 s idle receive should cost well under 100 ms of CPU";
    RecordProperty(std::string("idle_cpu_us_") + mode, static_cast<int>(cpu_us));
  }
}

TEST(Wakeups, BusyPollConsumerReceivesTenThousandRecordsWithoutAWakeCall) {
  constexpr std::uint64_t kRecords = 10'000;
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", small_mailbox(256));
  Child consumer = Child::spawn("receive", {"--bus", bus.name(), "--mailbox", "m", "--count",
                                            std::to_string(kRecords), "--wait", "busy_poll"});
  ASSERT_TRUE(test::wait_printed(consumer, "ready"));
  for (std::uint64_t i = 0; i < kRecords; ++i) {
    ASSERT_TRUE(mailbox.send(as_bytes(i), deadline_in(30s), {}, WaitMode::spin_then_park))
        << i << "\n" << consumer.output();
  }
  ASSERT_TRUE(test::wait_printed(consumer, "done", 30s));
  EXPECT_EQ(consumer.wait(), 0);
  const MailboxCounters counters = mailbox.counters();
  EXPECT_EQ(counters.consumed, kRecords);
  EXPECT_EQ(counters.consumer_wake_calls, 0u) << "nobody parked, so no producer called futex_wake";
}

}  // namespace
}  // namespace shmbus
