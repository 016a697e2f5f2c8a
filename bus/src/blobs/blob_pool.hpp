// blob_pool.hpp — create, map and work the blob pool of layout/blobs.hpp:
// loan a block, hand it to a record, free it, and find orphans.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "segment/segment.hpp"
#include "shmbus/error.hpp"
#include "shmbus/layout/blobs.hpp"
#include "shmbus/loan.hpp"
#include "shmbus/mailbox.hpp"

namespace shmbus::detail {

class BusCore;

// "shmbus.<bus>.~blobs"
[[nodiscard]] std::string blob_pool_shm_name(std::string_view bus);

// Checks `classes` (bad_options names the first bad one).
[[nodiscard]] Result<void> check_blob_classes(std::span<const BlobClass> classes);

// Creates the pool segment exclusively with every block free. Fails like
// Segment::create.
[[nodiscard]] Result<void> create_blob_pool(std::string_view bus, std::span<const BlobClass> classes,
                                            std::uint32_t mode);

// A resolved ref: the payload in the pool, or why it does not resolve.
struct ResolvedLoan {
  std::span<const std::byte> payload;
  Errc error = Errc{};  // stale_ref or bad_ref; Errc{} when resolved
  std::uint64_t control = 0;  // the block's word when resolved: done() frees from it
};

class BlobPool {
 public:
  // Maps the pool of `core`'s bus and checks its layout. Fails with
  // no_such_bus, not_a_segment, layout_mismatch, size_too_small,
  // permission_denied or system_error.
  [[nodiscard]] static Result<std::unique_ptr<BlobPool>> open(BusCore& core);

  // A free block of the smallest class holding `bytes`, owned by this
  // process. Fails with record_too_large or pool_exhausted.
  [[nodiscard]] Expected<Loan> loan(const std::shared_ptr<BusCore>& core, std::size_t bytes,
                                    LoanOptions options) noexcept;

  // owned(g, self) -> in_record(g, 0) at `location`. False unless `loan` is
  // a block of this pool owned by this process (not a Loan of another bus,
  // nor one inherited across fork()).
  bool hand_to_record(const Loan& loan, std::uint64_t location) noexcept;
  void disarm(Loan& loan) noexcept;
  // Sends `loan` in `claim` (a cell of sizeof(LoanRecord) bytes): writes its
  // ref, hands the block to the record at `location`, commits (steps 2–5 of
  // "send" in layout/blobs.hpp) and disarms the Loan: the block is the
  // record's. False when the block is not ours (never for a live Loan): the
  // claim is aborted and the loan stays ours.
  bool send(Claim& claim, Loan& loan, std::uint64_t location, std::uint16_t type,
            std::uint64_t correlation) noexcept;
  // Hands `loan`'s block to the record at `location` (a call slot's reply)
  // and disarms the Loan. False when the block is not ours.
  bool hand_over(Loan& loan, std::uint64_t location) noexcept;
  // Moves a received loan cast to `dead` (service `service`'s dead-letter
  // mailbox): steps 1–3 of "dead-letter move"; the block follows the copy,
  // and the original's done() no longer frees it. False: no room (the block
  // stays with the original, freed by its done()). True once the copy is in.
  bool move_to_dead_letters(Mailbox& dead, const Delivery& delivery, std::uint32_t service) noexcept;
  // Whether a loan delivery whose ref did not resolve has its block still in
  // another record of the same generation: a copy the block moved to (a dead
  // letter moved already), not a block given back.
  [[nodiscard]] bool moved_on(const Delivery& delivery) const noexcept;
  // in_record(g, m) = `control` -> in_record(g, m + 1) at `location`, whose
  // moves are m + 1 (dead-letter move).
  bool move_record(std::uint32_t block, std::uint64_t control, std::uint64_t location) noexcept;
  // Frees the block if it is still `state` at `generation` (owned by us, or
  // in_record: the record that held it was consumed). Wakes parked loaners.
  bool release(std::uint32_t block, std::uint64_t generation, layout::BlockState state) noexcept;
  // Frees the block if its word is still exactly `control` (a receiver's
  // done(): a block moved to a dead letter since has another word).
  bool release_word(std::uint32_t block, std::uint64_t control) noexcept;
  // A receiver about to release the cell that holds the block's record: the
  // reaper may see the cell released through its own mapping and free the
  // block first (common/tsan_edge.hpp; no code outside TSan builds).
  void record_releasing(std::uint32_t block) const noexcept;

  // The payload a LoanRecord names, if its block still holds that generation
  // in the record at `where` (the reader's own location): stale_ref (freed
  // since, or a copy the block no longer names) or bad_ref (outside the pool).
  [[nodiscard]] ResolvedLoan resolve(const layout::LoanRecord& ref, std::uint64_t where) const noexcept;

  // Frees blocks owned by dead processes and blocks whose record is gone;
  // returns how many it freed. Maps service mailboxes by name as needed.
  std::uint32_t reclaim(BusCore& core) noexcept;

  [[nodiscard]] std::vector<BlobClassInfo> info() const;
  [[nodiscard]] std::span<std::byte> block_bytes(std::uint32_t block) const noexcept;
  [[nodiscard]] std::uint32_t total_blocks() const noexcept { return total_blocks_; }

 private:
  // Where a class's blocks lie: copied from the segment and checked against
  // the mapping once, by open(), then used for ever — a process writing the
  // pool's header or class lines later cannot move a read outside it.
  struct ClassBounds {
    std::uint64_t block_size = 0;
    std::uint64_t data_offset = 0;
    std::uint32_t count = 0;
    std::uint32_t first_block = 0;
  };

  explicit BlobPool(Segment segment) noexcept;
  [[nodiscard]] layout::BlockDescriptor& descriptor(std::uint32_t block) const noexcept;
  [[nodiscard]] std::uint32_t class_index(std::uint32_t block) const noexcept;
  [[nodiscard]] layout::BlobClassLine& class_of(std::uint32_t block) const noexcept;
  [[nodiscard]] std::optional<std::uint32_t> try_take(std::uint32_t cls, std::uint32_t self,
                                                      std::uint64_t& generation) noexcept;
  [[nodiscard]] bool record_still_holds(BusCore& core, std::uint64_t location) noexcept;
  // Service `service`'s mailbox `mailbox` (layout/blobs.hpp numbering),
  // mapped once; nullptr when it no longer exists.
  [[nodiscard]] Mailbox* service_mailbox(BusCore& core, std::uint32_t service, std::uint32_t mailbox);

  Segment segment_;
  layout::BlobClassLine* classes_ = nullptr;
  layout::BlockDescriptor* blocks_ = nullptr;
  std::uint32_t class_count_ = 0;
  std::uint32_t total_blocks_ = 0;
  std::array<ClassBounds, layout::kMaxBlobClasses> bounds_{};
  std::mutex mailboxes_mutex_;  // the reaper's cache of mapped service mailboxes
  std::unordered_map<std::uint32_t, std::optional<Mailbox>> mailboxes_;
};

}  // namespace shmbus::detail
