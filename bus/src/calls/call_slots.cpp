#include "calls/call_slots.hpp"

#include "shmbus/detail/atomic.hpp"
#include "wait/futex.hpp"

#include <climits>

namespace shmbus::detail {

using layout::CallState;

namespace {
// A reply nobody will read: its caller died. Counted by whoever wins the CAS
// that discards it (this, or the server's own discard).
void count_discarded_reply(const ControlView& view, const layout::CallSlotHeader& slot) noexcept {
  const std::uint32_t service = load_relaxed(slot.service);
  if (service == 0 || service > layout::kMaxServices) return;
  auto& retired = view.service(service - 1).counters.retired;
  fetch_add(retired.caller_gone, std::uint64_t{1}, std::memory_order_relaxed);
  fetch_add(retired.late_replies, std::uint64_t{1}, std::memory_order_relaxed);
}
}  // namespace

CallSlots::CallSlots(const ControlView& view, ProcessTable& table)
    : view_(view),
      table_(table),
      process_slot_(layout::ref_slot(table.self().value)),
      count_(view.calls_per_process()),
      in_use_(new std::atomic<std::uint8_t>[view.calls_per_process()]()) {
  sweep(view, table, process_slot_);
}

void CallSlots::sweep(const ControlView& view, const ProcessTable& table,
                      std::uint32_t process) noexcept {
  // A process killed while parked leaves its waiter counts up: reset them,
  // or servers would make a wake call per outcome for nobody.
  store_relaxed(view.doorbell(process).waiters, std::uint32_t{0});
  for (std::uint32_t i = 0; i < view.calls_per_process(); ++i) {
    auto& s = view.call_slot(process, i);
    store_relaxed(s.waiters, std::uint32_t{0});
    std::uint64_t control = load_acquire(s.control);
    const CallState state = layout::call_state(control);
    if (state == CallState::free) continue;
    const bool server_may_write = state == CallState::taken || state == CallState::abandoned;
    if (server_may_write && table.is_alive(layout::call_who(control))) continue;
    const std::uint64_t freed =
        layout::call_control(CallState::free, layout::kFreedCallerGone,
                             (layout::call_generation(control) + 1) & layout::kCallGenerationMask);
    if (!compare_exchange(s.control, control, freed)) continue;  // a server decided first
    // A withdrawn request is counted by the server that reaches its record.
    if (state == CallState::replied) count_discarded_reply(view, s);
  }
}

Expected<CallTicket> CallSlots::acquire() noexcept {
  const std::uint32_t start = hint_.fetch_add(1, std::memory_order_relaxed);
  for (std::uint32_t n = 0; n < count_; ++n) {
    const std::uint32_t index = (start + n) % count_;
    std::uint8_t expected = 0;
    if (!in_use_[index].compare_exchange_strong(expected, 1, std::memory_order_acquire)) continue;
    std::uint64_t generation = 0;
    if (recycle(index, generation)) return CallTicket{index, generation};
    in_use_[index].store(0, std::memory_order_release);
  }
  return tl::unexpected(Errc::too_many_in_flight);
}

bool CallSlots::recycle(std::uint32_t index, std::uint64_t& generation) noexcept {
  auto& s = slot(index);
  std::uint64_t control = load_acquire(s.control);
  for (;;) {
    const CallState state = layout::call_state(control);
    generation = layout::call_generation(control);
    if (state == CallState::free) return true;
    const bool server_may_write = state == CallState::taken || state == CallState::abandoned;
    if (server_may_write && table_.is_alive(layout::call_who(control))) return false;
    // Left by a dead owner of our process slot, or by a server that died:
    // nobody can still write it. A server racing us for a PENDING one wins
    // or loses on this CAS.
    // An abandoned call of ours whose server died (the record, redelivered,
    // counts nothing more); else a previous owner's, dead.
    const std::uint32_t why =
        state == CallState::abandoned ? layout::kFreedTakerDied : layout::kFreedCallerGone;
    const std::uint64_t freed = layout::call_control(CallState::free, why, generation + 1);
    if (compare_exchange(s.control, control, freed)) {
      if (state == CallState::replied) count_discarded_reply(view_, s);
      generation = (generation + 1) & layout::kCallGenerationMask;
      return true;
    }
  }
}

void CallSlots::free(CallTicket ticket) noexcept {
  // release: the next call's writes to the slot cannot be seen before this.
  store_release(slot(ticket.index).control,
                layout::call_control(CallState::free, layout::kFreedNormally, ticket.generation + 1));
  in_use_[ticket.index].store(0, std::memory_order_release);
}

void CallSlots::forget(std::uint32_t index) noexcept {
  in_use_[index].store(0, std::memory_order_release);
}

}  // namespace shmbus::detail

namespace shmbus::detail {

void CallSlots::wake_callers_of(const ControlView& view, std::uint32_t dead) noexcept {
  for (std::uint32_t p = 0; p < view.max_processes(); ++p) {
    bool woke = false;
    for (std::uint32_t i = 0; i < view.calls_per_process(); ++i) {
      auto& s = view.call_slot(p, i);
      const std::uint64_t control = load_acquire(s.control);
      if (layout::call_state(control) != CallState::taken || layout::call_who(control) != dead) continue;
      if (load_seq_cst(s.waiters) != 0) {
        futex_wake(reinterpret_cast<const std::uint32_t*>(&s.control), INT_MAX);
      }
      woke = true;
    }
    auto& doorbell = view.doorbell(p);
    if (woke && load_seq_cst(doorbell.waiters) != 0) {
      ring_all(doorbell.seq);
    }
  }
}

void CallSlots::mark_answered(std::uint32_t index) noexcept {
  in_use_[index].store(2, std::memory_order_release);
}

CallSlots::Attention CallSlots::attention(bool check_takers, Deadline& earliest) const noexcept {
  Attention result = Attention::none;
  earliest = Deadline::max();
  const Deadline now = Clock::now();
  for (std::uint32_t i = 0; i < count_; ++i) {
    if (in_use_[i].load(std::memory_order_acquire) != 1) continue;
    const std::uint64_t control = load_seq_cst(slot(i).control);
    const CallState state = layout::call_state(control);
    if (state == CallState::free) continue;  // being sent right now
    if (state != CallState::pending && state != CallState::taken) return Attention::ready;
    const std::uint64_t deadline_ns = load_relaxed(slot(i).deadline_ns);
    const Deadline deadline =
        deadline_ns >= static_cast<std::uint64_t>(Deadline::max().time_since_epoch().count())
            ? Deadline::max()
            : Deadline(std::chrono::nanoseconds(deadline_ns));
    if (deadline <= now) return Attention::ready;  // poll() gives it up now
    earliest = std::min(earliest, deadline);
    if (state == CallState::taken && check_takers && !table_.is_alive(layout::call_who(control))) {
      return Attention::ready;
    }
    result = Attention::in_flight;
  }
  return result;
}

}  // namespace shmbus::detail
