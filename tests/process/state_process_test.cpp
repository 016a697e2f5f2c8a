// The state segment across real processes (issue 5): readers see whole
// versions while a writer replaces them, old versions are reclaimed (also
// those a killed reader pinned), and a reader cannot write the segment.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "shmbus/state.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/state_pattern.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::Child;

std::vector<std::byte> pattern_value(std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> value(size);
  test::fill_pattern(value, seed);
  return value;
}

// Full scale: 64 MiB × 200; under the sanitizers' smaller scale: 4 MiB × 20.
bool full_scale() {
  const char* scale = std::getenv("SHMBUS_STRESS_SCALE");
  return scale == nullptr || std::atof(scale) >= 1.0;
}

// Publishes a new version of `key`, waiting (bounded) while pinned old
// versions fill the segment.
StateRef put_pattern(State& state, const std::string& key, std::size_t size, std::uint64_t seed) {
  std::optional<PutTransaction> tx;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    auto begun = state.begin_put(key, size);
    if (begun) tx.emplace(std::move(*begun));
    EXPECT_TRUE(begun || begun.error().code == Errc::state_full) << begun.error().message();
    return begun.has_value();
  })) << "the writer never found room: " << state.begin_put(key, size).error().message();
  if (!tx) return {};
  test::fill_pattern(tx->bytes(), seed);
  auto ref = tx->publish();
  EXPECT_TRUE(ref) << ref.error().message();
  return ref.value_or(StateRef{});
}

TEST(StateProcess, FourReadersSeeWholeVersionsWhileAWriterReplacesThem) {
  const std::size_t size = full_scale() ? 64u << 20 : 4u << 20;
  const int rounds = full_scale() ? 200 : 20;
  test::ScopedBus bus = test::ScopedBus::create({.state_capacity = 8 * size + (1u << 20)});
  State state = bus->state(StateAccess::read_write).value();
  put_pattern(state, "big", size, 1);

  std::vector<Child> readers;
  for (int i = 0; i < 4; ++i) {
    readers.push_back(Child::spawn("state_read_loop", {"--bus", bus.name(), "--key", "big"}));
  }
  for (auto& reader : readers) {
    ASSERT_TRUE(test::wait_until(10s, [&] { return reader.printed("ready"); })) << reader.output();
  }
  for (int round = 2; round <= rounds + 1; ++round) {
    put_pattern(state, "big", size, static_cast<std::uint64_t>(round));
    const StateUsage usage = state.usage();
    ASSERT_LE(usage.live_bytes + usage.retired_bytes + usage.writing_bytes, usage.capacity);
  }
  ASSERT_TRUE(state.put("stop", pattern_value(64, 1)));
  for (auto& reader : readers) {
    ASSERT_EQ(reader.wait(30s), 0) << reader.output();
    EXPECT_NE(reader.output().find(" bad=0"), std::string::npos) << reader.output();
    EXPECT_EQ(reader.output().find("reads=0 "), std::string::npos) << reader.output();
  }
  // At rest: every superseded version was reclaimed.
  ASSERT_TRUE(state.reclaim());
  const StateUsage usage = state.usage();
  EXPECT_EQ(usage.live, 2u);
  EXPECT_EQ(usage.retired, 0u);
  EXPECT_EQ(usage.writing, 0u);
  EXPECT_EQ(usage.free_bytes, usage.capacity - usage.live_bytes);
  EXPECT_GE(usage.reclaimed, static_cast<std::uint64_t>(rounds));
  EXPECT_EQ(test::check_pattern(state.get("big")->bytes()), static_cast<std::uint64_t>(rounds + 1));
}

TEST(StateProcess, ReaderKilledWhilePinningDoesNotLeakItsVersion) {
  test::ScopedBus bus = test::ScopedBus::create({.state_capacity = 1u << 20});
  State state = bus->state(StateAccess::read_write).value();
  ASSERT_TRUE(state.put("k", pattern_value(4096, 1)));
  Child reader = Child::spawn("state_pin", {"--bus", bus.name(), "--key", "k"});
  ASSERT_TRUE(test::wait_until(10s, [&] { return reader.printed("pinned"); })) << reader.output();

  ASSERT_TRUE(state.put("k", pattern_value(4096, 2)));
  ASSERT_TRUE(state.reclaim());
  EXPECT_EQ(state.usage().retired, 1u) << "a live reader's pin holds the old version";

  reader.kill_9();
  reader.wait();
  bus->reclaim_dead();  // clears the dead reader's pin line
  auto freed = state.reclaim();
  ASSERT_TRUE(freed);
  EXPECT_EQ(*freed, 1u);
  const StateUsage usage = state.usage();
  EXPECT_EQ(usage.retired, 0u);
  EXPECT_EQ(usage.free_bytes, usage.capacity - usage.live_bytes);
}

TEST(StateProcess, DeadReadersPinIsIgnoredEvenBeforeItsSlotIsReaped) {
  test::ScopedBus bus = test::ScopedBus::create({.state_capacity = 1u << 20});
  State state = bus->state(StateAccess::read_write).value();
  ASSERT_TRUE(state.put("k", pattern_value(4096, 1)));
  Child reader = Child::spawn("state_pin", {"--bus", bus.name(), "--key", "k"});
  ASSERT_TRUE(test::wait_until(10s, [&] { return reader.printed("pinned"); })) << reader.output();
  ASSERT_TRUE(state.put("k", pattern_value(4096, 2)));
  reader.kill_9();
  reader.wait();
  auto freed = state.reclaim();  // no reclaim_dead: the kernel says the owner is dead
  ASSERT_TRUE(freed);
  EXPECT_EQ(*freed, 1u);
}

// Sets the sanitizers' options for the children spawned in its scope (they
// read them at start) and restores them after.
class ChildSanitizerOptions {
 public:
  explicit ChildSanitizerOptions(const char* extra) {
    for (const char* name : {"ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"}) {
      const char* old = std::getenv(name);
      saved_.push_back({name, old ? std::optional<std::string>(old) : std::nullopt});
      const std::string value = old ? std::string(old) + ":" + extra : std::string(extra);
      ::setenv(name, value.c_str(), 1);
    }
  }
  ~ChildSanitizerOptions() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name, value->c_str(), 1);
      } else {
        ::unsetenv(name);
      }
    }
  }

 private:
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

TEST(StateProcess, ReaderThatWritesTheSegmentDiesBySigsegvAndTheValueIsUnchanged) {
  test::ScopedBus bus = test::ScopedBus::create({.state_capacity = 1u << 20});
  State state = bus->state(StateAccess::read_write).value();
  ASSERT_TRUE(state.put("k", pattern_value(4096, 7)));
  std::optional<Child> scribbler;
  {
    ChildSanitizerOptions no_segv_handler("handle_segv=0");
    scribbler.emplace(Child::spawn("state_scribble", {"--bus", bus.name(), "--key", "k"}));
  }
  EXPECT_EQ(scribbler->wait(30s), 128 + SIGSEGV) << scribbler->output();
  EXPECT_TRUE(scribbler->printed("writing")) << scribbler->output();
  EXPECT_EQ(test::check_pattern(state.get("k")->bytes()), 7u);
}

}  // namespace
}  // namespace shmbus
