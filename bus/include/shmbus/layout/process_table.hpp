// -----------------------------------------------------------------------------
// layout/process_table.hpp — who is attached to a bus, and who has died
// -----------------------------------------------------------------------------
//
// The control segment: /dev/shm/shmbus.<bus>
//
//   0      SegmentHeader                                  128 bytes
//   128    ProcessTableHeader                             128 bytes
//   256    ProcessSlot[capacity]                          64 bytes each
//   …      the registry and the call slots: see control.hpp
//
// ProcessSlot (one cache line; only its holder writes it, except `state`):
//
//   0        8      12     16                 24               32           64
//   +--------+------+------+------------------+----------------+------------+
//   | state  | pid  | uid  | start_time       | attached_ns    | label[32]  |
//
// state = generation (high 32 bits) | SlotState (low 32 bits).
//
// Liveness is decided by the kernel, never by a missed heartbeat: slot i is
// guarded by an OFD lock (F_OFD_SETLK) on byte i of the control segment's
// file, taken before the slot is claimed and dropped by the kernel only when
// every descriptor of its holder is gone (already while it is an unreaped
// zombie). So for a reference (slot, generation):
//   - state's generation differs, or state is free  -> that process is dead;
//   - otherwise byte i unlocked                     -> dead;
//   - otherwise                                      -> alive.
// A dead owner's generation is retired (CAS live -> free) before anyone takes
// its byte — by a joiner (step 0) or a reaper — so nobody else's lock makes
// a dead owner read alive. (Only a joiner that read the slot free while
// another took it, published and died before its lock would, in step 2:
// conservatively alive, for microseconds.)
//
// Attach (the process stops for ever between step k and k+1):
//   0. If state says live and byte i is unlocked, its owner is dead: retire
//      it with a CAS live -> free (of two reapers exactly one wins).
//        dies after 0: slot free, nothing held: the next attacher takes it.
//   1. OFD-lock byte i (non-blocking; held -> try the next slot).
//        dies after 1: the kernel drops the lock; nothing else changed.
//   2. If state (still) says live, its owner is dead (we hold its lock):
//      reclaim it with a CAS live -> free (of two reapers exactly one wins).
//        dies after 2: slot free, lock dropped: the next attacher takes it.
//   3. Write pid, uid, start_time, label; then store state = {gen+1, live}
//      with release (no one else writes a free slot whose lock we hold).
//        dies after 3: lock dropped -> dead by the lock rule.
// Detach: CAS {gen, live} -> {gen, free}, then close the lock descriptor.
//
// Process references in rings, calls, loans and pins are 24 bits: slot (10) and
// the low 14 bits of the generation; generations whose low 14 bits are 0 are
// skipped, so a reference is never 0 and 0 means "nobody".
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "shmbus/layout/constants.hpp"
#include "shmbus/layout/segment_header.hpp"

namespace shmbus::layout {

enum class SlotState : std::uint32_t { free = 0, live = 1 };

struct ProcessTableHeader {
  std::uint32_t capacity;        // slots; <= kMaxProcesses
  std::uint32_t segment_mode;    // permission bits of every segment of the bus
  std::uint64_t slots_offset;    // from the segment start
  std::uint64_t reclaimed;       // dead slots reclaimed (counter; fetch_add)
  std::uint64_t registry_offset; // layout/registry.hpp; see control.hpp
  std::uint64_t calls_offset;    // layout/calls.hpp
  std::uint32_t calls_per_process;
  std::uint32_t call_stride;     // sizeof(CallSlotHeader) + max_reply, rounded to kCacheLine
  std::uint32_t max_reply;       // reply bytes a call slot holds
  std::uint32_t reserved0;
  std::uint64_t doorbells_offset;  // ProcessDoorbell[capacity] (calls.hpp)
  std::uint64_t pins_offset;       // PinLine[capacity] (pins.hpp)
  std::uint8_t reserved[56];
};

struct ProcessSlot {
  std::uint64_t state;           // generation << 32 | SlotState; CAS or release store
  std::uint32_t pid;
  std::uint32_t uid;
  std::uint64_t start_time;      // /proc/<pid>/stat field 22, clock ticks since boot
  std::uint64_t attached_unix_ns;
  char label[32];                // what the process called itself; display only
};

inline constexpr std::uint64_t kControlSlotsOffset =
    sizeof(SegmentHeader) + sizeof(ProcessTableHeader);

[[nodiscard]] constexpr std::uint64_t slot_state(std::uint32_t generation, SlotState s) noexcept {
  return (std::uint64_t{generation} << 32) | static_cast<std::uint32_t>(s);
}
[[nodiscard]] constexpr std::uint32_t slot_generation(std::uint64_t state) noexcept {
  return static_cast<std::uint32_t>(state >> 32);
}
[[nodiscard]] constexpr SlotState slot_state_of(std::uint64_t state) noexcept {
  return static_cast<SlotState>(static_cast<std::uint32_t>(state));
}

// 24-bit process reference: slot << 14 | (generation & 0x3fff). Never 0.
[[nodiscard]] constexpr std::uint32_t process_ref(std::uint32_t slot,
                                                  std::uint32_t generation) noexcept {
  return (slot << kGenerationBits) | (generation & ((1u << kGenerationBits) - 1));
}
[[nodiscard]] constexpr std::uint32_t ref_slot(std::uint32_t ref) noexcept {
  return ref >> kGenerationBits;
}
[[nodiscard]] constexpr std::uint32_t ref_generation_bits(std::uint32_t ref) noexcept {
  return ref & ((1u << kGenerationBits) - 1);
}

// A reference that names nobody alive: slot 1 with generation bits 0, which
// no live slot ever has. Used for records and entries whose owner let go of
// them without handing them on (see ConsumerEntry in ring.hpp).
inline constexpr std::uint32_t kOrphanRef = process_ref(1, 0);

static_assert(std::is_trivially_copyable_v<ProcessTableHeader>);
static_assert(std::is_standard_layout_v<ProcessTableHeader>);
static_assert(sizeof(ProcessTableHeader) == 128 && alignof(ProcessTableHeader) == 8);
static_assert(std::is_trivially_copyable_v<ProcessSlot>);
static_assert(std::is_standard_layout_v<ProcessSlot>);
static_assert(sizeof(ProcessSlot) == kCacheLine && alignof(ProcessSlot) == 8);
static_assert(offsetof(ProcessSlot, state) == 0);
static_assert(offsetof(ProcessSlot, start_time) == 16);
static_assert(kControlSlotsOffset == 256);
static_assert(kSlotBits + kGenerationBits == 24);

}  // namespace shmbus::layout
