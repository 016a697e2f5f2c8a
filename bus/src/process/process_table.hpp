// process_table.hpp — join, leave and judge the slots of layout/process_table.hpp.
//
// Memory ordering: a joiner writes its slot's fields, then stores `state` with
// release; readers load `state` with acquire before the fields. Liveness
// itself comes from the kernel (OFD lock bytes), not from memory.
// Crash: see the step list in layout/process_table.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "process/fork_guard.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/error.hpp"
#include "shmbus/layout/process_table.hpp"

namespace shmbus::detail {

class ProcessTable {
 public:
  // Lays out an empty table over a zero-filled control segment.
  static void initialize(std::span<std::byte> segment, std::uint32_t capacity,
                         std::uint32_t segment_mode) noexcept;
  [[nodiscard]] static std::uint64_t segment_size(std::uint32_t capacity) noexcept;

  // `lock_fd` and `query_fd` are two separate opens of the control segment:
  // OFD locks of one open file description never conflict with each other, so
  // liveness questions go through the other one. Both stay owned by the caller.
  ProcessTable(std::span<std::byte> segment, int lock_fd, int query_fd) noexcept;

  // Takes a slot (steps 1–3 of the layout comment). Fails with
  // too_many_processes, or not_a_segment when the table is corrupt.
  [[nodiscard]] Result<ProcessRef> join(std::string_view label);
  // Frees this process's slot; the lock byte is dropped with `lock_fd`.
  void leave() noexcept;

  [[nodiscard]] bool is_alive(std::uint32_t ref) const noexcept;
  // Whether `ref`'s slot still holds that process, from memory alone (no
  // system call): false once the slot was reclaimed or left; a dead process
  // whose slot nobody reclaimed yet still counts as attached.
  [[nodiscard]] bool is_attached(std::uint32_t ref) const noexcept;
  // Frees the slots of dead processes, calling `on_reclaimed(slot, ref)` for
  // each (ref: the dead process's reference) while holding its lock byte (no
  // new process can join it meanwhile).
  std::uint32_t reclaim_dead(
      const std::function<void(std::uint32_t, std::uint32_t)>& on_reclaimed = {}) noexcept;
  // Whether any slot's lock byte is held by a live process (one system call).
  [[nodiscard]] bool any_locked() const noexcept;
  [[nodiscard]] std::vector<ProcessInfo> snapshot() const;
  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }
  // The bus's permission bits, for the segments created after it (mailboxes).
  [[nodiscard]] std::uint32_t segment_mode() const noexcept { return header_->segment_mode & 0777; }
  [[nodiscard]] ProcessRef self() const noexcept { return self_; }
  // False in a forked child of the process that joined: its slot is not ours.
  [[nodiscard]] bool joined_here() const noexcept { return fork_epoch() == epoch_; }

  // Slot i and its generation for tests that plant states.
  [[nodiscard]] layout::ProcessSlot& slot(std::uint32_t i) const noexcept { return slots_[i]; }

 private:
  layout::ProcessTableHeader* header_;
  layout::ProcessSlot* slots_;
  std::uint32_t capacity_;
  int lock_fd_;
  int query_fd_;
  std::uint32_t self_slot_ = 0;
  std::uint32_t self_generation_ = 0;
  std::uint32_t epoch_ = 0;
  ProcessRef self_{};
  std::mutex reclaim_mutex_;
};

// The next generation whose low 14 bits are not 0, so a process reference is never 0.
[[nodiscard]] constexpr std::uint32_t next_generation(std::uint32_t generation) noexcept {
  std::uint32_t next = generation + 1;
  if ((next & ((1u << layout::kGenerationBits) - 1)) == 0) ++next;
  return next;
}

}  // namespace shmbus::detail
