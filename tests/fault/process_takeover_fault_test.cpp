// A process taking over a dead process's slot: the dead one never reads
// alive through the newcomer's lock byte. The joiner retires the dead
// generation before it takes the byte (layout/process_table.hpp, step 0), so
// `shmbus ps`, a launcher counting live servers and every is_alive() caller
// see the dead server dead even while its slot is being taken over.
#include <gtest/gtest.h>

#include <csignal>
#include <sstream>

#include "fault/fault_support.hpp"
#include "shmbus/layout/process_table.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::Child;

TEST(ProcessTakeover, ADeadOwnerReadsDeadWhileAJoinerHoldsItsSlotsLock) {
  CreateOptions options;
  options.max_processes = 2;  // ours, and the one the dead process leaves
  auto bus = test::ScopedBus::create(options);
  Child first = Child::spawn("join_and_hold", {"--bus", bus.name()});
  ASSERT_TRUE(test::wait_until(10s, [&] { return first.printed("ready "); })) << first.output();
  const auto ready = test::lines_after(first.output(), "ready ");
  ASSERT_FALSE(ready.empty()) << first.output();
  std::uint32_t slot = 0, generation = 0;
  std::istringstream(ready.front()) >> slot >> generation;
  const ProcessRef dead{layout::process_ref(slot, generation)};
  EXPECT_TRUE(bus->is_alive(dead));
  first.kill_9();
  ASSERT_EQ(first.wait(), 128 + SIGKILL);
  ASSERT_TRUE(test::wait_until(5s, [&] { return !bus->is_alive(dead); }));

  // The next attacher takes that slot (the only other one) and stops right
  // after taking its lock byte, before it publishes itself.
  Child joiner =
      Child::spawn("join_and_hold", {"--bus", bus.name(), "--stop-at", "process_after_lock"});
  ASSERT_TRUE(test::wait_until(10s, [&] { return joiner.reached("process_after_lock"); }))
      << joiner.output();
  EXPECT_FALSE(bus->is_alive(dead)) << "the dead process reads alive through the joiner's lock";
  for (const auto& row : bus->processes()) {
    EXPECT_NE(row.ref, dead) << "the dead generation is still listed";
  }
  joiner.kill_9();
  ASSERT_EQ(joiner.wait(), 128 + SIGKILL);
}

}  // namespace
}  // namespace shmbus
