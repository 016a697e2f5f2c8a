// Mailbox::peek and Bus::peek_dead_letters: copies of the records a mailbox
// holds, taking none (ring/ring_peek.cpp says why a copy is never torn).
#include <cstring>

#include "blobs/blob_pool.hpp"
#include "bus/bus_core.hpp"
#include "bus/mailbox_factory.hpp"
#include "ring/ring.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/mailbox.hpp"

namespace shmbus {

namespace {

RecordInfo info_of(const detail::PeekedCell& cell) noexcept {
  RecordInfo info;
  info.position = cell.position;
  info.sequence = cell.header.sequence;
  info.sender = ProcessRef{cell.header.sender};
  info.type = cell.header.type;
  info.deliveries = cell.header.deliveries;
  info.redelivered = (cell.header.flags & layout::kRecordRedelivered) != 0;
  info.correlation = cell.header.correlation;
  info.loaned = (cell.header.flags & layout::kRecordLoan) != 0;
  return info;
}

// Replaces a loan record's ref by a copy of the block's bytes, or empties it
// and says why in ref_error. After the copy both the cell and the block's
// word are checked again (seqlock-style): the cell alone is not enough, for
// a block moved to the dead letters follows the copy there and can be freed
// and loaned again while the original's cell still says taken by its mover.
// A block is never freed without its word changing (the generation grows).
void read_loan(detail::BusCore& core, const detail::Ring& ring, PeekedRecord& record) {
  layout::LoanRecord ref{};
  if (record.payload.size() != sizeof ref) {
    record.info.ref_error = Errc::bad_ref;
    record.payload.clear();
    return;
  }
  std::memcpy(&ref, record.payload.data(), sizeof ref);
  record.payload.clear();
  auto pool = core.blobs();
  if (!pool) {
    record.info.ref_error = Errc::system_error;
    return;
  }
  const std::uint64_t where =
      layout::record_location(ref.home >> 8, ref.home & 0xff, record.info.position);
  const detail::ResolvedLoan resolved = (*pool)->resolve(ref, where);
  if (resolved.error != Errc{}) {
    record.info.ref_error = resolved.error;
    return;
  }
  record.payload.assign(resolved.payload.begin(), resolved.payload.end());
  // The cell first: still_holds() is a read-modify-write that keeps the
  // copy's reads before it, and the block's loads (acquire) come after it.
  bool whole = ring.still_holds(record.info.position);
  if (whole) {
    const detail::ResolvedLoan again = (*pool)->resolve(ref, where);
    whole = again.error == Errc{} && again.control == resolved.control;
  }
  if (!whole) {  // moved, freed or consumed while we copied
    record.payload.clear();
    record.info.ref_error = Errc::stale_ref;
  }
}

}  // namespace

std::vector<PeekedRecord> Mailbox::peek(std::size_t max) const {
  std::vector<PeekedRecord> out;
  const auto [begin, end] = ring_->live_window();
  for (std::uint64_t position = begin; position < end && out.size() < max; ++position) {
    auto cell = ring_->peek_at(position);
    if (!cell) continue;
    PeekedRecord record{info_of(*cell), cell->in_flight, std::move(cell->payload)};
    if (record.info.loaned) {
      read_loan(*core_, *ring_, record);
      if (record.info.ref_error == Errc::stale_ref && !ring_->still_holds(position)) continue;
    }
    out.push_back(std::move(record));
  }
  return out;
}

Result<std::vector<PeekedRecord>> Bus::peek_dead_letters(std::string_view service, std::size_t max) {
  auto dead = detail::MailboxFactory::open_dead_letters(core_, service);
  if (!dead) return tl::unexpected(dead.error());
  return dead->peek(max);
}

}  // namespace shmbus
