// -----------------------------------------------------------------------------
// layout/segment_header.hpp — the first 128 bytes of every shmbus segment
// -----------------------------------------------------------------------------
//
//   0        8        12       16                24       28       32
//   +--------+--------+--------+-----------------+--------+--------+
//   | magic  | layout | kind   | total_size      | uid    | pid    |
//   +--------+--------+--------+-----------------+--------+--------+
//   32                 40                48       52       56          128
//   | creator_start_time | created_unix_ns | ready | flags  | reserved … |
//
// Written once by the creator, in three publications (Aeron's CnC rule):
// every field but `magic` and `ready`; then `magic` with release; then the
// segment's body; then `ready` with release. An attacher that loads
// magic == 0 waits for the header; magic set and ready == 0 means the body is
// being built: it waits, unless the creator (pid + start time, final once
// the magic is) is dead: then the segment is abandoned and `shmbus gc`
// removes it. `magic`, `layout_version` and `ready`
// never move, so every build can tell another build's segment apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "shmbus/layout/constants.hpp"

namespace shmbus::layout {

enum class SegmentKind : std::uint32_t { control = 1, mailbox = 2, blob_pool = 3, state = 4 };

enum SegmentFlags : std::uint32_t {
  kSegmentTrusted = 1u << 0,  // bus created trusted: receivers skip the FlatBuffers verifier
};

struct SegmentHeader {
  std::uint64_t magic;               // kMagic, else: not a shmbus segment
  std::uint32_t layout_version;      // the creator's kLayoutVersion
  SegmentKind kind;
  std::uint64_t total_size;          // bytes, header included
  std::uint32_t creator_uid;
  std::uint32_t creator_pid;
  std::uint64_t creator_start_time;  // /proc/<pid>/stat field 22: tells a reused pid apart
  std::uint64_t created_unix_ns;
  std::uint32_t ready;               // 0 while building, 1 once every byte is final
  std::uint32_t flags;               // SegmentFlags
  std::uint8_t reserved[72];         // zero
};

static_assert(std::is_trivially_copyable_v<SegmentHeader>);
static_assert(std::is_standard_layout_v<SegmentHeader>);
static_assert(sizeof(SegmentHeader) == 128 && alignof(SegmentHeader) == 8);
static_assert(offsetof(SegmentHeader, magic) == 0);
static_assert(offsetof(SegmentHeader, layout_version) == 8);
static_assert(offsetof(SegmentHeader, kind) == 12);
static_assert(offsetof(SegmentHeader, total_size) == 16);
static_assert(offsetof(SegmentHeader, creator_start_time) == 32);
static_assert(offsetof(SegmentHeader, ready) == 48);

}  // namespace shmbus::layout
