#include "process/process_table.hpp"

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "process/liveness.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/detail/test_hook.hpp"

namespace shmbus::detail {

using layout::ProcessSlot;
using layout::SlotState;

void ProcessTable::initialize(std::span<std::byte> segment, std::uint32_t capacity,
                              std::uint32_t segment_mode) noexcept {
  auto* header =
      reinterpret_cast<layout::ProcessTableHeader*>(segment.data() + sizeof(layout::SegmentHeader));
  header->capacity = capacity;
  header->segment_mode = segment_mode;
  header->slots_offset = layout::kControlSlotsOffset;
}

std::uint64_t ProcessTable::segment_size(std::uint32_t capacity) noexcept {
  return layout::kControlSlotsOffset + std::uint64_t{capacity} * sizeof(ProcessSlot);
}

ProcessTable::ProcessTable(std::span<std::byte> segment, int lock_fd, int query_fd) noexcept
    : header_(reinterpret_cast<layout::ProcessTableHeader*>(segment.data() +
                                                            sizeof(layout::SegmentHeader))),
      slots_(reinterpret_cast<ProcessSlot*>(segment.data() + layout::kControlSlotsOffset)),
      // Never trust the header's capacity beyond what the mapping holds.
      capacity_(static_cast<std::uint32_t>(std::min<std::uint64_t>(
          {header_->capacity, layout::kMaxProcesses,
           (segment.size() - layout::kControlSlotsOffset) / sizeof(ProcessSlot)}))),
      lock_fd_(lock_fd),
      query_fd_(query_fd) {}

Result<ProcessRef> ProcessTable::join(std::string_view label) {
  const auto start_time = process_start_time(::getpid()).value_or(0);
  for (std::uint32_t i = 0; i < capacity_; ++i) {
    ProcessSlot& slot = slots_[i];
    std::uint64_t state = load_acquire(slot.state);
    if (ofd_is_locked(query_fd_, i)) continue;  // a live process holds it
    // Live, yet nobody holds its byte: its owner is dead (a live owner takes
    // the byte before it publishes live and frees the slot before it drops
    // the byte). Retire that generation before we take the byte: holding a
    // dead owner's byte while the slot still says live would make the dead
    // owner read alive (is_alive) until step 2 below.
    if (layout::slot_state_of(state) == SlotState::live) {
      const std::uint64_t freed = layout::slot_state(layout::slot_generation(state), SlotState::free);
      if (compare_exchange(slot.state, state, freed)) fetch_add(header_->reclaimed, std::uint64_t{1});
    }
    if (!ofd_try_lock(lock_fd_, i)) continue;  // another joiner won it
    SHMBUS_TEST_HOOK(process_after_lock);
    state = load_acquire(slot.state);
    if (layout::slot_state_of(state) == SlotState::live) {
      // We hold its lock byte, so its owner is dead: reclaim before reuse.
      std::uint64_t expected = state;
      const std::uint64_t freed = layout::slot_state(layout::slot_generation(state), SlotState::free);
      if (compare_exchange(slot.state, expected, freed)) fetch_add(header_->reclaimed, std::uint64_t{1});
      state = freed;
    }
    slot.pid = static_cast<std::uint32_t>(::getpid());
    slot.uid = static_cast<std::uint32_t>(::getuid());
    slot.start_time = start_time;
    slot.attached_unix_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
    std::memset(slot.label, 0, sizeof slot.label);
    std::memcpy(slot.label, label.data(), std::min(label.size(), sizeof slot.label - 1));
    SHMBUS_TEST_HOOK(process_before_publish);
    const std::uint32_t generation = next_generation(layout::slot_generation(state));
    // release: pairs with load_acquire(state) in is_alive() and snapshot().
    store_release(slot.state, layout::slot_state(generation, SlotState::live));
    self_slot_ = i;
    self_generation_ = generation;
    epoch_ = fork_epoch();
    self_ = ProcessRef{layout::process_ref(i, generation)};
    return self_;
  }
  return fail(Errc::too_many_processes,
              "all " + std::to_string(capacity_) + " process slots of the bus are held by live "
              "processes");
}

void ProcessTable::leave() noexcept {
  // A forked child inherits this object but not the slot: only the process
  // that joined may free it.
  if (self_.value == 0 || !joined_here()) return;
  std::uint64_t expected = layout::slot_state(self_generation_, SlotState::live);
  (void)compare_exchange(slots_[self_slot_].state, expected,
                         layout::slot_state(self_generation_, SlotState::free));
  ofd_unlock(lock_fd_, self_slot_);
  self_ = ProcessRef{};
}

bool ProcessTable::is_attached(std::uint32_t ref) const noexcept {
  const std::uint32_t i = layout::ref_slot(ref);
  if (ref == 0 || i >= capacity_) return false;
  const std::uint64_t state = load_acquire(slots_[i].state);
  return layout::slot_state_of(state) == SlotState::live &&
         (layout::slot_generation(state) & ((1u << layout::kGenerationBits) - 1)) ==
             layout::ref_generation_bits(ref);
}

bool ProcessTable::is_alive(std::uint32_t ref) const noexcept {
  const std::uint32_t i = layout::ref_slot(ref);
  if (ref == 0 || i >= capacity_) return false;
  const std::uint64_t state = load_acquire(slots_[i].state);
  if (layout::slot_state_of(state) != SlotState::live) return false;
  const std::uint32_t generation = layout::slot_generation(state);
  if ((generation & ((1u << layout::kGenerationBits) - 1)) != layout::ref_generation_bits(ref)) {
    return false;  // the slot was reclaimed and reused since
  }
  if (ref == self_.value) return true;
  return ofd_is_locked(query_fd_, i);
}

std::uint32_t ProcessTable::reclaim_dead(
    const std::function<void(std::uint32_t, std::uint32_t)>& on_reclaimed) noexcept {
  // OFD locks never conflict within one open file description: two threads of
  // this process could both "hold" a dead slot's byte. One reaper at a time.
  const std::lock_guard one_reaper(reclaim_mutex_);
  std::uint32_t reclaimed = 0;
  for (std::uint32_t i = 0; i < capacity_; ++i) {
    std::uint64_t state = load_acquire(slots_[i].state);
    if (layout::slot_state_of(state) != SlotState::live) continue;
    if (ofd_is_locked(query_fd_, i)) continue;
    // Retire the dead generation first, then take the byte: holding a dead
    // owner's byte while its slot still says live would make it read alive
    // (is_alive) meanwhile. Of two reapers (or a reaper and a joiner) one CAS wins.
    const std::uint64_t freed = layout::slot_state(layout::slot_generation(state), SlotState::free);
    if (!compare_exchange(slots_[i].state, state, freed)) continue;
    fetch_add(header_->reclaimed, std::uint64_t{1});
    ++reclaimed;
    // Hold the byte while we clean up after the dead process, so no new
    // process joins the slot (and starts using what we sweep) meanwhile. A
    // joiner that took the freed slot first holds it: then we sweep nothing
    // (as when a joiner reclaims a slot itself).
    const bool locked = lock_fd_ >= 0 && ofd_try_lock(lock_fd_, i);
    if (on_reclaimed && locked) on_reclaimed(i, layout::process_ref(i, layout::slot_generation(state)));
    if (locked) ofd_unlock(lock_fd_, i);
  }
  return reclaimed;
}

bool ProcessTable::any_locked() const noexcept {
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = static_cast<off_t>(capacity_);
  if (::fcntl(query_fd_, F_OFD_GETLK, &lock) != 0) return true;
  return lock.l_type != F_UNLCK;
}

std::vector<ProcessInfo> ProcessTable::snapshot() const {
  std::vector<ProcessInfo> rows;
  for (std::uint32_t i = 0; i < capacity_; ++i) {
    const std::uint64_t state = load_acquire(slots_[i].state);
    if (layout::slot_state_of(state) != SlotState::live) continue;
    ProcessInfo row;
    row.slot = i;
    row.generation = layout::slot_generation(state);
    row.ref = ProcessRef{layout::process_ref(i, row.generation)};
    row.pid = static_cast<int>(slots_[i].pid);
    row.start_time = slots_[i].start_time;
    row.label.assign(slots_[i].label, strnlen(slots_[i].label, sizeof slots_[i].label));
    row.alive = is_alive(row.ref.value);
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace shmbus::detail
