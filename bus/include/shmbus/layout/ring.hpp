// -----------------------------------------------------------------------------
// layout/ring.hpp — a mailbox: a lock-free ring of cells in its own segment
// -----------------------------------------------------------------------------
//
// A mailbox segment: /dev/shm/shmbus.<bus>.<mailbox>
//
//   0      SegmentHeader                       128
//   128    RingDescriptor (read-only after creation)   128
//   256    ProducerLine  tail_position                  128
//   384    ConsumerLine  head_position, consumed        128
//   512    WakeLine      data_seq, data_waiters         128   consumers park here
//   640    WakeLine      room_seq, room_waiters         128   producers park here
//   768    RingCounters  sender_aborted, redelivered …  128
//   896    ConsumerEntry[kMaxConsumersPerMailbox]       16 each (1024)
//   1920   cells: capacity × cell_stride, each a CellHeader + payload
//
// Cells, not a byte stream: a record occupies one cell whose payload holds up
// to max_record bytes. The whole segment is reserved in /dev/shm when it is
// created (Boost's truncate uses posix_fallocate): a full /dev/shm is an
// error at creation, never a SIGBUS on a later write. Positions are monotonic uint64; cell index =
// position & (capacity - 1). Every record's state lives in one 64-bit word,
// changed only by a CAS (or a release store by its sole owner), so every cell
// names its owner at every instant — no claimed byte is ever ownerless:
//
//   bits 63..61  state   CellState
//   bits 60..37  owner   24-bit process reference (process_table.hpp)
//   bits 36..0   seq     free: the position the cell awaits; else: the
//                        position the record occupies (mod 2^37)
//
//   free(p) ──producer CAS──▶ claimed(p, P) ──P commit CAS──▶ committed(p, P)
//      ▲                           │ P aborts / P dead              │ consumer C CAS
//      │                           ▼                                ▼
//      │                      skipped(p) ──consumer CAS──┐     taken(p, C)
//      │                                                 │          │ C done CAS
//      └────────────────────── free(p + capacity) ◀──────┴──────────┘
//                              taken(p, C) with C dead ──takeover CAS──▶ taken(p, C')
//
// tail_position and head_position are hints moved by CAS; whoever finds the
// cell at the hint already claimed (or taken) helps move the hint on. A cell
// is claimable for position p exactly when it reads free(p), so "full" is a
// cell at the tail that still holds the record of position p - capacity.
// A stale producer can only win a cell for the position the cell awaits, so
// the CAS on the cell, not the tail, decides ownership (no ABA on positions
// until 2^37 records pass during one stall).
//
// Crash (each step of each side, the process stops for ever):
//   producer after the claim CAS, before commit: the cell says claimed(p, P);
//     once P is dead (process table) a consumer CASes it to free(p + cap) and
//     counts `sender_aborted`: P never returned "accepted", nothing is lost.
//   producer after commit: the record is committed; it is delivered.
//   producer between commit and wake: a parked consumer re-checks at its
//     bounded interval; the record is only delayed.
//   consumer before the take CAS: nothing changed (its entry's `held` may name
//     p; recovery checks the cell, which does not say taken by it).
//   consumer after the take CAS (holding the record): its ConsumerEntry says
//     {owner C, held p + 1}; a live consumer of the mailbox that finds C dead
//     CASes taken(p, C) -> taken(p, itself) and delivers it again, marked
//     redelivered, deliveries + 1 (`deliveries` is a plain byte its taker
//     stores right after the CAS; a taker that dies in between is counted
//     as one delivery, so only a second death in that same window can
//     undercount by one).
//   consumer parked (counted in data.waiters, its entry's `parked` = 1):
//     whoever frees the dead entry CASes parked 1 -> 0 and takes it out of
//     data.waiters, so producers stop making wake calls for it. (Killed in
//     the one-instruction gaps around that flag, the count stays one high:
//     producers then make a wake call per commit, slower but correct.)
//   consumer after the done CAS: the record is consumed; a stale `held` is
//     harmless, for the cell no longer says taken(p, C). Counters are added
//     right after the CAS that makes their event happen: a process killed
//     between the two leaves that counter one short (`consumed` after a
//     release, `sender_aborted` after a skip); no record is lost or repeated.
//
// Memory ordering: the producer writes header fields and payload, then
// commits with a CAS (seq_cst); a consumer that loads committed with acquire
// sees them all. A taker reads the payload, then releases the cell with a CAS
// (seq_cst), so the next producer's writes cannot overtake its reads. Wake-up
// protocol (Dekker): a consumer increments data_waiters, then re-reads the
// cell (both seq_cst) before it parks; a producer commits (seq_cst CAS), then
// loads data_waiters (seq_cst): at least one of them sees the other.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "shmbus/layout/constants.hpp"
#include "shmbus/layout/segment_header.hpp"

namespace shmbus::layout {

enum class CellState : std::uint8_t {
  free = 0,
  claimed = 1,
  committed = 2,
  taken = 3,
  skipped = 4,  // aborted by a live producer; consumed as nothing
  // 5..7 never written: a reader that sees them has found a torn or forged cell.
};

inline constexpr unsigned kSeqBits = 37;
inline constexpr std::uint64_t kSeqMask = (std::uint64_t{1} << kSeqBits) - 1;
inline constexpr unsigned kOwnerShift = kSeqBits;
inline constexpr std::uint64_t kOwnerMask = (std::uint64_t{1} << 24) - 1;
inline constexpr unsigned kStateShift = 61;

[[nodiscard]] constexpr std::uint64_t cell_control(CellState s, std::uint32_t owner,
                                                   std::uint64_t position) noexcept {
  return (std::uint64_t{static_cast<std::uint8_t>(s)} << kStateShift) |
         ((std::uint64_t{owner} & kOwnerMask) << kOwnerShift) | (position & kSeqMask);
}
[[nodiscard]] constexpr CellState control_state(std::uint64_t c) noexcept {
  return static_cast<CellState>(c >> kStateShift);
}
[[nodiscard]] constexpr std::uint32_t control_owner(std::uint64_t c) noexcept {
  return static_cast<std::uint32_t>((c >> kOwnerShift) & kOwnerMask);
}
[[nodiscard]] constexpr std::uint64_t control_seq(std::uint64_t c) noexcept {
  return c & kSeqMask;
}
// Signed distance seq - position in the 37-bit circle: 0 = this position,
// negative = an older lap, positive = a newer one.
[[nodiscard]] constexpr std::int64_t seq_distance(std::uint64_t seq,
                                                  std::uint64_t position) noexcept {
  const std::uint64_t d = (seq - position) & kSeqMask;
  return d >= (std::uint64_t{1} << (kSeqBits - 1))
             ? static_cast<std::int64_t>(d) - (std::int64_t{1} << kSeqBits)
             : static_cast<std::int64_t>(d);
}

enum RecordFlags : std::uint8_t {
  kRecordRedelivered = 1u << 0,  // a consumer died holding it; order is not kept
  kRecordLoan = 1u << 1,         // the payload is a LoanRecord (layout/blobs.hpp): the
                                 // record holds that block until it is consumed
};

// Precedes every record. Only `control` changes after the claim; the other
// fields are written by the claimer before commit (or by the taker: flags,
// deliveries) and are read after an acquire of `control`.
struct CellHeader {
  std::uint64_t control;      // see above
  std::uint32_t length;       // payload bytes, <= max_record
  std::uint32_t sequence;     // per sending handle; order checks use it
  std::uint32_t sender;       // process reference of the producer
  std::uint16_t type;         // user record type (a call, cast, reply… later)
  std::uint8_t flags;         // RecordFlags
  std::uint8_t deliveries;    // times handed to a consumer (saturates at 255)
  std::uint64_t correlation;  // user word carried with the record (call slots later)
};

enum class RingKind : std::uint32_t { mpsc = 1, mpmc = 2 };

struct RingDescriptor {
  RingKind kind;
  std::uint32_t capacity;       // cells, a power of two
  std::uint32_t max_record;     // payload bytes per record
  std::uint32_t cell_stride;    // sizeof(CellHeader) + max_record, rounded to kCacheLine
  std::uint32_t max_consumers;  // 1 for mpsc
  std::uint32_t reserved0;
  std::uint64_t cells_offset;   // from the segment start
  std::uint8_t reserved[96];
};

struct ProducerLine {
  std::uint64_t tail_position;  // hint: next position to claim; CAS forward
  std::uint8_t pad[kNoFalseSharing - 8];
};

struct ConsumerLine {
  std::uint64_t head_position;  // hint: next position to take; CAS forward
  std::uint64_t consumed;       // records done (fetch_add by takers)
  std::uint8_t pad[kNoFalseSharing - 16];
};

// A futex word and the number of parked waiters. The waker makes a system
// call only when `waiters` is non-zero.
struct WakeLine {
  std::uint32_t seq;            // futex word: bumped on every wake
  std::uint32_t waiters;
  std::uint64_t wake_calls;     // futex wake system calls made (counter)
  std::uint8_t pad[kNoFalseSharing - 16];
};

// Counters of records that left the normal path. Incremented with fetch_add
// on rare paths only.
struct RingCounters {
  std::uint64_t sender_aborted;  // claims skipped: producer dead or aborted
  std::uint64_t redelivered;     // records taken over from a dead consumer
  std::uint64_t bad_messages;    // torn or forged cells skipped, payloads failing verification
  std::uint64_t full_refusals;   // claims refused: mailbox_full
  std::uint64_t reserved_counter;
  std::uint8_t pad[kNoFalseSharing - 40];
};

struct ConsumerEntry {
  std::uint32_t owner;          // process reference; 0 = free entry; CAS
  std::uint32_t parked;         // 1 while counted in data.waiters; cleared by exchange/CAS
  std::uint64_t held;           // position + 1 of the record it holds (or is taking); 0 = none
};

struct RingHeader {
  RingDescriptor descriptor;
  ProducerLine producer;
  ConsumerLine consumer;
  WakeLine data;                // consumers wait for records here
  WakeLine room;                // producers wait for free cells here
  RingCounters counters;
  ConsumerEntry consumers[kMaxConsumersPerMailbox];
};

inline constexpr std::uint64_t kRingHeaderOffset = sizeof(SegmentHeader);
inline constexpr std::uint64_t kRingCellsOffset = kRingHeaderOffset + sizeof(RingHeader);

static_assert(std::is_trivially_copyable_v<CellHeader> && std::is_standard_layout_v<CellHeader>);
static_assert(sizeof(CellHeader) == 32 && alignof(CellHeader) == 8);
static_assert(offsetof(CellHeader, control) == 0);
static_assert(offsetof(CellHeader, length) == 8);
static_assert(offsetof(CellHeader, correlation) == 24);
static_assert(std::is_trivially_copyable_v<RingHeader> && std::is_standard_layout_v<RingHeader>);
static_assert(sizeof(RingDescriptor) == 128);
static_assert(sizeof(ProducerLine) == kNoFalseSharing && sizeof(ConsumerLine) == kNoFalseSharing);
static_assert(sizeof(WakeLine) == kNoFalseSharing && sizeof(RingCounters) == kNoFalseSharing);
static_assert(sizeof(ConsumerEntry) == 16);
static_assert(offsetof(RingHeader, producer) == 128);
static_assert(offsetof(RingHeader, consumer) == 256);
static_assert(offsetof(RingHeader, data) == 384);
static_assert(offsetof(RingHeader, room) == 512);
static_assert(offsetof(RingHeader, counters) == 640);
static_assert(offsetof(RingHeader, consumers) == 768);
static_assert(sizeof(RingHeader) == 768 + 16 * kMaxConsumersPerMailbox);
static_assert(kRingCellsOffset % kNoFalseSharing == 0);
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free);
static_assert(kSeqBits + 24 + 3 == 64);

}  // namespace shmbus::layout
