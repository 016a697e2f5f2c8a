// -----------------------------------------------------------------------------
// layout/constants.hpp — numbers that every build attaching to a bus must share
// -----------------------------------------------------------------------------
//
// Bump kLayoutVersion on any change in layout/: a width, an order, a meaning or
// a constant. Attaching to a segment of another version is `layout_mismatch`,
// never undefined behaviour. tests/unit/layout_test.cpp pins the sizes and
// offsets below, so a silent layout change fails CI.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shmbus::layout {

// A literal, never std::hardware_destructive_interference_size: that one
// varies with compiler flags, and the layout must not.
inline constexpr std::size_t kCacheLine = 64;
// Hot words get two cache lines: x86 adjacent-line prefetch pairs lines.
inline constexpr std::size_t kNoFalseSharing = 2 * kCacheLine;

// "SHMBUS01" read as a little-endian uint64.
inline constexpr std::uint64_t kMagic = 0x31305355424d4853ULL;
inline constexpr std::uint32_t kLayoutVersion = 4;  // 4: ServiceIdentity::closed

// Process references pack a table slot and the low bits of its generation into
// 24 bits, so they fit a record's control word (see ring.hpp).
inline constexpr unsigned kSlotBits = 10;
inline constexpr unsigned kGenerationBits = 14;
inline constexpr std::uint32_t kMaxProcesses = 1u << kSlotBits;  // per bus

inline constexpr std::uint32_t kMaxConsumersPerMailbox = 64;
inline constexpr std::uint32_t kMaxRecordBytes = 64u << 20;  // per-ring maximum's ceiling
inline constexpr std::uint32_t kMaxCells = 1u << 24;

// State pins per process (layout/pins.hpp): how many state views one process
// may hold at once.
inline constexpr std::uint32_t kPinsPerProcess = 15;

}  // namespace shmbus::layout
