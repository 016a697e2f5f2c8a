// ring.hpp — the lock-free cell ring of layout/ring.hpp, as one process sees it.
//
// Every protocol step, its memory ordering and its crash answer are in the
// layout header's comment; this class is the code of those steps. The
// descriptor is validated once against the mapping and kept in private
// members: nothing another process writes later can move a bound.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "process/process_table.hpp"
#include "segment/segment.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/error.hpp"
#include "shmbus/layout/ring.hpp"
#include "shmbus/mailbox.hpp"

namespace shmbus::detail {

// Moves a hint (tail or head) from `from` to `from + 1`; losing the race means
// someone else moved it, which is all we wanted.
inline void advance(std::uint64_t& hint, std::uint64_t from) noexcept {
  (void)compare_exchange(hint, from, from + 1);
}

// A copy of one record (Ring::peek_at): its header as read, and its payload.
struct PeekedCell {
  std::uint64_t position = 0;
  layout::CellHeader header{};
  bool in_flight = false;  // taken by a consumer that is alive
  std::vector<std::byte> payload;
};

class Ring {
 public:
  // Segment size for `options`, or bad_options naming the bad field.
  [[nodiscard]] static Result<std::uint64_t> segment_size(const MailboxOptions& options);
  // Lays out an empty ring (every cell free for its first position).
  static void initialize(std::span<std::byte> segment, const MailboxOptions& options) noexcept;
  // Validates the descriptor against the mapping. Fails with not_a_segment.
  [[nodiscard]] static Result<std::shared_ptr<Ring>> open(Segment segment, ProcessTable& table,
                                                          std::shared_ptr<void> keep_alive);

  // From a descriptor that open() copied and validated.
  Ring(Segment segment, const layout::RingDescriptor& descriptor, ProcessTable& table,
       std::shared_ptr<void> keep_alive) noexcept;

  // ---- producer side ----
  // A free cell for a record of `bytes`, or record_too_large / mailbox_full.
  [[nodiscard]] Expected<std::uint64_t> try_claim(std::uint32_t bytes) noexcept;
  // Parks (or spins) until room may have appeared, or until `until`.
  void wait_for_room(Deadline until, WaitMode mode) noexcept;
  void commit(std::uint64_t position, std::uint32_t length, std::uint8_t flags = 0) noexcept;
  void abort(std::uint64_t position) noexcept;
  void count_full_refusal() noexcept;

  // ---- consumer side ----
  // An entry in the consumer table; `inherited` receives the owner of a dead
  // consumer whose entry (and held record) this registration took over, or 0.
  [[nodiscard]] Result<std::uint32_t> register_consumer(std::uint32_t& inherited);
  // Frees the entry; with `holds_undelivered` (a record inherited and not yet
  // handed out) it is left to a dead owner instead, so the record is taken over.
  void unregister_consumer(std::uint32_t entry, bool holds_undelivered) noexcept;

  enum class Take { taken, empty, blocked };
  // Takes the record at the head if it is committed. Skips (and counts) dead
  // claims when `check_dead`, aborted claims and torn cells always.
  [[nodiscard]] Take try_take(std::uint32_t entry, bool check_dead, std::uint64_t& position) noexcept;
  // Moves the record at `held` (position + 1) to `entry`, marked redelivered,
  // if a dead consumer holds it. False when the cell is not taken by a dead
  // consumer (any more), or holds a forged length (then released, counted).
  [[nodiscard]] bool take_over(std::uint32_t entry, std::uint64_t held) noexcept;
  // Takes over one record held by a dead consumer of another entry, freeing
  // dead entries on the way.
  [[nodiscard]] std::optional<std::uint64_t> recover_one(std::uint32_t entry) noexcept;
  void release(std::uint32_t entry, std::uint64_t position) noexcept;
  // One park on the data futex, unless a record is ready; returns at `until`.
  void wait_for_data(std::uint32_t entry, Deadline until) noexcept;
  [[nodiscard]] bool data_ready() const noexcept;

  // ---- non-consuming reads (ring_peek.cpp) ----
  // The record at `position`, copied out without taking it, if the cell holds
  // it committed or taken (by anyone) both before and after the copy; nullopt
  // otherwise (never written, claimed, consumed, or left during the copy).
  [[nodiscard]] std::optional<PeekedCell> peek_at(std::uint64_t position) const;
  // Whether the cell still holds the record at `position`, committed or
  // taken (a check after copying bytes the record refers to, e.g. a loan).
  [[nodiscard]] bool still_holds(std::uint64_t position) const noexcept;
  // The positions whose records may still be in the ring: [claimed - capacity, claimed).
  [[nodiscard]] std::pair<std::uint64_t, std::uint64_t> live_window() const noexcept;

  // ---- cells ----
  [[nodiscard]] layout::CellHeader& cell(std::uint64_t position) const noexcept {
    return *reinterpret_cast<layout::CellHeader*>(cells_ + (position & mask_) * stride_);
  }
  [[nodiscard]] std::byte* payload(std::uint64_t position) const noexcept {
    return cells_ + (position & mask_) * stride_ + sizeof(layout::CellHeader);
  }
  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] std::uint32_t max_record() const noexcept { return max_record_; }
  [[nodiscard]] layout::RingKind kind() const noexcept { return kind_; }
  [[nodiscard]] std::uint32_t self() const noexcept { return table_.self().value; }
  [[nodiscard]] std::uint32_t next_sequence() noexcept {
    return next_sequence_.fetch_add(1, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t depth() const noexcept;
  // Positions handed to producers, also one whose claimer died before moving
  // the tail hint on.
  [[nodiscard]] std::uint64_t claimed() const noexcept;
  [[nodiscard]] MailboxCounters counters() const noexcept;
  [[nodiscard]] layout::RingHeader& header() const noexcept { return *header_; }
  [[nodiscard]] ProcessTable& table() const noexcept { return table_; }

 private:
  void skip(std::uint64_t position, std::uint64_t control, std::uint64_t& counter) noexcept;
  // Moves the head hint from `from` to `from + 1` (a CAS when consumers compete).
  void advance_head(std::uint64_t from) noexcept;
  // A cell more than a lap ahead of a hint that still reads `hint_value` is
  // forged: reset it to free(awaits), count it in bad_messages. False when
  // the hint moved (the read was stale, nothing is wrong).
  [[nodiscard]] bool repair_forged(layout::CellHeader& c, std::uint64_t control,
                                   std::uint64_t hint_value, const std::uint64_t& hint,
                                   std::uint64_t awaits) noexcept;
  void wake_consumers() noexcept;
  void pass_baton() noexcept;
  // Takes a dead consumer's park out of data.waiters, once.
  void forget_parked(layout::ConsumerEntry& dead) noexcept;
  void wake_producers() noexcept;

  Segment segment_;
  ProcessTable& table_;
  std::shared_ptr<void> keep_alive_;  // the BusCore that owns table_
  layout::RingHeader* header_;
  std::byte* cells_;
  std::uint32_t capacity_;
  std::uint64_t mask_;
  std::uint32_t max_record_;
  std::uint64_t stride_;
  std::uint32_t max_consumers_;
  layout::RingKind kind_;
  std::atomic<std::uint32_t> next_sequence_{0};
};

}  // namespace shmbus::detail
