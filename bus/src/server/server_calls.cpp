// server_calls.cpp — the server's side of layout/calls.hpp: take or skip a
// call by CAS, run it, reply into the caller's slot, count what left the path.
#include "blobs/blob_pool.hpp"
#include "server/server_state.hpp"
#include "shmbus/detail/test_hook.hpp"

namespace shmbus {

using namespace detail;  // the shared-word helpers of detail/atomic.hpp
using layout::CallState;

void Server::handle_call(Handler& handler, Delivery& delivery) noexcept {
  State& s = *state_;
  const RecordInfo& info = delivery.info();
  const detail::ControlView& view = s.core().control();
  const std::uint32_t caller = info.sender.value;
  const std::uint32_t index = layout::correlation_index(info.correlation);
  const std::uint64_t generation = layout::correlation_generation(info.correlation);
  if (layout::ref_slot(caller) >= view.max_processes() || index >= view.calls_per_process()) {
    count(s.counters().bad_messages);  // names no call slot: forged or torn
    delivery.count_bad_message();
    return;
  }
  auto& slot = view.call_slot(layout::ref_slot(caller), index);
  auto& doorbell = view.doorbell(layout::ref_slot(caller));
  const std::uint64_t pending = layout::call_control(CallState::pending, 0, generation);
  std::uint64_t control = load_acquire(slot.control);
  if (control != pending) return count_skipped(info, control, generation);
  if (info.deliveries > s.max_deliveries) {
    // Servers died on it before they could take it (verifier, copy): stop here.
    const auto refused = layout::call_control(
        CallState::failed, static_cast<std::uint32_t>(Errc::server_crashed), generation);
    if (compare_exchange(slot.control, control, refused)) return wake_caller(slot, doorbell);
    return count_skipped(info, control, generation);
  }
  const std::uint64_t start = now_ns();
  if (start > load_relaxed(slot.deadline_ns)) {
    const auto expired = layout::call_control(CallState::expired, 0, generation);
    if (!compare_exchange(slot.control, control, expired)) return count_skipped(info, control, generation);
    count(s.counters().expired_skipped);
    return wake_caller(slot, doorbell);
  }
  auto payload = checked_payload(*s.link, s.schema, s.scratch, delivery);
  if (!payload) {
    const Errc why = info.ref_error != Errc{} ? info.ref_error : Errc::bad_message;
    const auto refused =
        layout::call_control(CallState::failed, static_cast<std::uint32_t>(why), generation);
    if (!compare_exchange(slot.control, control, refused)) return count_skipped(info, control, generation);
    count(s.counters().bad_messages);
    delivery.count_bad_message();
    return wake_caller(slot, doorbell);
  }
  const std::uint32_t self = s.core().table().self().value;
  const std::uint64_t taken = layout::call_control(CallState::taken, self, generation);
  if (!compare_exchange(slot.control, control, taken)) return count_skipped(info, control, generation);
  SHMBUS_TEST_HOOK(server_after_take);
  const Request request(*payload, info);
  ReplyWriter writer({view.reply_area(slot), view.max_reply()});
  handler.handle_call(request, writer);
  SHMBUS_TEST_HOOK(server_before_reply);
  if (s.sample_latency()) record_latency(s.counters(), now_ns() - start);
  count(s.counters().calls);
  finish_call(slot, doorbell, caller, index, generation, writer);
}

bool Server::stage_loan_reply(layout::CallSlotHeader& slot, std::uint32_t caller,
                              std::uint32_t index, std::uint64_t generation, Loan& loan) noexcept {
  auto pool = state_->core().blobs();
  if (!pool) return false;
  const auto payload = loan.payload();
  slot.reply_loan = {loan.block(), 0, loan.generation(),
                     static_cast<std::uint64_t>(payload.data() - loan.bytes().data()), payload.size()};
  store_relaxed(slot.length, std::uint32_t{0});
  slot.reply_flags = layout::kReplyLoan;
  return (*pool)->hand_over(loan, layout::reply_location(layout::ref_slot(caller), index, generation));
}

void Server::finish_call(layout::CallSlotHeader& slot, layout::ProcessDoorbell& doorbell,
                         std::uint32_t caller, std::uint32_t index, std::uint64_t generation,
                         ReplyWriter& writer) noexcept {
  State& s = *state_;
  const std::uint32_t self = s.core().table().self().value;
  const std::size_t length = writer.length_;
  std::uint64_t outcome = layout::call_control(CallState::replied, 0, generation);
  // A loaned reply's block, given back below if nobody will read it. Kept
  // here: once the slot is freed, a new call may write the slot's fields.
  std::optional<layout::LoanRecord> staged;
  auto drop_loan = [&] {
    if (!staged) return;
    if (auto pool = s.core().blobs()) {
      (*pool)->release(staged->block, staged->generation, layout::BlockState::in_record);
    }
  };
  if (writer.loan_) {
    if (stage_loan_reply(slot, caller, index, generation, *writer.loan_)) {
      staged = slot.reply_loan;
    } else {
      slot.reply_flags = 0;
      outcome = layout::call_control(CallState::failed, static_cast<std::uint32_t>(Errc::bad_ref),
                                     generation);
    }
  } else if (slot.reply_flags = 0; length > s.core().control().max_reply()) {
    count(s.counters().replies_too_large);
    outcome = layout::call_control(CallState::failed,
                                   static_cast<std::uint32_t>(Errc::record_too_large), generation);
  } else {
    store_relaxed(slot.length, static_cast<std::uint32_t>(length));
  }
  std::uint64_t control = layout::call_control(CallState::taken, self, generation);
  // seq_cst CAS: publishes length and reply bytes to the caller's acquire load.
  if (compare_exchange(slot.control, control, outcome)) {
    if (layout::call_state(outcome) == CallState::replied) count(s.counters().replies);
    wake_caller(slot, doorbell);
    // The woken caller may already have read it and left: only a caller that
    // was reclaimed (slot gone from the table) makes the reply unreadable.
    if (s.core().table().is_attached(caller)) return;
    // Its caller died and was reclaimed while we ran: nobody will read this.
    // Exactly one of us and the sweep of its process slot wins this CAS.
    control = outcome;
    if (compare_exchange(slot.control, control,
                         layout::call_control(CallState::free, layout::kFreedCallerGone,
                                              generation + 1))) {
      count(s.counters().late_replies);
      count(s.counters().caller_gone);
      drop_loan();
    }
    return;
  }
  // ABANDONED(g, us): the caller returned timeout_in_progress at its
  // deadline. The slot is ours until we free it; its caller's allocator waits.
  const std::uint64_t abandoned = layout::call_control(CallState::abandoned, self, generation);
  if (control != abandoned) {  // not ours to touch (see calls.hpp); a loan's block the reaper frees
    return;
  }
  count(s.counters().late_replies);
  drop_loan();
  (void)compare_exchange(slot.control, control,
                         layout::call_control(CallState::free, layout::kFreedNormally,
                                              generation + 1));
}

void Server::count_skipped(const RecordInfo& info, std::uint64_t control,
                           std::uint64_t generation) noexcept {
  auto& counters = state_->counters();
  const std::uint64_t next = (generation + 1) & layout::kCallGenerationMask;
  if (layout::call_state(control) == CallState::free && layout::call_generation(control) == next) {
    // The FREE word says why (calls.hpp, kFreed*): no system call needed.
    switch (layout::call_who(control)) {
      case layout::kFreedTakerDied: return;  // its caller got server_crashed
      case layout::kFreedCallerGone: return count(counters.caller_gone);
      default: return count(counters.expired_skipped);
    }
  }
  // A redelivered record found decided (by a server that died after deciding
  // and counting, or holding it: its caller learns server_crashed) or its
  // slot reused: counted already. Otherwise the caller, or a new owner of
  // its process slot, moved on after giving up.
  if (info.redelivered) return;
  const bool attached = state_->core().table().is_attached(info.sender.value);
  count(attached ? counters.expired_skipped : counters.caller_gone);
}

}  // namespace shmbus
