// Writers of the state segment killed with SIGKILL (layout/state.hpp,
// "Crash:"): in the middle of a put (after begin_put, before publish) and at
// each step inside the writers' lock. The next writer proceeds, a value that
// was not published never becomes visible, and the space comes back.
#include <gtest/gtest.h>

#include <optional>
#include <string>
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

constexpr std::uint64_t kOldSeed = 1;
constexpr std::uint64_t kDeadSeed = 99;  // the killed writer's value

std::vector<std::byte> pattern_value(std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> value(size);
  test::fill_pattern(value, seed);
  return value;
}

// Runs `state_put` of key "k" (seed kDeadSeed) until the kill point, then kills it.
void kill_writer_at(const test::ScopedBus& bus, const std::string& point) {
  Child writer = Child::spawn("state_put", {"--bus", bus.name(), "--key", "k", "--size", "65536",
                                            "--seed", std::to_string(kDeadSeed), "--stop-at", point});
  ASSERT_TRUE(test::wait_until(10s, [&] { return writer.reached(point); })) << writer.output();
  writer.kill_9();
  writer.wait();
}

void expect_space_recovered(State& state) {
  ASSERT_TRUE(state.reclaim());
  const StateUsage usage = state.usage();
  EXPECT_EQ(usage.writing, 0u);
  EXPECT_EQ(usage.retired, 0u);
  EXPECT_EQ(usage.free_bytes, usage.capacity - usage.live_bytes);
}

TEST(StateFault, WriterKilledBetweenBeginPutAndPublishLeavesNothingVisible) {
  test::ScopedBus bus = test::ScopedBus::create({.state_capacity = 1u << 20});
  State state = bus->state(StateAccess::read_write).value();
  ASSERT_TRUE(state.put("k", pattern_value(65536, kOldSeed)));
  kill_writer_at(bus, "state_put_written");

  EXPECT_EQ(test::check_pattern(state.get("k")->bytes()), kOldSeed);
  EXPECT_EQ(state.usage().writing, 1u) << "the dead writer's space, until a writer sweeps";
  ASSERT_TRUE(state.put("other", pattern_value(4096, 5)));  // the next writer proceeds
  EXPECT_EQ(test::check_pattern(state.get("k")->bytes()), kOldSeed);
  expect_space_recovered(state);
  EXPECT_GE(state.usage().aborts, 1u);
}

// Each kill point inside the writers' lock, and whether the dead writer's
// value had become visible there (it is whole either way: it was written
// before the lock was taken).
struct LockedPoint {
  const char* name;
  bool visible;
};

class StateLockFault : public ::testing::TestWithParam<LockedPoint> {};

TEST_P(StateLockFault, NextWriterRepairsAndProceeds) {
  const LockedPoint point = GetParam();
  test::ScopedBus bus = test::ScopedBus::create({.state_capacity = 1u << 20});
  State state = bus->state(StateAccess::read_write).value();
  ASSERT_TRUE(state.put("k", pattern_value(65536, kOldSeed)));
  // Something retired for the dead writer's reclaim to mark: pinned, then let go.
  std::optional<StateView> pinned(state.get("k").value());
  ASSERT_TRUE(state.put("k", pattern_value(65536, kOldSeed)));
  kill_writer_at(bus, point.name);
  pinned.reset();

  // The lock is free again (EOWNERDEAD, repaired), the key holds one whole value.
  ASSERT_TRUE(state.put("other", pattern_value(4096, 5)));
  auto view = state.get("k");
  ASSERT_TRUE(view);
  EXPECT_EQ(test::check_pattern(view->bytes()), point.visible ? kDeadSeed : kOldSeed) << point.name;
  view = state.get("other");
  expect_space_recovered(state);
  EXPECT_GE(state.usage().repaired, 1u) << point.name;
}

INSTANTIATE_TEST_SUITE_P(
    EveryStep, StateLockFault,
    ::testing::Values(LockedPoint{"state_reclaim_marked", false},
                      LockedPoint{"state_reserved_locked", false},
                      LockedPoint{"state_publish_locked", false},
                      LockedPoint{"state_publish_swapped", true}),
    [](const ::testing::TestParamInfo<LockedPoint>& point) { return std::string(point.param.name); });

TEST(StateFault, WriterKilledInsideRemoveLeavesTheKeyRemovedAndTheSpaceBack) {
  test::ScopedBus bus = test::ScopedBus::create({.state_capacity = 1u << 20});
  State state = bus->state(StateAccess::read_write).value();
  ASSERT_TRUE(state.put("k", pattern_value(65536, kOldSeed)));
  Child remover = Child::spawn("state_remove", {"--bus", bus.name(), "--key", "k", "--stop-at",
                                                "state_remove_locked"});
  ASSERT_TRUE(test::wait_until(10s, [&] { return remover.reached("state_remove_locked"); }))
      << remover.output();
  remover.kill_9();
  remover.wait();
  ASSERT_TRUE(state.put("other", pattern_value(4096, 5)));
  EXPECT_EQ(state.get("k").error(), Errc::no_such_key);
  expect_space_recovered(state);
}

}  // namespace
}  // namespace shmbus
