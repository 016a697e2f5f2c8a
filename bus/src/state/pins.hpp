// pins.hpp — this process's pin cells on state versions (layout/pins.hpp),
// and the reaper's release of a dead process's pins.
//
// A process's PinLine is written only by that process (one store per pin)
// and by the reaper once the process is dead. The cells are handed to
// threads by a process-local bitmap: 15 views at once per process.
//
// Memory ordering: a pin is stored seq_cst and then the version is checked
// again (the hazard-pointer rule of layout/state.hpp); a scan loads the pin
// before the line's owner, and a process stores `owner` before its first
// pin, so a pin is never judged by a previous owner's reference.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>

#include "bus/control.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/error.hpp"
#include "shmbus/layout/pins.hpp"

namespace shmbus::detail {

class PinSet {
 public:
  // Takes over this process's line: clears what a previous holder of the
  // slot left, then names this process as its owner.
  PinSet(layout::PinLine& line, std::uint32_t self_ref) noexcept : line_(&line) {
    for (auto& pin : line.pins) std::atomic_ref<std::uint64_t>(pin).store(0, std::memory_order_seq_cst);
    std::atomic_ref<std::uint64_t>(line.owner).store(self_ref, std::memory_order_seq_cst);
  }
  PinSet(const PinSet&) = delete;
  PinSet& operator=(const PinSet&) = delete;

  // A free cell, or too_many_in_flight when all 15 are in use.
  [[nodiscard]] Expected<std::uint32_t> acquire() noexcept {
    std::uint32_t used = used_.load(std::memory_order_relaxed);
    for (;;) {
      const auto cell = static_cast<std::uint32_t>(std::countr_one(used));
      if (cell >= layout::kPinsPerProcess) return tl::unexpected(Errc::too_many_in_flight);
      // acquire: pairs with release() of the thread that used the cell last.
      if (used_.compare_exchange_weak(used, used | (1u << cell), std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return cell;
      }
    }
  }
  // seq_cst: the store must precede the reader's second look at the version.
  void pin(std::uint32_t cell, std::uint64_t handle) noexcept {
    std::atomic_ref<std::uint64_t>(line_->pins[cell]).store(handle, std::memory_order_seq_cst);
  }
  void release(std::uint32_t cell) noexcept {
    // release: the reads of the pinned value happen before a writer may see
    // the cell empty and free the version.
    std::atomic_ref<std::uint64_t>(line_->pins[cell]).store(0, std::memory_order_release);
    used_.fetch_and(~(1u << cell), std::memory_order_release);
  }

 private:
  layout::PinLine* line_;
  std::atomic<std::uint32_t> used_{0};
};

// Clears the pin line of a dead process's slot (called by the reaper while it
// holds the slot's lock byte, so no new process can take the line meanwhile).
inline void clear_dead_pins(const ControlView& control, std::uint32_t slot) noexcept {
  layout::PinLine& line = control.pins(slot);
  for (auto& pin : line.pins) std::atomic_ref<std::uint64_t>(pin).store(0, std::memory_order_seq_cst);
  std::atomic_ref<std::uint64_t>(line.owner).store(0, std::memory_order_seq_cst);
}

}  // namespace shmbus::detail
