// Threads of one process on the state segment — the ThreadSanitizer view of
// the pin protocol (layout/state.hpp): readers pin and read 1 MiB values
// while a writer replaces them; every read is one whole version.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "shmbus/state.hpp"
#include "support/scoped_bus.hpp"
#include "support/state_pattern.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

TEST(StateThreads, ReadersSeeWholeVersionsWhileAWriterReplacesThem) {
  constexpr std::size_t kSize = 1u << 20;
  const long rounds = test::scaled(300);
  test::ScopedBus bus = test::ScopedBus::create({.state_capacity = 16 * kSize});
  State writer = bus->state(StateAccess::read_write).value();
  State reader = bus->state().value();  // shared by the reader threads (reads only)
  {
    auto tx = writer.begin_put("big", kSize).value();
    test::fill_pattern(tx.bytes(), 1);
    ASSERT_TRUE(tx.publish());
  }
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0}, bad{0}, refs{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      while (!stop.load(std::memory_order_relaxed)) {
        auto view = reader.get("big");
        if (!view) {
          bad.fetch_add(1);
          continue;
        }
        if (test::check_pattern(view->bytes()) == 0) bad.fetch_add(1);
        if (t == 0) {  // a ref resolves to the same bytes, or is stale once reclaimed
          auto again = reader.resolve(view->ref());
          if (!again || again->bytes().data() != view->bytes().data()) bad.fetch_add(1);
          refs.fetch_add(1);
        }
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (long round = 2; round <= rounds + 1; ++round) {
    auto tx = writer.begin_put("big", kSize);
    ASSERT_TRUE(tx) << tx.error().message();
    test::fill_pattern(tx->bytes(), static_cast<std::uint64_t>(round));
    ASSERT_TRUE(tx->publish());
  }
  // Let every reader finish at least one read of the last version.
  const long before = reads.load();
  EXPECT_TRUE(test::wait_until(10s, [&] { return reads.load() >= before + 3; }));  // then stop, join
  stop = true;
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  ASSERT_TRUE(writer.reclaim());
  const StateUsage usage = writer.usage();
  EXPECT_EQ(usage.retired, 0u);
  EXPECT_EQ(usage.free_bytes, usage.capacity - usage.live_bytes);
  EXPECT_EQ(test::check_pattern(reader.get("big")->bytes()), static_cast<std::uint64_t>(rounds + 1));
}

// Found in review: a get racing a writer's reclaim scan must never say
// no_such_key for a key that always has a value.
TEST(StateThreads, GetNeverMissesAKeyThatAlwaysHasAValue) {
  auto bus = test::ScopedBus::create({.state_capacity = 8u << 20});
  auto writer = bus->state(StateAccess::read_write).value();
  auto reader = bus->state().value();
  const std::vector<std::byte> value(4096, std::byte{7});
  ASSERT_TRUE(writer.put("k", value));
  std::atomic<bool> stop{false};
  std::atomic<long> missing{0}, gets{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        auto v = reader.get("k");
        gets.fetch_add(1, std::memory_order_relaxed);
        if (!v) missing.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  const long puts = test::scaled(20000);
  for (long i = 0; i < puts; ++i) ASSERT_TRUE(writer.put("k", value));
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(missing.load(), 0) << "of " << gets.load() << " gets during " << puts << " puts";
}

}  // namespace
}  // namespace shmbus
