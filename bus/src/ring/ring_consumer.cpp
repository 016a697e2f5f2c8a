// The consumer half of Ring: register, take, release, take over, park.
#include <string>

#include "ring/ring.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/detail/enforce.hpp"
#include "shmbus/detail/test_hook.hpp"
#include "wait/futex.hpp"

namespace shmbus::detail {

using layout::CellHeader;
using layout::CellState;
using layout::cell_control;
using layout::control_owner;
using layout::control_seq;
using layout::control_state;
using layout::seq_distance;


Result<std::uint32_t> Ring::register_consumer(std::uint32_t& inherited) {
  SHMBUS_ENFORCE(table_.joined_here(), "a Bus used in a forked child: attach again after fork()");
  inherited = 0;
  const std::uint32_t me = self();
  // A free entry first; otherwise the entry of a dead consumer, with the
  // record it held (handed out, marked redelivered, by the first receive).
  for (int pass = 0; pass < 2; ++pass) {
    for (std::uint32_t i = 0; i < max_consumers_; ++i) {
      layout::ConsumerEntry& entry = header_->consumers[i];
      std::uint32_t owner = load_acquire(entry.owner);
      if (pass == 0 ? owner != 0 : (owner == 0 || table_.is_alive(owner))) continue;
      if (compare_exchange(entry.owner, owner, me)) {
        if (pass == 0) store_relaxed(entry.held, std::uint64_t{0});
        forget_parked(entry);
        inherited = owner;
        return i;
      }
    }
  }
  return fail(Errc::too_many_consumers,
              "mailbox already has " + std::to_string(max_consumers_) + " live consumer" +
                  (max_consumers_ == 1 ? "" : "s"));
}

void Ring::unregister_consumer(std::uint32_t entry, bool holds_undelivered) noexcept {
  layout::ConsumerEntry& e = header_->consumers[entry];
  std::uint32_t me = self();
  if (holds_undelivered) {
    // The entry points at a record nobody was handed yet: keep the pointer,
    // owned by nobody alive, so the next consumer or a sibling takes it over.
    (void)compare_exchange(e.owner, me, layout::kOrphanRef);
    return;
  }
  store_relaxed(e.held, std::uint64_t{0});
  (void)compare_exchange(e.owner, me, std::uint32_t{0});
}

void Ring::advance_head(std::uint64_t from) noexcept {
  std::uint64_t& head = header_->consumer.head_position;
  if (max_consumers_ == 1) {
    // mpsc: only the one live consumer moves the head (a dead one moves
    // nothing, and a forked child may not consume), so no CAS is needed.
    if (load_relaxed(head) == from) store_release(head, from + 1);
    return;
  }
  advance(head, from);
}

void Ring::skip(std::uint64_t position, std::uint64_t control, std::uint64_t& counter) noexcept {
  CellHeader& c = cell(position);
  if (compare_exchange(c.control, control, cell_control(CellState::free, 0, position + capacity_))) {
    fetch_add(counter, std::uint64_t{1}, std::memory_order_relaxed);
    wake_producers();
  }
}

Ring::Take Ring::try_take(std::uint32_t entry, bool check_dead, std::uint64_t& position) noexcept {
  SHMBUS_ENFORCE(table_.joined_here(), "a Bus used in a forked child: attach again after fork()");
  std::uint64_t& head = header_->consumer.head_position;
  for (;;) {
    const std::uint64_t h = load_relaxed(head);
    CellHeader& c = cell(h);
    // acquire: pairs with the producer's commit CAS; header and payload are visible.
    std::uint64_t control = load_acquire(c.control);
    const std::int64_t distance = seq_distance(control_seq(control), h);
    if (distance > static_cast<std::int64_t>(capacity_) &&
        repair_forged(c, control, h, head, h + capacity_)) {
      continue;  // the forged cell now reads "position h done"
    }
    if (distance > 0) {  // position h is done already: the hint is behind
      advance_head(h);
      continue;
    }
    if (distance < 0) return Take::empty;
    switch (control_state(control)) {
      case CellState::free:
        return Take::empty;
      case CellState::claimed:
        if (!check_dead || table_.is_alive(control_owner(control))) return Take::blocked;
        skip(h, control, header_->counters.sender_aborted);  // its producer died before commit
        continue;
      case CellState::skipped:
        skip(h, control, header_->counters.sender_aborted);
        continue;
      case CellState::taken:
        advance_head(h);  // another consumer has it
        continue;
      case CellState::committed: {
        // The intent goes first: if we die right after the CAS, recovery
        // finds the position in our entry (the CAS orders this store).
        store_relaxed(header_->consumers[entry].held, h + 1);
        SHMBUS_TEST_HOOK(ring_before_take);
        if (!compare_exchange(c.control, control, cell_control(CellState::taken, self(), h))) {
          continue;  // another consumer won it
        }
        c.deliveries = 1;
        SHMBUS_TEST_HOOK(ring_after_take);
        advance_head(h);
        pass_baton();
        if (c.length > max_record_) {  // forged or torn: never read past the cell
          release(entry, h);
          fetch_add(header_->counters.bad_messages, std::uint64_t{1}, std::memory_order_relaxed);
          continue;
        }
        position = h;
        return Take::taken;
      }
      default:  // states 5..7 are never written: a torn or forged cell
        skip(h, control, header_->counters.bad_messages);
        continue;
    }
  }
}

bool Ring::take_over(std::uint32_t entry, std::uint64_t held) noexcept {
  if (held == 0) return false;
  const std::uint64_t h = held - 1;
  CellHeader& c = cell(h);
  std::uint64_t expected = load_acquire(c.control);
  // Any taker that is dead gives its record up, whoever's entry pointed here:
  // an inheritor that died before its own take-over leaves the cell naming
  // the consumer before it. The CAS makes exactly one taker win.
  if (control_state(expected) != CellState::taken || seq_distance(control_seq(expected), h) != 0 ||
      control_owner(expected) == self() || table_.is_alive(control_owner(expected))) {
    return false;
  }
  store_relaxed(header_->consumers[entry].held, held);
  if (!compare_exchange(c.control, expected, cell_control(CellState::taken, self(), h))) {
    store_relaxed(header_->consumers[entry].held, std::uint64_t{0});
    return false;
  }
  fetch_add(header_->counters.redelivered, std::uint64_t{1}, std::memory_order_relaxed);
  if (c.length > max_record_) {  // forged or torn: give the cell back, count it
    release(entry, h);
    fetch_add(header_->counters.bad_messages, std::uint64_t{1}, std::memory_order_relaxed);
    return false;
  }
  c.flags = static_cast<std::uint8_t>(c.flags | layout::kRecordRedelivered);
  // The dead taker took it at least once, even if it died before it could
  // store deliveries = 1 (see "Crash" in layout/ring.hpp).
  const unsigned before = c.deliveries == 0 ? 1u : c.deliveries;
  c.deliveries = static_cast<std::uint8_t>(before < 255 ? before + 1 : 255);
  return true;
}

std::optional<std::uint64_t> Ring::recover_one(std::uint32_t entry) noexcept {
  for (std::uint32_t i = 0; i < max_consumers_; ++i) {
    if (i == entry) continue;
    layout::ConsumerEntry& e = header_->consumers[i];
    std::uint32_t owner = load_acquire(e.owner);
    if (owner == 0 || table_.is_alive(owner)) continue;
    forget_parked(e);
    const std::uint64_t held = load_acquire(e.held);
    const bool took = take_over(entry, held);
    // The record (if any) is ours now; only then may the entry be reused.
    (void)compare_exchange(e.owner, owner, std::uint32_t{0});
    if (took) return held - 1;
  }
  return std::nullopt;
}

void Ring::release(std::uint32_t entry, std::uint64_t position) noexcept {
  CellHeader& c = cell(position);
  std::uint64_t expected = cell_control(CellState::taken, self(), position);
  // seq_cst: our reads of the payload happen before the next producer's
  // writes, and the room-waiters load below cannot pass this store.
  const bool released = compare_exchange(
      c.control, expected, cell_control(CellState::free, 0, position + capacity_));
  SHMBUS_ENFORCE(released, "a live consumer's record was taken from it");
  SHMBUS_TEST_HOOK(ring_after_release);
  store_relaxed(header_->consumers[entry].held, std::uint64_t{0});
  if (max_consumers_ == 1) {
    // The only consumer writes these words: a store, not a locked add.
    std::uint64_t& consumed = header_->consumer.consumed;
    store_relaxed(consumed, load_relaxed(consumed) + 1);
  } else {
    fetch_add(header_->consumer.consumed, std::uint64_t{1}, std::memory_order_relaxed);
  }
  wake_producers();
}

void Ring::pass_baton() noexcept {
  // A commit wakes one parked consumer; if more records are ready than were
  // woken for (a commit that found its predecessor still claimed), the taker
  // wakes the next consumer, so no ready record waits for a recheck.
  if (load_seq_cst(header_->data.waiters) != 0 && data_ready()) wake_consumers();
}

bool Ring::data_ready() const noexcept {
  const std::uint64_t h = load_seq_cst(header_->consumer.head_position);
  const std::uint64_t control = load_seq_cst(cell(h).control);
  const std::int64_t distance = seq_distance(control_seq(control), h);
  if (distance != 0) return distance > 0;
  const CellState state = control_state(control);
  return state != CellState::free && state != CellState::claimed;
}

void Ring::wait_for_data(std::uint32_t entry, Deadline until) noexcept {
  layout::WakeLine& data = header_->data;
  std::uint32_t& parked = header_->consumers[entry].parked;
  const std::uint32_t seq = load_acquire(data.seq);
  // seq_cst increment, then seq_cst re-check: the Dekker pair of the
  // producer's commit CAS + waiters load (wake_consumers).
  fetch_add(data.waiters, std::uint32_t{1});
  store_relaxed(parked, std::uint32_t{1});
  if (!data_ready()) futex_wait(&data.seq, seq, until);
  if (std::atomic_ref<std::uint32_t>(parked).exchange(0) == 1) {
    fetch_sub(data.waiters, std::uint32_t{1});
  }
}

void Ring::forget_parked(layout::ConsumerEntry& dead) noexcept {
  std::uint32_t expected = 1;
  if (compare_exchange(dead.parked, expected, std::uint32_t{0})) {
    fetch_sub(header_->data.waiters, std::uint32_t{1});
  }
}

std::uint64_t Ring::depth() const noexcept {
  const std::uint64_t head = load_acquire(header_->consumer.head_position);
  const std::uint64_t tail = claimed();
  return tail > head ? tail - head : 0;
}

std::uint64_t Ring::claimed() const noexcept {
  // A claim at position t needs the tail hint to read t, so the hint lags the
  // claims by at most one: a claimer that died before moving it on.
  const std::uint64_t tail = load_acquire(header_->producer.tail_position);
  const std::uint64_t control = load_acquire(cell(tail).control);
  const std::int64_t distance = seq_distance(control_seq(control), tail);
  // Claimed at the tail (distance 0, not free), or claimed and already skipped
  // or consumed (the cell awaits a later lap).
  const bool lagging = distance > 0 || (distance == 0 && control_state(control) != CellState::free);
  return tail + (lagging ? 1 : 0);
}

MailboxCounters Ring::counters() const noexcept {
  const layout::RingHeader& h = *header_;
  MailboxCounters out;
  out.claimed = claimed();
  out.consumed = load_acquire(h.consumer.consumed);
  out.sender_aborted = load_acquire(h.counters.sender_aborted);
  out.redelivered = load_acquire(h.counters.redelivered);
  out.bad_messages = load_acquire(h.counters.bad_messages);
  out.full_refusals = load_acquire(h.counters.full_refusals);
  out.consumer_wake_calls = load_acquire(h.data.wake_calls);
  out.producer_wake_calls = load_acquire(h.room.wake_calls);
  return out;
}

}  // namespace shmbus::detail
