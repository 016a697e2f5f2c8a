// The process table across real processes: the kernel's lock byte says who
// died (also before anyone reaps it), generations tell a reused slot or pid
// apart, and a dead slot is reclaimed exactly once however many try.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "process/child_lines.hpp"
#include "support/shm_file.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/layout/process_table.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::Child;

CreateOptions with_max_processes(std::uint32_t max_processes) {
  CreateOptions options;
  options.max_processes = max_processes;
  return options;
}

std::optional<ProcessInfo> row_of(const Bus& bus, ProcessRef ref) {
  for (auto& row : bus.processes()) {
    if (row.ref == ref) return row;
  }
  return std::nullopt;
}

// Spawns an "attach" child and returns it once it holds its slot.
Child attached_child(const std::string& bus) {
  Child child = Child::spawn("attach", {"--bus", bus});
  EXPECT_TRUE(test::wait_printed(child, "ready"));
  return child;
}

TEST(ProcessLiveness, KilledChildIsDeadWhileStillAnUnreapedZombie) {
  auto bus = test::ScopedBus::create();
  Child child = attached_child(bus.name());
  const ProcessRef ref{test::ready_ref(child)};
  ASSERT_NE(ref.value, 0u);
  EXPECT_TRUE(bus->is_alive(ref));
  auto row = row_of(bus.bus(), ref);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->pid, child.pid());
  EXPECT_EQ(row->label, "test-child");
  EXPECT_TRUE(row->alive);

  child.kill_9();
  ASSERT_TRUE(test::wait_until(10s, [&] { return test::proc_stat(child.pid()).state == 'Z'; }));
  // No reaping, no cooperation: the kernel dropped its lock byte at exit.
  EXPECT_FALSE(bus->is_alive(ref));
  row = row_of(bus.bus(), ref);
  ASSERT_TRUE(row) << "listed until someone reclaims the slot";
  EXPECT_FALSE(row->alive);
  EXPECT_EQ(child.wait(), 128 + SIGKILL);
  EXPECT_TRUE(bus->is_alive(bus->self()));
}

TEST(ProcessLiveness, DeadChildsSlotIsReusedWithANewGenerationAndAFullTableRefuses) {
  auto bus = test::ScopedBus::create(with_max_processes(2));
  Child first = attached_child(bus.name());
  const ProcessRef first_ref{test::ready_ref(first)};
  first.kill_9();
  ASSERT_GE(first.wait(), 0);

  Child second = attached_child(bus.name());
  const ProcessRef second_ref{test::ready_ref(second)};
  EXPECT_EQ(layout::ref_slot(second_ref.value), layout::ref_slot(first_ref.value));
  EXPECT_NE(second_ref, first_ref) << "same slot, new generation";
  EXPECT_FALSE(bus->is_alive(first_ref));
  EXPECT_TRUE(bus->is_alive(second_ref));
  ASSERT_EQ(bus->processes().size(), 2u);
  EXPECT_EQ(row_of(bus.bus(), second_ref)->pid, second.pid());

  Child third = Child::spawn("attach", {"--bus", bus.name()});
  EXPECT_EQ(third.wait(), 2);
  EXPECT_NE(third.output().find("error: too_many_processes"), std::string::npos) << third.output();
  EXPECT_TRUE(bus->is_alive(second_ref)) << "a refused attach disturbs nobody";
}

TEST(ProcessLiveness, ReusedPidIsNotMistakenForTheDeadProcess) {
  auto bus = test::ScopedBus::create();
  auto other_bus = test::ScopedBus::create();
  Child dead = attached_child(bus.name());
  const ProcessRef dead_ref{test::ready_ref(dead)};
  dead.kill_9();
  ASSERT_GE(dead.wait(), 0);
  // The dead process's pid now belongs to a live process (planted: a child
  // attached elsewhere), start time and all. Its lock byte is still unheld.
  Child live = attached_child(other_bus.name());
  test::MappedFile control(test::shm_path(bus.name()));
  ASSERT_TRUE(control.ok());
  auto& slot = control.at<layout::ProcessSlot>(layout::kControlSlotsOffset +
                                               layout::ref_slot(dead_ref.value) *
                                                   sizeof(layout::ProcessSlot));
  slot.pid = static_cast<std::uint32_t>(live.pid());
  slot.start_time = test::proc_stat(live.pid()).start_time;
  ASSERT_EQ(layout::slot_state_of(detail::load_acquire(slot.state)), layout::SlotState::live);

  EXPECT_FALSE(bus->is_alive(dead_ref));
  auto row = row_of(bus.bus(), dead_ref);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->pid, live.pid());
  EXPECT_FALSE(row->alive);
  EXPECT_EQ(bus->reclaim_dead(), 1u);
  EXPECT_FALSE(row_of(bus.bus(), dead_ref));
}

TEST(ProcessReclaim, ProcessesReclaimingOneDeadSlotAtOnceReclaimItOnce) {
  constexpr int kReclaimers = 4;
  const long rounds = test::scaled(40);
  for (long round = 0; round < rounds; ++round) {
    auto bus = test::ScopedBus::create();
    Child victim = attached_child(bus.name());
    const std::string victim_ref = std::to_string(test::ready_ref(victim));
    std::vector<Child> reclaimers;
    for (int i = 0; i < kReclaimers; ++i) {
      reclaimers.push_back(Child::spawn("reclaim", {"--bus", bus.name(), "--victim", victim_ref}));
    }
    for (auto& reclaimer : reclaimers) ASSERT_TRUE(test::wait_printed(reclaimer, "ready"));
    victim.kill_9();  // all reclaimers now race for its slot
    long total = 0;
    std::string reports;
    for (auto& reclaimer : reclaimers) {
      ASSERT_TRUE(test::wait_printed(reclaimer, "reclaimed "));
      const std::string count = test::line_after(reclaimer, "reclaimed ");
      total += std::strtol(count.c_str(), nullptr, 10);
      reports += count + " ";
      EXPECT_EQ(reclaimer.wait(), 0);
    }
    ASSERT_EQ(total, 1) << "round " << round << ", counts: " << reports;
    EXPECT_EQ(bus->reclaim_dead(), 0u);
    EXPECT_FALSE(bus->is_alive(ProcessRef{static_cast<std::uint32_t>(std::stoul(victim_ref))}));
  }
}

}  // namespace
}  // namespace shmbus
