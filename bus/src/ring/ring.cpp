#include "ring/ring.hpp"

#include <bit>
#include <cstring>
#include <string>

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

namespace {

constexpr std::uint64_t round_up(std::uint64_t n, std::uint64_t to) { return (n + to - 1) / to * to; }


}  // namespace

Result<std::uint64_t> Ring::segment_size(const MailboxOptions& options) {
  if (options.capacity < 2 || options.capacity > layout::kMaxCells ||
      !std::has_single_bit(options.capacity)) {
    return fail(Errc::bad_options, "mailbox capacity " + std::to_string(options.capacity) +
                                       " is not a power of two in 2 … 2^24");
  }
  if (options.max_record == 0 || options.max_record > layout::kMaxRecordBytes) {
    return fail(Errc::bad_options, "mailbox max_record " + std::to_string(options.max_record) +
                                       " is outside 1 … 64 MiB");
  }
  if (options.kind != layout::RingKind::mpsc && options.kind != layout::RingKind::mpmc) {
    return fail(Errc::bad_options, "mailbox kind must be mpsc or mpmc");
  }
  const std::uint64_t stride = round_up(sizeof(CellHeader) + options.max_record, layout::kCacheLine);
  return layout::kRingCellsOffset + stride * options.capacity;
}

void Ring::initialize(std::span<std::byte> segment, const MailboxOptions& options) noexcept {
  auto& header = *reinterpret_cast<layout::RingHeader*>(segment.data() + layout::kRingHeaderOffset);
  auto& d = header.descriptor;
  d.kind = options.kind;
  d.capacity = options.capacity;
  d.max_record = options.max_record;
  d.cell_stride = static_cast<std::uint32_t>(
      round_up(sizeof(CellHeader) + options.max_record, layout::kCacheLine));
  d.max_consumers = options.kind == layout::RingKind::mpsc ? 1 : layout::kMaxConsumersPerMailbox;
  d.cells_offset = layout::kRingCellsOffset;
  // free(0) is the all-zero word, so only cells awaiting a non-zero first
  // position need writing: cell i awaits position i.
  for (std::uint64_t i = 0; i < options.capacity; ++i) {
    auto* cell = reinterpret_cast<CellHeader*>(segment.data() + d.cells_offset + i * d.cell_stride);
    cell->control = cell_control(CellState::free, 0, i);
  }
}

Result<std::shared_ptr<Ring>> Ring::open(Segment segment, ProcessTable& table,
                                         std::shared_ptr<void> keep_alive) {
  const std::string where = "/dev/shm/" + segment.shm_name();
  if (segment.size() < layout::kRingCellsOffset) {
    return fail(Errc::not_a_segment, where + " is too short for a ring header");
  }
  // One private copy, validated and then used for ever: nothing another
  // process writes later can move a bound.
  layout::RingDescriptor d;
  std::memcpy(&d, segment.base() + layout::kRingHeaderOffset, sizeof d);
  const bool shape_ok = d.capacity >= 2 && d.capacity <= layout::kMaxCells &&
                        std::has_single_bit(d.capacity) && d.max_record > 0 &&
                        d.max_record <= layout::kMaxRecordBytes &&
                        d.cell_stride >= sizeof(CellHeader) + d.max_record &&
                        d.cell_stride % layout::kCacheLine == 0 &&
                        d.cells_offset >= layout::kRingCellsOffset &&
                        d.cells_offset % layout::kCacheLine == 0 &&
                        (d.kind == layout::RingKind::mpsc || d.kind == layout::RingKind::mpmc) &&
                        (d.max_consumers == 1 || d.max_consumers == layout::kMaxConsumersPerMailbox);
  // capacity * stride < 2^51 cannot overflow; cells_offset is checked on its
  // own so that a forged value near 2^64 cannot wrap the sum.
  if (!shape_ok || d.cells_offset > segment.size() ||
      std::uint64_t{d.capacity} * d.cell_stride > segment.size() - d.cells_offset) {
    return fail(Errc::not_a_segment, where + " has a ring descriptor that does not fit its segment");
  }
  return std::make_shared<Ring>(std::move(segment), d, table, std::move(keep_alive));
}

Ring::Ring(Segment segment, const layout::RingDescriptor& d, ProcessTable& table,
           std::shared_ptr<void> keep_alive) noexcept
    : segment_(std::move(segment)),
      table_(table),
      keep_alive_(std::move(keep_alive)),
      header_(reinterpret_cast<layout::RingHeader*>(segment_.base() + layout::kRingHeaderOffset)),
      cells_(segment_.base() + d.cells_offset),
      capacity_(d.capacity),
      mask_(capacity_ - 1),
      max_record_(d.max_record),
      stride_(d.cell_stride),
      max_consumers_(d.max_consumers),
      kind_(d.kind) {}

// ---- producer side --------------------------------------------------------------------------

Expected<std::uint64_t> Ring::try_claim(std::uint32_t bytes) noexcept {
  SHMBUS_ENFORCE(table_.joined_here(), "a Bus used in a forked child: attach again after fork()");
  if (bytes > max_record_) return tl::unexpected(Errc::record_too_large);
  std::uint64_t& tail = header_->producer.tail_position;
  for (;;) {
    const std::uint64_t t = load_relaxed(tail);
    CellHeader& c = cell(t);
    // acquire: pairs with the consumer's release of this cell (its done CAS).
    std::uint64_t control = load_acquire(c.control);
    const std::int64_t distance = seq_distance(control_seq(control), t);
    if (distance < 0) return tl::unexpected(Errc::mailbox_full);  // the cell holds lap t - capacity
    if (distance > static_cast<std::int64_t>(capacity_) && repair_forged(c, control, t, tail, t)) {
      continue;
    }
    if (distance > 0 || control_state(control) != CellState::free) {
      advance(tail, t);  // position t is taken or done already: help the hint on
      continue;
    }
    if (compare_exchange(c.control, control, cell_control(CellState::claimed, self(), t))) {
      SHMBUS_TEST_HOOK(ring_after_claim);
      advance(tail, t);
      SHMBUS_TEST_HOOK(ring_after_tail);
      return t;
    }
  }
}

bool Ring::repair_forged(layout::CellHeader& c, std::uint64_t control, std::uint64_t hint_value,
                         const std::uint64_t& hint, std::uint64_t awaits) noexcept {
  // With the hint still at `hint_value`, no real record can be more than one
  // lap ahead of it (the hint lags real claims and takes by at most one): the
  // cell was forged or torn. Without this, the hint would walk up to 2^36
  // positions one by one.
  if (load_acquire(hint) != hint_value) return false;  // a stale read: just retry
  if (compare_exchange(c.control, control, cell_control(CellState::free, 0, awaits))) {
    fetch_add(header_->counters.bad_messages, std::uint64_t{1}, std::memory_order_relaxed);
  }
  return true;
}

void Ring::commit(std::uint64_t position, std::uint32_t length, std::uint8_t flags) noexcept {
  CellHeader& c = cell(position);
  c.length = length;
  c.sender = self();
  c.flags = flags;
  c.deliveries = 0;
  SHMBUS_TEST_HOOK(ring_before_commit);
  std::uint64_t expected = cell_control(CellState::claimed, self(), position);
  // seq_cst CAS: publishes header and payload (pairs with the consumer's
  // load_acquire in try_take) and orders the waiters load in wake_consumers.
  const bool committed =
      compare_exchange(c.control, expected, cell_control(CellState::committed, self(), position));
  SHMBUS_ENFORCE(committed, "a live producer's claim was taken from it");
  SHMBUS_TEST_HOOK(ring_after_commit);
  wake_consumers();
}

void Ring::abort(std::uint64_t position) noexcept {
  std::uint64_t expected = cell_control(CellState::claimed, self(), position);
  const bool aborted = compare_exchange(cell(position).control, expected,
                                        cell_control(CellState::skipped, self(), position));
  SHMBUS_ENFORCE(aborted, "a live producer's claim was taken from it");
  wake_consumers();
}

void Ring::count_full_refusal() noexcept {
  fetch_add(header_->counters.full_refusals, std::uint64_t{1}, std::memory_order_relaxed);
}

void Ring::wake_consumers() noexcept {
  // seq_cst: the Dekker pair of the consumer's waiters increment + re-check.
  if (load_seq_cst(header_->data.waiters) == 0) return;
  fetch_add(header_->data.seq, std::uint32_t{1});
  futex_wake(&header_->data.seq, 1);
  fetch_add(header_->data.wake_calls, std::uint64_t{1}, std::memory_order_relaxed);
}

void Ring::wake_producers() noexcept {
  if (load_seq_cst(header_->room.waiters) == 0) return;
  fetch_add(header_->room.seq, std::uint32_t{1});
  futex_wake(&header_->room.seq, INT32_MAX);
  fetch_add(header_->room.wake_calls, std::uint64_t{1}, std::memory_order_relaxed);
}

void Ring::wait_for_room(Deadline until, WaitMode mode) noexcept {
  const auto room_at_tail = [this] {
    const std::uint64_t t = load_seq_cst(header_->producer.tail_position);
    return seq_distance(control_seq(load_seq_cst(cell(t).control)), t) >= 0;
  };
  if (mode != WaitMode::park) {
    if (spin_until(room_at_tail)) return;
    if (mode == WaitMode::busy_poll) return;
  }
  layout::WakeLine& room = header_->room;
  const std::uint32_t seq = load_acquire(room.seq);
  fetch_add(room.waiters, std::uint32_t{1});
  if (!room_at_tail()) futex_wait(&room.seq, seq, until);
  fetch_sub(room.waiters, std::uint32_t{1});
}

}  // namespace shmbus::detail
