// call_slots.hpp — this process's pending-call slots (layout/calls.hpp).
//
// Every call slot of our process slot is ours to hand out, but a previous
// owner of that process slot (dead) may have left calls behind, and a call we
// abandoned stays with its server until the server lets go. So a slot is
// handed out only when its control word says no live server can still write
// it; everything else is recycled here, lazily, by CAS.
//
// Memory ordering: `in_use_` is private (threads of this process); the
// shared control word is only changed by CAS, except the owner's release
// store FREE(g+1) after it has read a reply (nobody else writes a REPLIED,
// EXPIRED or FAILED slot).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "bus/control.hpp"
#include "process/process_table.hpp"
#include "shmbus/error.hpp"
#include "shmbus/wait.hpp"

namespace shmbus::detail {

struct CallTicket {
  std::uint32_t index;
  std::uint64_t generation;
};

class CallSlots {
 public:
  CallSlots(const ControlView& view, ProcessTable& table);

  // A slot reading FREE(generation), reserved for one call of this process.
  // Fails with too_many_in_flight.
  [[nodiscard]] Expected<CallTicket> acquire() noexcept;
  // Stores FREE(generation + 1) and gives the slot back to acquire().
  void free(CallTicket ticket) noexcept;
  // Gives the slot back to acquire() without touching it (abandoned: its
  // server frees it, or acquire() recycles it once the server is dead).
  void forget(std::uint32_t index) noexcept;
  // The call's outcome was handed to the user (a Reply holds the slot now).
  void mark_answered(std::uint32_t index) noexcept;

  // What the calls in flight (outcome not handed out yet) need: `ready` when
  // one has an outcome to collect, reached its deadline, or (with
  // `check_takers`) lost its server; `in_flight` when some are undecided
  // (`earliest` receives the first of their deadlines); `none` otherwise.
  enum class Attention { none, in_flight, ready };
  [[nodiscard]] Attention attention(bool check_takers, Deadline& earliest) const noexcept;
  [[nodiscard]] layout::ProcessDoorbell& doorbell() const noexcept {
    return view_.doorbell(process_slot_);
  }

  // Recycles every call slot of process slot `process`, whose owner died
  // (or, at join, of our own slot, before any call): pending requests are
  // withdrawn (`caller_gone`), unread replies dropped (`late_replies` and
  // `caller_gone`, in the called service's counters). Slots a live server
  // may still write are left to it. The caller holds `process`'s lock byte.
  static void sweep(const ControlView& view, const ProcessTable& table,
                    std::uint32_t process) noexcept;
  // Wakes every caller parked on a call that the dead process `dead` had
  // taken, so it learns server_crashed now rather than at its next
  // liveness check (the supervisor's or a server's reclaim calls this).
  static void wake_callers_of(const ControlView& view, std::uint32_t dead) noexcept;

  [[nodiscard]] layout::CallSlotHeader& slot(std::uint32_t index) const noexcept {
    return view_.call_slot(process_slot_, index);
  }
  [[nodiscard]] std::byte* reply_area(std::uint32_t index) const noexcept {
    return view_.reply_area(slot(index));
  }
  [[nodiscard]] std::uint32_t max_reply() const noexcept { return view_.max_reply(); }
  [[nodiscard]] ProcessTable& table() const noexcept { return table_; }

 private:
  // Whether slot `index` (not handed out by us) can be made FREE now;
  // `generation` receives the generation it then reads.
  [[nodiscard]] bool recycle(std::uint32_t index, std::uint64_t& generation) noexcept;

  const ControlView& view_;
  ProcessTable& table_;
  std::uint32_t process_slot_;
  std::uint32_t count_;
  // 0: free to acquire; 1: a call in flight; 2: its outcome handed out.
  std::unique_ptr<std::atomic<std::uint8_t>[]> in_use_;
  std::atomic<std::uint32_t> hint_{0};
};

}  // namespace shmbus::detail
