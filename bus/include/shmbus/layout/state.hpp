// -----------------------------------------------------------------------------
// layout/state.hpp — the state segment: keyed, versioned, immutable values
// -----------------------------------------------------------------------------
//
// The state segment: /dev/shm/shmbus.<bus>.~state (readers map it PROT_READ)
//
//   0            SegmentHeader                              128
//   128          StateHeader (writers' robust mutex, counts) 256
//   384          KeyEntry[kMaxStateKeys]                     16 each   (4 KiB)
//   4480         VersionSlot[kMaxStateVersions]              128 each  (128 KiB)
//   139264       data area: `capacity` bytes of extents      64-aligned extents
//
// KeyEntry: the hash table of keys (linear probing from hash % kMaxStateKeys).
//   hash     0 = never used (ends a probe); otherwise the key's hash, kept
//            after a remove (a tombstone a later put may reuse)
//   current  the handle of the key's published version; 0 = no value
//
// VersionSlot: one version of one key, immutable from publish until freed.
//   control = version id (bits 63..8, issued once from next_version, never
//             reused) | VersionState (bits 7..0), one word:
//
//   free ──begin_put──▶ writing(writer) ──publish──▶ published ──replaced,──▶ retired
//    ▲                      │ abort / writer dead                 removed      │  ▲
//    └──────────────────────┴───────────────── free ◀─ no pin ─ reclaiming ◀───┘  │
//                                                      a pin ──────────────────────┘
//
// A handle (KeyEntry::current, a pin, a StateRef in a message) is
// version id << 16 | slot index: it names one version and says where it is.
// A handle whose slot index is out of range, whose version is 0 or was never
// issued (>= next_version) is bad_ref; one whose slot no longer holds that
// version, published or retired, is stale_ref (a forged handle naming an
// issued version in the wrong slot looks the same: stale_ref).
//
// Pins (layout/pins.hpp, in the control segment): a pin cell holds the
// handle of the version its process is reading, or 0. Get: load
// entry.current (h); store h into a free pin cell (seq_cst); load
// entry.current again: still h → the version is protected (hazard-pointer
// rule); otherwise retry with the new handle. A writer frees a retired
// version only after marking it reclaiming (seq_cst) and finding no pin that
// names it: a reader's pin is either seen by that scan, or was stored after
// the writer replaced entry.current, so the reader's second load moves on.
// A scan reads a pin before its line's owner: a pin whose owner is not a
// live process is ignored (a new owner stores `owner` before its first pin).
//
// Writers are serialized by the robust mutex in StateHeader; values are
// written outside it (begin_put reserves, publish makes visible).
// Crash (a writer stops for ever between steps; the next locker repairs on
// EOWNERDEAD, and every writer sweeps under the mutex before it allocates):
//   begin_put: 1 next_version += 1; 2 fill the free slot (extent, key, writer);
//              3 control = writing(v). Dead before 3: the slot is still free
//              (a version id is skipped). Dead after 3, or later while it
//              writes the value outside the mutex: a writing slot whose
//              writer is dead — freed by the sweep; never visible.
//   publish:   1 value range, flags; 2 control = published(v); 3 entry.hash;
//              4 entry.current = h (seq_cst: readers see it from here);
//              5 old control = retired; 6 reclaim. Dead between 2 and 4 or
//              between 4 and 5: a published slot no entry names — the repair
//              retires it (between 2 and 4 the new value was never visible).
//   remove:    1 entry.current = 0; 2 old control = retired. Dead between:
//              the same repair.
//   reclaim:   1 control = reclaiming; 2 scan pins; 3 free or back to
//              retired. Dead in between: the repair turns reclaiming back
//              into retired; the next reclaim scans again.
// Extents are never listed apart: the used ones are derived from the slots
// (every non-free slot owns its extent), so there is no free list to corrupt.
//
// Memory ordering: a writer fills a slot and writes the value, then stores
// control = published (seq_cst) and then entry.current (seq_cst); a reader
// loads entry.current and control with seq_cst (acquire would do for them;
// the pin's store-then-reload needs seq_cst), so it sees the whole value.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "shmbus/layout/constants.hpp"
#include "shmbus/layout/segment_header.hpp"

namespace shmbus::layout {

inline constexpr std::uint32_t kMaxStateKeys = 256;       // power of two
inline constexpr std::uint32_t kMaxStateVersions = 1024;  // < 2^16 (handle's slot bits)
inline constexpr std::uint32_t kMaxStateKeyBytes = 63;
inline constexpr std::uint64_t kStateExtentAlign = 64;
inline constexpr std::uint64_t kStateDataAlign = 4096;
inline constexpr std::uint64_t kMinStateCapacity = 64u << 10;
inline constexpr std::uint64_t kMaxStateCapacity = std::uint64_t{1} << 40;

enum class VersionState : std::uint8_t {
  free = 0, writing = 1, published = 2, retired = 3, reclaiming = 4,
};

inline constexpr unsigned kHandleSlotBits = 16;
inline constexpr std::uint64_t kMaxVersionId = (std::uint64_t{1} << 48) - 1;

[[nodiscard]] constexpr std::uint64_t version_control(std::uint64_t version, VersionState s) noexcept {
  return (version << 8) | static_cast<std::uint8_t>(s);
}
[[nodiscard]] constexpr std::uint64_t version_of(std::uint64_t control) noexcept {
  return control >> 8;
}
[[nodiscard]] constexpr VersionState version_state_of(std::uint64_t control) noexcept {
  return static_cast<VersionState>(control & 0xff);
}
[[nodiscard]] constexpr std::uint64_t state_handle(std::uint64_t version, std::uint32_t slot) noexcept {
  return (version << kHandleSlotBits) | slot;
}
[[nodiscard]] constexpr std::uint64_t handle_version(std::uint64_t handle) noexcept {
  return handle >> kHandleSlotBits;
}
[[nodiscard]] constexpr std::uint32_t handle_slot(std::uint64_t handle) noexcept {
  return static_cast<std::uint32_t>(handle & ((1u << kHandleSlotBits) - 1));
}

// VersionSlot::flags
inline constexpr std::uint32_t kValueVerified = 1;  // a FlatBuffer the writer verified; see identifier

struct StateHeader {
  std::uint8_t mutex[64];          // RobustMutex (pthread_mutex_t); writers only
  std::uint64_t capacity;          // bytes of the data area
  std::uint64_t data_offset;       // from the segment start; kStateDataAlign-aligned
  std::uint64_t keys_offset;       // KeyEntry[max_keys]
  std::uint64_t versions_offset;   // VersionSlot[max_versions]
  std::uint32_t max_keys;          // kMaxStateKeys
  std::uint32_t max_versions;      // kMaxStateVersions
  std::uint64_t next_version;      // next id to issue (from 1); under the mutex; readers load it
  // Counters (under the mutex; display only).
  std::uint64_t puts;              // versions published
  std::uint64_t removes;
  std::uint64_t aborts;            // transactions aborted (also by a dead writer)
  std::uint64_t reclaimed;         // retired versions freed
  std::uint64_t repaired;          // steps of dead writers repaired or undone
  std::uint64_t full;              // puts refused with state_full
  // The process reference of the writer scanning pins right now (0: none):
  // a resolve() that finds a slot `reclaiming` waits for a live scanner, and
  // knows the version intact if the scanner died mid-scan.
  std::uint64_t scanner;
  std::uint8_t reserved[88];
};

struct KeyEntry {
  std::uint64_t hash;     // 0 = never used
  std::uint64_t current;  // handle, 0 = no value
};

struct VersionSlot {
  std::uint64_t control;        // version << 8 | VersionState; seq_cst stores
  std::uint32_t writer;         // process reference while writing
  std::uint32_t flags;          // kValueVerified
  std::uint64_t extent_offset;  // from the segment start; inside the data area
  std::uint64_t extent_size;    // multiple of kStateExtentAlign
  std::uint64_t value_offset;   // from the segment start; inside the extent
  std::uint64_t value_size;
  std::uint64_t key_hash;
  char identifier[4];           // FlatBuffers file identifier when kValueVerified
  std::uint32_t reserved0;
  std::uint8_t key_length;      // 1 … kMaxStateKeyBytes
  char key[kMaxStateKeyBytes];
};

inline constexpr std::uint64_t kStateHeaderOffset = sizeof(SegmentHeader);
inline constexpr std::uint64_t kStateKeysOffset = kStateHeaderOffset + 256;
inline constexpr std::uint64_t kStateVersionsOffset = kStateKeysOffset + kMaxStateKeys * 16;
inline constexpr std::uint64_t kStateDataOffset =
    (kStateVersionsOffset + kMaxStateVersions * 128 + kStateDataAlign - 1) / kStateDataAlign *
    kStateDataAlign;

static_assert(std::is_trivially_copyable_v<StateHeader> && std::is_standard_layout_v<StateHeader>);
static_assert(sizeof(StateHeader) == 256 && alignof(StateHeader) == 8);
static_assert(offsetof(StateHeader, capacity) == 64 && offsetof(StateHeader, next_version) == 104);
static_assert(offsetof(StateHeader, scanner) == 160);
static_assert(std::is_trivially_copyable_v<KeyEntry> && std::is_standard_layout_v<KeyEntry>);
static_assert(sizeof(KeyEntry) == 16 && alignof(KeyEntry) == 8);
static_assert(std::is_trivially_copyable_v<VersionSlot> && std::is_standard_layout_v<VersionSlot>);
static_assert(sizeof(VersionSlot) == 128 && alignof(VersionSlot) == 8);
static_assert(offsetof(VersionSlot, control) == 0 && offsetof(VersionSlot, value_offset) == 32);
static_assert(offsetof(VersionSlot, key_length) == 64);
static_assert(kStateKeysOffset == 384 && kStateVersionsOffset == 4480 && kStateDataOffset == 139264);
static_assert((kMaxStateKeys & (kMaxStateKeys - 1)) == 0 && kMaxStateVersions < (1u << kHandleSlotBits));
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);

}  // namespace shmbus::layout
