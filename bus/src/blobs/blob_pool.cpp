// blob_pool.cpp — the block state machine of layout/blobs.hpp.
#include "blobs/blob_pool.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "bus/bus_core.hpp"
#include "common/tsan_edge.hpp"
#include "bus/mailbox_factory.hpp"
#include "ring/ring.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/detail/test_hook.hpp"
#include "wait/futex.hpp"

namespace shmbus::detail {

using layout::BlockState;

namespace {

std::uint64_t block_end(const layout::BlobClassLine& c) noexcept {
  return c.data_offset + c.block_size * c.count;
}

}  // namespace

BlobPool::BlobPool(Segment segment) noexcept
    : segment_(std::move(segment)),
      classes_(reinterpret_cast<layout::BlobClassLine*>(segment_.base() + layout::kBlobClassesOffset)),
      blocks_(reinterpret_cast<layout::BlockDescriptor*>(segment_.base() + layout::kBlobDescriptorsOffset)) {}

Result<std::unique_ptr<BlobPool>> BlobPool::open(BusCore& core) {
  const std::string shm_name = blob_pool_shm_name(core.name());
  auto segment = Segment::attach(shm_name, layout::SegmentKind::blob_pool, Clock::now(),
                                 Errc::no_such_bus);
  if (!segment) return tl::unexpected(segment.error());
  const std::string where = "/dev/shm/" + shm_name;
  if (segment->size() < layout::kBlobDescriptorsOffset) {
    return fail(Errc::size_too_small, where + " is shorter than a blob pool's headers");
  }
  // Every bound below comes from the segment: one private copy, checked
  // against the mapping once and then used for ever, so no ref (and no later
  // write to the header) can lead a read outside it.
  layout::BlobPoolHeader header;
  std::memcpy(&header, segment->base() + sizeof(layout::SegmentHeader), sizeof header);
  std::array<layout::BlobClassLine, layout::kMaxBlobClasses> lines;
  std::memcpy(lines.data(), segment->base() + layout::kBlobClassesOffset, sizeof lines);
  if (header.class_count == 0 || header.class_count > layout::kMaxBlobClasses ||
      header.descriptors_offset != layout::kBlobDescriptorsOffset) {
    return fail(Errc::not_a_segment, where + ": blob pool header out of range");
  }
  std::uint64_t blocks = 0;
  std::uint64_t data = header.data_offset;
  for (std::uint32_t i = 0; i < header.class_count; ++i) {
    const auto& c = lines[i];
    if (c.first_block != blocks || c.count == 0 || c.count > layout::kMaxBlocksPerClass ||
        c.block_size == 0 || c.block_size > layout::kMaxBlockSize ||
        c.block_size % layout::kBlockAlignment != 0 || c.data_offset != data) {
      return fail(Errc::not_a_segment, where + ": blob class " + std::to_string(i) + " out of range");
    }
    blocks += c.count;
    data = block_end(c);
  }
  if (blocks != header.total_blocks ||
      header.data_offset < layout::kBlobDescriptorsOffset + blocks * sizeof(layout::BlockDescriptor)) {
    return fail(Errc::not_a_segment, where + ": blob pool block counts disagree");
  }
  if (segment->size() < data) {
    return fail(Errc::size_too_small, where + " has " + std::to_string(segment->size()) +
                                          " bytes, its classes need " + std::to_string(data));
  }
  auto pool = std::unique_ptr<BlobPool>(new BlobPool(std::move(*segment)));
  pool->class_count_ = header.class_count;
  pool->total_blocks_ = header.total_blocks;
  for (std::uint32_t i = 0; i < header.class_count; ++i) {
    pool->bounds_[i] = {lines[i].block_size, lines[i].data_offset, lines[i].count, lines[i].first_block};
  }
  return pool;
}

layout::BlockDescriptor& BlobPool::descriptor(std::uint32_t block) const noexcept {
  return blocks_[block];
}

std::uint32_t BlobPool::class_index(std::uint32_t block) const noexcept {
  std::uint32_t c = 0;
  while (c + 1 < class_count_ && block >= bounds_[c + 1].first_block) ++c;
  return c;
}

layout::BlobClassLine& BlobPool::class_of(std::uint32_t block) const noexcept {
  return classes_[class_index(block)];
}

std::span<std::byte> BlobPool::block_bytes(std::uint32_t block) const noexcept {
  const ClassBounds& c = bounds_[class_index(block)];
  return {segment_.base() + c.data_offset + (block - c.first_block) * c.block_size, c.block_size};
}

std::optional<std::uint32_t> BlobPool::try_take(std::uint32_t cls, std::uint32_t self,
                                                std::uint64_t& generation) noexcept {
  const ClassBounds& c = bounds_[cls];
  // Start where the last loan stopped: in a busy pool the next free block is
  // usually right there, so a loan costs a fetch_add and one or two CASes.
  const std::uint64_t start =
      fetch_add(classes_[cls].cursor, std::uint64_t{1}, std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < c.count; ++i) {
    const std::uint32_t block = c.first_block + static_cast<std::uint32_t>((start + i) % c.count);
    auto& d = descriptor(block);
    std::uint64_t control = load_acquire(d.control);
    if (layout::block_state(control) != BlockState::free) continue;
    const std::uint64_t g = layout::block_generation(control);
    if (compare_exchange(d.control, control, layout::block_control(BlockState::owned, self, g))) {
      generation = g;
      return block;
    }
  }
  return std::nullopt;
}

Expected<Loan> BlobPool::loan(const std::shared_ptr<BusCore>& core, std::size_t bytes,
                              LoanOptions options) noexcept {
  std::uint32_t cls = 0;
  while (cls < class_count_ && bounds_[cls].block_size < bytes) ++cls;
  if (cls == class_count_) return tl::unexpected(Errc::record_too_large);
  const std::uint32_t self = core->table().self().value;
  auto& line = classes_[cls];
  bool counted = false;
  for (;;) {
    // Any class at least as large will do; the smallest first.
    for (std::uint32_t k = cls; k < class_count_; ++k) {
      std::uint64_t generation = 0;
      if (auto block = try_take(k, self, generation)) {
        return Loan(core, *block, generation, block_bytes(*block), bytes);
      }
    }
    if (!counted) {
      fetch_add(line.exhausted, std::uint64_t{1}, std::memory_order_relaxed);
      counted = true;
    }
    const Deadline now = Clock::now();
    if (now >= options.deadline) return tl::unexpected(Errc::pool_exhausted);
    if (options.mode == WaitMode::busy_poll) {
      cpu_relax();
      continue;
    }
    // Dekker with release(): count ourselves, re-check, then park on the
    // class's free_seq; a block freed meanwhile bumped it.
    const std::uint32_t seen = load_seq_cst(line.free_seq);
    fetch_add(line.free_waiters, std::uint32_t{1});
    bool any = false;
    const ClassBounds& bounds = bounds_[cls];
    for (std::uint32_t b = bounds.first_block; b < bounds.first_block + bounds.count && !any; ++b) {
      any = layout::block_state(load_seq_cst(descriptor(b).control)) == BlockState::free;
    }
    if (!any) futex_wait(&line.free_seq, seen, std::min(options.deadline, now + kParkRecheckInterval));
    fetch_sub(line.free_waiters, std::uint32_t{1});
    // A holder may have died: give back what it held before looking again.
    if (!any) reclaim(*core);
  }
}

bool BlobPool::hand_to_record(const Loan& loan, std::uint64_t location) noexcept {
  // Only a block of this very pool, owned by this process: a Loan of another
  // bus (another mapping) or one inherited across fork() is refused.
  if (!loan.core_ || loan.index_ >= total_blocks_ ||
      block_bytes(loan.index_).data() != loan.block_.data() || !loan.core_->table().joined_here()) {
    return false;
  }
  auto& d = descriptor(loan.index_);
  std::uint64_t owned =
      layout::block_control(BlockState::owned, loan.core_->table().self().value, loan.generation_);
  if (load_acquire(d.control) != owned) return false;
  // Location first: whoever sees in_record (seq_cst CAS) sees where it is.
  // Nobody else writes it while we own the block.
  store_release(d.location[0], location);
  return compare_exchange(d.control, owned,
                          layout::block_control(BlockState::in_record, 0, loan.generation_));
}

// The block leaves the Loan: it keeps no way to reach it.
void BlobPool::disarm(Loan& loan) noexcept {
  loan.core_.reset();
  loan.block_ = {};
  loan.offset_ = 0;
  loan.length_ = 0;
  if (loan.allocator_) loan.allocator_->retire();
}

bool BlobPool::send(Claim& claim, Loan& loan, std::uint64_t location, std::uint16_t type,
                    std::uint64_t correlation) noexcept {
  const auto home = layout::location_service(location) << 8 | layout::location_mailbox(location);
  const layout::LoanRecord ref{loan.index_, home, loan.generation_, loan.offset_, loan.length_};
  std::memcpy(claim.payload_.data(), &ref, sizeof ref);
  claim.set_type(type);
  claim.set_correlation(correlation);
  if (!hand_to_record(loan, location)) {
    claim.abort();
    return false;
  }
  SHMBUS_TEST_HOOK(loan_before_commit);
  std::exchange(claim.ring_, nullptr)->commit(claim.position_, sizeof ref, layout::kRecordLoan);
  disarm(loan);  // the record holds the block now
  return true;
}

bool BlobPool::hand_over(Loan& loan, std::uint64_t location) noexcept {
  if (!hand_to_record(loan, location)) return false;
  disarm(loan);
  return true;
}

bool BlobPool::move_to_dead_letters(Mailbox& dead, const Delivery& delivery,
                                    std::uint32_t service) noexcept {
  if (delivery.loan_control_ == 0 || delivery.loan_block_ >= total_blocks_) return false;
  auto claim = dead.try_claim(sizeof(layout::LoanRecord));
  if (!claim) return false;
  const std::span<std::byte> block = block_bytes(delivery.loan_block_);
  const std::uint32_t home = service << 8 | layout::kDeadLetterMailbox;
  const layout::LoanRecord ref{
      delivery.loan_block_, home, layout::block_generation(delivery.loan_control_),
      static_cast<std::uint64_t>(delivery.payload_.data() - block.data()), delivery.payload_.size()};
  std::memcpy(claim->payload_.data(), &ref, sizeof ref);
  claim->set_type(delivery.info_.type);
  claim->set_correlation(delivery.info_.deliveries);  // as a copied dead letter (Bus::dead_letters)
  const std::uint64_t position = claim->position_;
  // Move while both records are ours (the original taken, the copy only
  // claimed): nobody can free or move the block in between.
  if (!move_record(delivery.loan_block_, delivery.loan_control_,
                   layout::record_location(service, layout::kDeadLetterMailbox, position))) {
    claim->abort();
    return false;
  }
  SHMBUS_TEST_HOOK(loan_dead_letter_before_commit);
  std::exchange(claim->ring_, nullptr)->commit(position, sizeof ref, layout::kRecordLoan);
  return true;
}

bool BlobPool::moved_on(const Delivery& delivery) const noexcept {
  if (delivery.loan_block_ >= total_blocks_) return false;
  const std::uint64_t control = load_acquire(descriptor(delivery.loan_block_).control);
  return layout::block_state(control) == BlockState::in_record &&
         layout::block_generation(control) == (delivery.loan_generation_ & layout::kBlockGenerationMask);
}

bool BlobPool::move_record(std::uint32_t block, std::uint64_t control,
                           std::uint64_t location) noexcept {
  auto& d = descriptor(block);
  // Only the holder of the record the word names may move it, and while it
  // holds that record nobody else changes the word: a mover whose word is
  // stale (its record was moved or consumed since) must not touch location.
  if (load_acquire(d.control) != control) return false;
  // The next word's slot: the current word still selects the old location.
  store_release(d.location[layout::location_index(control) ^ 1u], location);
  return compare_exchange(
      d.control, control,
      layout::block_control(BlockState::in_record, layout::block_holder(control) + 1,
                            layout::block_generation(control)));
}

bool BlobPool::release_word(std::uint32_t block, std::uint64_t control) noexcept {
  if (block >= total_blocks_) return false;
  auto& d = descriptor(block);
  std::uint64_t expected = control;
  const std::uint64_t next = (layout::block_generation(control) + 1) & layout::kBlockGenerationMask;
  if (!compare_exchange(d.control, expected, layout::block_control(BlockState::free, 0, next))) {
    return false;
  }
  auto& line = class_of(block);
  // seq_cst RMW, then the waiters load: Dekker with a parking loaner.
  fetch_add(line.free_seq, std::uint32_t{1});
  if (load_seq_cst(line.free_waiters) != 0) futex_wake(&line.free_seq, 1);
  return true;
}

bool BlobPool::release(std::uint32_t block, std::uint64_t generation,
                       layout::BlockState state) noexcept {
  if (block >= total_blocks_) return false;
  const std::uint64_t control = load_acquire(descriptor(block).control);
  if (layout::block_state(control) != state ||
      layout::block_generation(control) != (generation & layout::kBlockGenerationMask)) {
    return false;
  }
  return release_word(block, control);
}

ResolvedLoan BlobPool::resolve(const layout::LoanRecord& ref, std::uint64_t where) const noexcept {
  if (ref.block >= total_blocks_) return {{}, Errc::bad_ref, 0};
  const std::uint64_t size = bounds_[class_index(ref.block)].block_size;
  if (ref.offset > size || ref.length > size - ref.offset) return {{}, Errc::bad_ref, 0};
  // acquire: pairs with the sender's CAS into in_record, after its writes.
  const std::uint64_t control = load_acquire(descriptor(ref.block).control);
  const std::uint64_t current = layout::block_generation(control);
  // Generations only grow (a free bumps it): an older one was freed since,
  // a newer one was never issued, and this one must be in a record.
  if (ref.generation < current) return {{}, Errc::stale_ref, 0};
  if (ref.generation > current || layout::block_state(control) != BlockState::in_record) {
    return {{}, Errc::bad_ref, 0};
  }
  // Only in the record the block names: another copy is stale. The word
  // again after the location: a location read across a change is not this
  // word's (the block was freed, re-loaned or moved meanwhile).
  const auto& d = descriptor(ref.block);
  const std::uint64_t location = load_acquire(d.location[layout::location_index(control)]);
  if (location != where || load_seq_cst(d.control) != control) return {{}, Errc::stale_ref, 0};
  return {block_bytes(ref.block).subspan(ref.offset, ref.length), Errc{}, control};
}

bool BlobPool::record_still_holds(BusCore& core, std::uint64_t location) noexcept {
  switch (layout::location_kind(location)) {
    case layout::LocationKind::mailbox_record: {
      Mailbox* mailbox = service_mailbox(core, layout::location_service(location),
                                         layout::location_mailbox(location));
      // Cannot look (descriptors or memory short, no access): never free
      // what may still be read; a later reaper will look again.
      if (mailbox == nullptr) return true;
      const Ring& ring = *mailbox->ring_;
      const std::uint64_t position = layout::location_position(location);
      const std::uint64_t cell = load_acquire(ring.cell(position).control);
      if (layout::control_seq(cell) != position) return false;  // consumed, moved on
      switch (layout::control_state(cell)) {
        case layout::CellState::committed:
        case layout::CellState::taken: return true;  // delivered, or redelivered after a death
        case layout::CellState::claimed: return core.table().is_alive(layout::control_owner(cell));
        default: return false;  // skipped, or free for this very position (never committed)
      }
    }
    case layout::LocationKind::call_reply: {
      const auto& control = core.control();
      const std::uint32_t slot = layout::location_slot(location);
      const std::uint32_t index = layout::location_call_index(location);
      if (slot >= control.max_processes() || index >= control.calls_per_process()) return false;
      const std::uint64_t word = load_acquire(control.call_slot(slot, index).control);
      if (layout::call_generation(word) != layout::location_call_generation(location)) return false;
      // Handed over by its server before the REPLIED CAS: held while that
      // server lives; REPLIED: held until the caller frees the slot.
      if (layout::call_state(word) == layout::CallState::taken) {
        return core.table().is_alive(layout::call_who(word));
      }
      return layout::call_state(word) == layout::CallState::replied;
    }
    default: return false;
  }
}

// A service's mailboxes live as long as the bus (the registry never unlinks
// them, and '~' names cannot be removed through Bus::remove_mailbox), so a
// mapping, once made, stays the right one.
Mailbox* BlobPool::service_mailbox(BusCore& core, std::uint32_t service, std::uint32_t mailbox) {
  const std::uint32_t key = service << 8 | mailbox;
  std::lock_guard lock(mailboxes_mutex_);
  if (auto it = mailboxes_.find(key); it != mailboxes_.end() && it->second) return &*it->second;
  if (service >= layout::kMaxServices) return nullptr;
  const auto& raw = core.registry().entry(service).identity.name;
  std::string name(raw, strnlen(raw, sizeof raw));
  if (!core.registry().find(name) || *core.registry().find(name) != service) return nullptr;
  std::string shm_name;
  std::string label;
  if (mailbox == layout::kPoolMailbox) {
    shm_name = pool_shm_name(core, name);
    label = name + "~pool";
  } else if (mailbox == layout::kDeadLetterMailbox) {
    shm_name = dead_letter_shm_name(core, name);
    label = name + "~dead";
  } else {
    shm_name = partition_shm_name(core, name, mailbox - layout::kFirstPartitionMailbox);
    label = name + "~k" + std::to_string(mailbox - layout::kFirstPartitionMailbox);
  }
  // The reaper holds no shared_ptr to the core it belongs to: open through
  // a non-owning one (the pool lives inside the core).
  auto opened = MailboxFactory::open(std::shared_ptr<BusCore>(std::shared_ptr<BusCore>{}, &core),
                                     shm_name, label);
  if (!opened) return nullptr;
  auto& slot = mailboxes_[key];
  slot.emplace(std::move(*opened));
  return &*slot;
}

void BlobPool::record_releasing(std::uint32_t block) const noexcept {
  if (block < total_blocks_) tsan_release_edge(&descriptor(block).control);
}

std::uint32_t BlobPool::reclaim(BusCore& core) noexcept {
  std::uint32_t freed = 0;
  for (std::uint32_t block = 0; block < total_blocks_; ++block) {
    auto& d = descriptor(block);
    const std::uint64_t control = load_acquire(d.control);
    bool orphan = false;
    switch (layout::block_state(control)) {
      case BlockState::owned: orphan = !core.table().is_alive(layout::block_holder(control)); break;
      case BlockState::in_record: {
        // The location this word selects (stored before the CAS that made
        // it), trusted only if the word did not change while we read it.
        const std::uint64_t location = load_acquire(d.location[layout::location_index(control)]);
        if (load_seq_cst(d.control) != control) break;
        orphan = !record_still_holds(core, location);
        break;
      }
      default: break;
    }
    // The record's cell was read through this pool's own mapping of its
    // mailbox: the receiver's side of the edge is record_releasing().
    if (orphan) tsan_acquire_edge(&d.control);
    if (orphan && release_word(block, control)) {
      fetch_add(class_of(block).reclaimed, std::uint64_t{1}, std::memory_order_relaxed);
      ++freed;
    }
  }
  return freed;
}

std::vector<BlobClassInfo> BlobPool::info() const {
  std::vector<BlobClassInfo> out;
  for (std::uint32_t c = 0; c < class_count_; ++c) {
    const auto& line = classes_[c];
    const ClassBounds& bounds = bounds_[c];
    BlobClassInfo info;
    info.block_size = bounds.block_size;
    info.count = bounds.count;
    info.exhausted = load_relaxed(line.exhausted);
    info.reclaimed = load_relaxed(line.reclaimed);
    for (std::uint32_t b = bounds.first_block; b < bounds.first_block + bounds.count; ++b) {
      switch (layout::block_state(load_acquire(descriptor(b).control))) {
        case BlockState::free: ++info.free; break;
        case BlockState::owned: ++info.loaned; break;
        default: ++info.in_flight; break;
      }
    }
    out.push_back(info);
  }
  return out;
}

}  // namespace shmbus::detail
