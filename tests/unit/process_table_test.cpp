// The process table as one process sees it: slots, generations, planted slots
// that look live but whose lock byte nobody holds. Several attachments of one
// bus in one process are separate table entries with separate lock
// descriptors, so the kernel judges them like separate processes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "process/process_table.hpp"
#include "support/shm_file.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/layout/process_table.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

using layout::ProcessSlot;
using layout::SlotState;

CreateOptions with_max_processes(std::uint32_t max_processes) {
  CreateOptions options;
  options.max_processes = max_processes;
  return options;
}

std::uint64_t own_start_time() {
  std::ifstream file("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) fields >> field;  // field 3 is the state; 22 the start time
  return std::strtoull(field.c_str(), nullptr, 10);
}

ProcessSlot& slot_of(const test::MappedFile& control, std::uint32_t i) {
  return control.at<ProcessSlot>(layout::kControlSlotsOffset + i * sizeof(ProcessSlot));
}

std::optional<ProcessInfo> row_of(const Bus& bus, std::uint32_t slot) {
  for (auto& row : bus.processes()) {
    if (row.slot == slot) return row;
  }
  return std::nullopt;
}

TEST(ProcessTable, CreatorAndAttachersAreListedAliveWithPidAndLabel) {
  CreateOptions create_options;
  create_options.label = "creator";
  auto bus = test::ScopedBus::create(create_options);
  AttachOptions attach_options;
  attach_options.label = std::string(40, 'x');
  auto other = Bus::attach(bus.name(), attach_options);
  ASSERT_TRUE(other) << other.error().message();
  const auto rows = bus->processes();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].ref, bus->self());
  EXPECT_EQ(rows[0].label, "creator");
  EXPECT_EQ(rows[1].ref, other->self());
  EXPECT_EQ(rows[1].label, std::string(31, 'x')) << "labels are cut to the slot's 31 bytes";
  for (const auto& row : rows) {
    EXPECT_EQ(row.pid, ::getpid());
    EXPECT_EQ(row.start_time, own_start_time());
    EXPECT_TRUE(row.alive);
  }
  EXPECT_TRUE(bus->is_alive(other->self()));
  EXPECT_TRUE(other->is_alive(bus->self()));
  EXPECT_EQ(bus->reclaim_dead(), 0u) << "live slots are never reclaimed";
}

TEST(ProcessTable, SlotIsReusedAfterDetachWithANewGenerationAndTheOldRefIsDead) {
  auto bus = test::ScopedBus::create(with_max_processes(4));
  ProcessRef old_ref;
  {
    auto first = Bus::attach(bus.name());
    ASSERT_TRUE(first);
    old_ref = first->self();
  }
  EXPECT_FALSE(bus->is_alive(old_ref)) << "a detached process is not alive";
  auto second = Bus::attach(bus.name());
  ASSERT_TRUE(second);
  const ProcessRef new_ref = second->self();
  // Same pid, same slot: only the generation tells the two apart.
  EXPECT_EQ(layout::ref_slot(new_ref.value), layout::ref_slot(old_ref.value));
  EXPECT_NE(new_ref, old_ref);
  EXPECT_FALSE(bus->is_alive(old_ref));
  EXPECT_TRUE(bus->is_alive(new_ref));
}

TEST(ProcessTable, LiveLookingSlotOfALivePidWhoseLockNobodyHoldsIsDead) {
  auto bus = test::ScopedBus::create(with_max_processes(8));
  test::MappedFile control(test::shm_path(bus.name()));
  ASSERT_TRUE(control.ok());
  // A process that died long ago, whose pid (and even start time) now
  // belongs to a live process: ours. Only the lock byte can tell.
  ProcessSlot& planted = slot_of(control, 3);
  planted.pid = static_cast<std::uint32_t>(::getpid());
  planted.start_time = own_start_time();
  std::memcpy(planted.label, "ghost", 6);
  detail::store_release(planted.state, layout::slot_state(5, SlotState::live));
  const ProcessRef ghost{layout::process_ref(3, 5)};

  EXPECT_FALSE(bus->is_alive(ghost));
  const auto row = row_of(bus.bus(), 3);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->pid, ::getpid());
  EXPECT_EQ(row->label, "ghost");
  EXPECT_FALSE(row->alive);

  EXPECT_EQ(bus->reclaim_dead(), 1u);
  EXPECT_FALSE(row_of(bus.bus(), 3)) << "a reclaimed slot is no longer listed";
  EXPECT_EQ(layout::slot_state_of(detail::load_acquire(planted.state)), SlotState::free);
  EXPECT_EQ(bus->reclaim_dead(), 0u) << "reclaimed once";
  EXPECT_TRUE(bus->is_alive(bus->self()));
}

TEST(ProcessTable, RefWithAnotherGenerationIsDeadWhileItsSlotIsLive) {
  auto bus = test::ScopedBus::create();
  const std::uint32_t ref = bus->self().value;
  const std::uint32_t slot = layout::ref_slot(ref);
  const std::uint32_t generation = layout::ref_generation_bits(ref);
  EXPECT_TRUE(bus->is_alive(ProcessRef{ref}));
  EXPECT_FALSE(bus->is_alive(ProcessRef{layout::process_ref(slot, generation + 1)}));
  EXPECT_FALSE(bus->is_alive(ProcessRef{layout::process_ref(slot, generation + 2)}));
  EXPECT_FALSE(bus->is_alive(ProcessRef{0})) << "0 names nobody";
  EXPECT_FALSE(bus->is_alive(ProcessRef{layout::process_ref(1000, 1)})) << "beyond the table";
}

TEST(ProcessTable, JoinerFindingADeadOwnersSlotReclaimsItAndTakesIt) {
  auto bus = test::ScopedBus::create(with_max_processes(2));
  test::MappedFile control(test::shm_path(bus.name()));
  ASSERT_TRUE(control.ok());
  detail::store_release(slot_of(control, 1).state, layout::slot_state(9, SlotState::live));
  auto joiner = Bus::attach(bus.name());
  ASSERT_TRUE(joiner) << "a dead owner's slot is free for the taking: " << joiner.error().message();
  EXPECT_EQ(layout::ref_slot(joiner->self().value), 1u);
  EXPECT_NE(joiner->self(), (ProcessRef{layout::process_ref(1, 9)}));
  EXPECT_TRUE(bus->is_alive(joiner->self()));
}

TEST(ProcessTable, GenerationWrapNeverMakesAZeroReference) {
  EXPECT_EQ(detail::next_generation(0x3fff), 0x4001u) << "low 14 bits 0 are skipped";
  EXPECT_EQ(detail::next_generation(0x7fff), 0x8001u);
  EXPECT_EQ(detail::next_generation(1), 2u);
  auto bus = test::ScopedBus::create(with_max_processes(2));
  test::MappedFile control(test::shm_path(bus.name()));
  ASSERT_TRUE(control.ok());
  // Slot 1 was last used by generation 0x3fff (free now).
  detail::store_release(slot_of(control, 1).state, layout::slot_state(0x3fff, SlotState::free));
  auto joiner = Bus::attach(bus.name());
  ASSERT_TRUE(joiner);
  EXPECT_EQ(layout::ref_slot(joiner->self().value), 1u);
  EXPECT_NE(layout::ref_generation_bits(joiner->self().value), 0u);
  EXPECT_EQ(layout::ref_generation_bits(joiner->self().value), 1u) << "0x4001, not 0x4000";
  EXPECT_TRUE(bus->is_alive(joiner->self()));
}

TEST(ProcessTable, FullTableRefusesWithTooManyProcessesUntilASlotIsFreed) {
  auto bus = test::ScopedBus::create(with_max_processes(2));
  std::optional<Bus> second(*Bus::attach(bus.name()));
  auto third = Bus::attach(bus.name());
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, Errc::too_many_processes);
  EXPECT_NE(third.error().detail.find("all 2 process slots"), std::string::npos)
      << third.error().detail;
  second.reset();
  auto fourth = Bus::attach(bus.name());
  ASSERT_TRUE(fourth) << fourth.error().message();
}

TEST(ProcessTable, CreateRefusesMaxProcessesOutOfRange) {
  for (std::uint32_t bad : {0u, 1025u}) {
    const std::string name = test::unique_bus_name();
    auto created = Bus::create(name, with_max_processes(bad));
    ASSERT_FALSE(created) << bad;
    EXPECT_EQ(created.error().code, Errc::bad_options);
    EXPECT_FALSE(test::file_exists(test::shm_path(name))) << "nothing created";
  }
  auto one = test::ScopedBus::create(with_max_processes(1));
  auto refused = Bus::attach(one.name());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::too_many_processes);
}

}  // namespace
}  // namespace shmbus
