// Non-consuming reads of a ring: copies of the records it holds, for tools
// that list a mailbox (the dead letters) without taking anything.
//
// A record's payload is immutable from its commit until its cell is released
// (free for position + capacity) and claimed again: a committed record only
// becomes taken, or taken by another consumer, none of which writes the
// payload. So a copy is whole exactly when the cell still holds the record at
// the same position after the copy (seqlock-style: the sequence is the
// position, and it never comes back). A record that left while it was copied
// is left out; no value is changed, so a reader killed anywhere leaves nothing.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "ring/ring.hpp"
#include "shmbus/detail/atomic.hpp"

namespace shmbus::detail {

using layout::CellHeader;
using layout::CellState;
using layout::control_owner;
using layout::control_seq;
using layout::control_state;

namespace {

[[nodiscard]] bool holds_record(std::uint64_t control, std::uint64_t position) noexcept {
  const CellState state = control_state(control);
  return control_seq(control) == (position & layout::kSeqMask) &&
         (state == CellState::committed || state == CellState::taken);
}

}  // namespace

std::pair<std::uint64_t, std::uint64_t> Ring::live_window() const noexcept {
  // A position p + capacity cannot be claimed before p's record is gone, so
  // every record still in the ring is less than a lap behind the claims.
  const std::uint64_t end = claimed();
  return {end > capacity_ ? end - capacity_ : 0, end};
}

bool Ring::still_holds(std::uint64_t position) const noexcept {
  // The seqlock's second read, ordered after the caller's reads of what the
  // record names: a seq_cst read-modify-write adding 0 (its release half
  // keeps those reads before it) — it changes no value, so a reader killed
  // here leaves nothing. Not a fence: ThreadSanitizer builds refuse those.
  return holds_record(fetch_add(cell(position).control, std::uint64_t{0}), position);
}

std::optional<PeekedCell> Ring::peek_at(std::uint64_t position) const {
  const CellHeader& c = cell(position);
  // acquire: pairs with the producer's commit CAS; header and payload are visible.
  const std::uint64_t before = load_acquire(c.control);
  if (!holds_record(before, position)) return std::nullopt;
  PeekedCell out;
  out.position = position;
  out.header.control = before;
  out.header.length = load_relaxed(c.length);
  out.header.sequence = c.sequence;
  out.header.sender = c.sender;
  out.header.type = c.type;
  out.header.flags = c.flags;
  out.header.deliveries = c.deliveries;
  out.header.correlation = c.correlation;
  // A length past the cell is torn or forged: never read past the cell.
  if (out.header.length > max_record_) return std::nullopt;
  out.payload.resize(out.header.length);
  if (out.header.length != 0) std::memcpy(out.payload.data(), payload(position), out.header.length);
  if (!still_holds(position)) return std::nullopt;  // consumed while we copied
  out.in_flight = control_state(before) == CellState::taken && table_.is_alive(control_owner(before));
  return out;
}

}  // namespace shmbus::detail
