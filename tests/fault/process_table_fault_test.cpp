// Processes killed with SIGKILL while joining the process table: the slot they
// were taking is reusable by the next attach (the table has one slot, so the
// attach must reuse it), and Bus::in_use turns false once every holder died.
#include <gtest/gtest.h>

#include <csignal>
#include <sstream>
#include <string>

#include "fault/fault_support.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::Child;

// A bus with one process slot that this process does not hold: created, then
// detached at once. Its segments are removed at scope exit, also on failure.
class DetachedBus {
 public:
  DetachedBus() : name_(test::unique_bus_name()) {
    CreateOptions options;
    options.max_processes = 1;
    auto bus = Bus::create(name_, options);
    EXPECT_TRUE(bus) << bus.error().message();
  }
  DetachedBus(const DetachedBus&) = delete;
  DetachedBus& operator=(const DetachedBus&) = delete;
  ~DetachedBus() { (void)Bus::remove(name_); }
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string name_;
};

[[nodiscard]] bool in_use(const std::string& bus) {
  auto used = Bus::in_use(bus);
  EXPECT_TRUE(used) << used.error().message();
  return used && *used;
}

struct Slot {
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
};

Slot reported_slot(Child& child) {
  Slot s;
  const auto ready = test::lines_after(child.output(), "ready ");
  if (!ready.empty()) std::istringstream(ready.front()) >> s.slot >> s.generation;
  return s;
}

class JoinerKilledAt : public ::testing::TestWithParam<const char*> {};

TEST_P(JoinerKilledAt, SlotIsReusableAndBusIsNotInUseOnceHoldersAreDead) {
  const std::string point = GetParam();
  DetachedBus bus;
  ASSERT_FALSE(in_use(bus.name()));
  std::uint32_t last_generation = 0;
  const long rounds = test::scaled(10);
  for (long round = 1; round <= rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round) + ", killed at " + point);
    // From round 2 on, the slot still says live: its last holder was killed
    // without detaching, so the joiner also has to reclaim it.
    Child joiner = Child::spawn("join_and_hold", {"--bus", bus.name(), "--stop-at", point});
    ASSERT_TRUE(test::wait_until(10s, [&] { return joiner.reached(point); })) << joiner.output();
    EXPECT_TRUE(in_use(bus.name())) << "a joiner holding the slot's lock is a holder";
    auto refused = Bus::attach(bus.name());
    ASSERT_FALSE(refused) << "two processes hold the bus's only slot";
    EXPECT_EQ(refused.error().code, Errc::too_many_processes);
    joiner.kill_9();
    // Not reaped yet: a zombie holds nothing (the kernel drops its lock at exit).
    EXPECT_TRUE(test::wait_until(5s, [&] { return !in_use(bus.name()); }))
        << "the dead joiner still counts as a holder";
    ASSERT_EQ(joiner.wait(), 128 + SIGKILL);
    EXPECT_FALSE(in_use(bus.name()));

    Child next = Child::spawn("join_and_hold", {"--bus", bus.name()});
    ASSERT_TRUE(test::wait_until(10s, [&] { return next.printed("ready "); }))
        << "the slot was not reusable: " << next.output();
    const Slot taken = reported_slot(next);
    EXPECT_EQ(taken.slot, 0u);
    EXPECT_GT(taken.generation, last_generation) << "a reused slot needs a new generation";
    last_generation = taken.generation;
    EXPECT_TRUE(in_use(bus.name()));
    next.kill_9();
    ASSERT_EQ(next.wait(), 128 + SIGKILL);
    EXPECT_FALSE(in_use(bus.name()));
    if (HasFailure()) return;
  }

  // This process can take the slot too, and sees nobody else in the table.
  auto attached = Bus::attach(bus.name());
  ASSERT_TRUE(attached) << attached.error().message();
  const auto rows = attached->processes();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].ref, attached->self());
  EXPECT_TRUE(in_use(bus.name()));
}

INSTANTIATE_TEST_SUITE_P(ProcessTableFault, JoinerKilledAt,
                         ::testing::Values("process_after_lock", "process_before_publish"),
                         [](const auto& param_info) { return std::string(param_info.param); });

}  // namespace
}  // namespace shmbus
