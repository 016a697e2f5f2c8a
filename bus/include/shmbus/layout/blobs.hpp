// -----------------------------------------------------------------------------
// layout/blobs.hpp — the blob pool: blocks loaned, sent by reference, given back
// -----------------------------------------------------------------------------
//
// The blob pool segment: /dev/shm/shmbus.<bus>.~blobs
//
//   0                   SegmentHeader                                 128
//   128                 BlobPoolHeader                                128
//   256                 BlobClassLine[kMaxBlobClasses]                128 each
//   1280                BlockDescriptor[total_blocks]                 64 each
//   data_offset         class 0's blocks, then class 1's, …           block_size each
//                       (data_offset and every block: 4096-aligned)
//
// Every block names its one holder at every instant, in one 64-bit word
// changed only by CAS — no reference count, so nothing needs repair after a
// kill -9 (a count cannot say who held what):
//
//   bits 63..28  generation (36)   bumped each time the block is freed
//   bits 27..4   holder (24)       owned: the process reference; in_record: a
//                                  move count (dead-letter moves bump it)
//   bits  3..0   state             BlockState
//
//   free(g) ──loan CAS──▶ owned(g, P) ──send: location, then CAS──▶ in_record(g, 0)
//      ▲                     │ P drops it / P dead (reaper)            │
//      │                     ▼                                         │ record consumed:
//      └──────────────── free(g + 1) ◀─────────────────────────────────┘ receiver's done(),
//                                        or the reaper finds its record gone (orphan)
//
// In state in_record, the location the word selects (location[moves & 1],
// written before the CAS that made the word) names the record that holds the
// block: a cell of a service mailbox (service, mailbox, ring position) or a
// call slot's reply (caller slot, call index, call generation). The block is
// held exactly while that record still holds the same position (or the slot
// still says replied, or taken by a live server, with that generation) and
// its owner, if the record is only claimed, is alive. Every holder passes
// from "held" to "not held" once and never back, so anyone may check that
// and CAS an orphan free; the CAS names the full word, so a check that raced
// with a free, a new loan or a move changes nothing. Readers load the word,
// the location, then the word again: a location read across a change of
// word is never trusted. A record that cannot be checked (its mailbox
// cannot be mapped here) counts as held.
//
// A ref in a record (LoanRecord) names {block, generation, offset, length}: a
// block freed since carries another generation, so the ref is stale_ref; an
// index or range outside the pool is bad_ref. Neither is ever read. A ref
// resolves only in the record the block's location names (its mailbox and
// position, or its call slot): a second copy of a record — a dead letter
// moved twice by servers that died mid-move — is stale_ref, so no reader
// can be left holding a block another copy's done() freed.
//
// Crash (the process stops for ever between step k and k+1):
//   loan:    CAS free -> owned(P). Dead after: owned by a dead process; the
//            reaper CASes it free (reclaimed).
//   send:    1 claim a cell; 2 write the LoanRecord, flag kRecordLoan;
//            3 store location; 4 CAS owned(P) -> in_record; 5 commit the cell.
//            Dead before 4: owned by a dead process (reaper). Dead after 4,
//            before 5: the cell is claimed by a dead producer, so the check
//            finds an orphan; the consumer skips the cell (sender_aborted).
//   receive: the taker reads the block in place; done() releases the cell,
//            then CASes in_record -> free. Dead between the two: the cell has
//            moved on, the check finds an orphan. Dead before the release:
//            the record is redelivered with the block still held.
//   dead-letter move (the mover holds the original taken): 1 claim a cell of
//            the dead-letter mailbox and write the copy (same block, the dead
//            mailbox as home); 2 store location[(m + 1) & 1]; 3 CAS
//            in_record(g, m) -> in_record(g, m + 1); 4 commit the copy; 5
//            release the original cell (its done() frees nothing: the word
//            moved on). Nobody else can free the block meanwhile: both records
//            are held by the live mover. Dead before 3: the word still selects
//            the original's location; it is redelivered and moved again. Dead
//            between 3 and 4: the copy's claim is skipped, the block is an
//            orphan and freed, and the redelivered original is stale_ref: the
//            cast is counted in dead_letters_dropped (two deaths in one
//            message's life, counted, never silent). Dead between 4 and 5:
//            the letter is in the list; the redelivered original, stale_ref
//            with its block still in a record, counts nothing.
//   reply:   1 the server writes the slot's reply_loan and kReplyLoan (calls.hpp),
//            stores location (caller's slot), CASes owned -> in_record; 2 it
//            CASes the slot taken -> replied. The slot holds the block while
//            it says taken(g) by a live server or replied(g). A slot that says
//            abandoned instead (or whose caller is gone): the server frees the
//            block. Dead in between: taken by a dead server: an orphan. The caller reads the block in place; its
//            Reply frees the slot, then the block. Dead in between (or holding
//            the Reply): the slot is no longer replied(g): an orphan.
//
// Memory ordering: the writer's payload stores precede its CAS to in_record
// and the cell's commit CAS (seq_cst); a taker acquires the cell's control
// first. The free CAS follows the reader's last read of the block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "shmbus/layout/constants.hpp"

namespace shmbus::layout {

inline constexpr std::uint32_t kMaxBlobClasses = 8;
inline constexpr std::uint32_t kMaxBlocksPerClass = 65536;
inline constexpr std::uint64_t kBlockAlignment = 4096;
inline constexpr std::uint64_t kMaxBlockSize = std::uint64_t{1} << 30;

enum class BlockState : std::uint8_t { free = 0, owned = 1, in_record = 2 };

inline constexpr unsigned kBlockGenerationShift = 28;
inline constexpr unsigned kBlockHolderShift = 4;
inline constexpr std::uint64_t kBlockGenerationMask = (std::uint64_t{1} << 36) - 1;
inline constexpr std::uint64_t kBlockHolderMask = (std::uint64_t{1} << 24) - 1;

[[nodiscard]] constexpr std::uint64_t block_control(BlockState s, std::uint32_t holder,
                                                    std::uint64_t generation) noexcept {
  return ((generation & kBlockGenerationMask) << kBlockGenerationShift) |
         ((std::uint64_t{holder} & kBlockHolderMask) << kBlockHolderShift) |
         static_cast<std::uint8_t>(s);
}
[[nodiscard]] constexpr BlockState block_state(std::uint64_t c) noexcept {
  return static_cast<BlockState>(c & 0xf);
}
[[nodiscard]] constexpr std::uint32_t block_holder(std::uint64_t c) noexcept {
  return static_cast<std::uint32_t>((c >> kBlockHolderShift) & kBlockHolderMask);
}
[[nodiscard]] constexpr std::uint64_t block_generation(std::uint64_t c) noexcept {
  return (c >> kBlockGenerationShift) & kBlockGenerationMask;
}

// A block's location while in_record, one word:
//   mailbox record: kind 1 (bits 63..62) | service (bits 61..54) |
//                   mailbox (bits 53..46: 0 pool, 1 dead letters, 2 + p
//                   partition p) | ring position (bits 36..0)
//   call reply:     kind 2 | caller slot (bits 61..52) | call index
//                   (bits 51..36) | call generation (bits 35..0)
enum class LocationKind : std::uint8_t { none = 0, mailbox_record = 1, call_reply = 2 };
inline constexpr std::uint32_t kPoolMailbox = 0;
inline constexpr std::uint32_t kDeadLetterMailbox = 1;
inline constexpr std::uint32_t kFirstPartitionMailbox = 2;

[[nodiscard]] constexpr std::uint64_t record_location(std::uint32_t service, std::uint32_t mailbox,
                                                      std::uint64_t position) noexcept {
  return (std::uint64_t{1} << 62) | (std::uint64_t{service & 0xff} << 54) |
         (std::uint64_t{mailbox & 0xff} << 46) | (position & ((std::uint64_t{1} << 37) - 1));
}
[[nodiscard]] constexpr std::uint64_t reply_location(std::uint32_t slot, std::uint32_t index,
                                                     std::uint64_t generation) noexcept {
  return (std::uint64_t{2} << 62) | (std::uint64_t{slot & 0x3ff} << 52) |
         (std::uint64_t{index & 0xffff} << 36) | (generation & ((std::uint64_t{1} << 36) - 1));
}
[[nodiscard]] constexpr LocationKind location_kind(std::uint64_t l) noexcept {
  return static_cast<LocationKind>(l >> 62);
}
[[nodiscard]] constexpr std::uint32_t location_service(std::uint64_t l) noexcept {
  return static_cast<std::uint32_t>((l >> 54) & 0xff);
}
[[nodiscard]] constexpr std::uint32_t location_mailbox(std::uint64_t l) noexcept {
  return static_cast<std::uint32_t>((l >> 46) & 0xff);
}
[[nodiscard]] constexpr std::uint64_t location_position(std::uint64_t l) noexcept {
  return l & ((std::uint64_t{1} << 37) - 1);
}
[[nodiscard]] constexpr std::uint32_t location_slot(std::uint64_t l) noexcept {
  return static_cast<std::uint32_t>((l >> 52) & 0x3ff);
}
[[nodiscard]] constexpr std::uint32_t location_call_index(std::uint64_t l) noexcept {
  return static_cast<std::uint32_t>((l >> 36) & 0xffff);
}
[[nodiscard]] constexpr std::uint64_t location_call_generation(std::uint64_t l) noexcept {
  return l & ((std::uint64_t{1} << 36) - 1);
}

// Two location words: the one of a word with move count m is location[m & 1].
// A mover writes location[(m + 1) & 1], then CASes m -> m + 1, so the word
// and the location it selects always name the same record — also when the
// mover dies between the two (the word still selects the old location).
struct BlockDescriptor {
  std::uint64_t control;      // see above; CAS only
  std::uint64_t location[2];  // in_record only: who holds it (see above)
  std::uint8_t reserved[40];
};

[[nodiscard]] constexpr unsigned location_index(std::uint64_t control) noexcept {
  return block_holder(control) & 1u;
}

struct BlobClassLine {
  std::uint64_t block_size;    // bytes, a multiple of kBlockAlignment
  std::uint32_t count;         // blocks
  std::uint32_t first_block;   // index of its first BlockDescriptor
  std::uint64_t data_offset;   // from the segment start: block i of the class at + i * block_size
  std::uint64_t cursor;        // allocation hint: where the next loan starts looking (fetch_add)
  std::uint32_t free_seq;      // futex word: bumped when a block of the class is freed
  std::uint32_t free_waiters;  // loaners parked for a free block
  std::uint64_t exhausted;     // loans refused (pool_exhausted) or made to wait (counter)
  std::uint64_t reclaimed;     // blocks freed by a reaper (counter)
  std::uint8_t reserved[kNoFalseSharing - 56];
};

struct BlobPoolHeader {
  std::uint32_t class_count;    // 1 … kMaxBlobClasses, classes in increasing block_size
  std::uint32_t total_blocks;
  std::uint64_t descriptors_offset;
  std::uint64_t data_offset;    // first class's blocks
  std::uint8_t reserved[104];
};

// What a record (or a reply) carries instead of its payload when it is a loan.
struct LoanRecord {
  std::uint32_t block;       // index in the pool
  std::uint32_t home;        // the mailbox it travels in: service << 8 | mailbox
                             // (record_location numbering); 0 for a reply
  std::uint64_t generation;  // the block's generation when it was sent
  std::uint64_t offset;      // payload offset in the block
  std::uint64_t length;      // payload bytes
};

inline constexpr std::uint64_t kBlobClassesOffset = 256;
inline constexpr std::uint64_t kBlobDescriptorsOffset =
    kBlobClassesOffset + kMaxBlobClasses * sizeof(BlobClassLine);

static_assert(std::is_trivially_copyable_v<BlockDescriptor> && std::is_standard_layout_v<BlockDescriptor>);
static_assert(sizeof(BlockDescriptor) == kCacheLine && offsetof(BlockDescriptor, location) == 8);
static_assert(location_index(block_control(BlockState::in_record, 3, 0)) == 1);
static_assert(std::is_trivially_copyable_v<BlobClassLine> && std::is_standard_layout_v<BlobClassLine>);
static_assert(sizeof(BlobClassLine) == kNoFalseSharing && offsetof(BlobClassLine, free_seq) == 32);
static_assert(std::is_trivially_copyable_v<BlobPoolHeader> && sizeof(BlobPoolHeader) == 128);
static_assert(std::is_trivially_copyable_v<LoanRecord> && sizeof(LoanRecord) == 32);
static_assert(kBlobDescriptorsOffset == 1280);
static_assert(kBlockGenerationShift + 36 == 64 && kBlockHolderShift + 24 == kBlockGenerationShift);
static_assert(block_state(block_control(BlockState::in_record, 0xffffff, ~0ull)) ==
              BlockState::in_record);
static_assert(location_position(record_location(63, 65, (1ull << 37) - 1)) == (1ull << 37) - 1);
static_assert(location_mailbox(record_location(63, 65, 0)) == 65);


}  // namespace shmbus::layout
