// Pins the shared-memory layout: a change here must come with a layout diagram
// change and a kLayoutVersion bump (layout/constants.hpp).
#include <gtest/gtest.h>

#include <cstddef>

#include "shmbus/layout/process_table.hpp"
#include "shmbus/layout/ring.hpp"
#include "shmbus/layout/segment_header.hpp"

namespace shmbus::layout {
namespace {

TEST(Layout, VersionIsPinned) { EXPECT_EQ(kLayoutVersion, 2u); }

TEST(Layout, SegmentHeaderMatchesItsDiagram) {
  EXPECT_EQ(sizeof(SegmentHeader), 128u);
  EXPECT_EQ(offsetof(SegmentHeader, magic), 0u);
  EXPECT_EQ(offsetof(SegmentHeader, layout_version), 8u);
  EXPECT_EQ(offsetof(SegmentHeader, kind), 12u);
  EXPECT_EQ(offsetof(SegmentHeader, total_size), 16u);
  EXPECT_EQ(offsetof(SegmentHeader, creator_uid), 24u);
  EXPECT_EQ(offsetof(SegmentHeader, creator_pid), 28u);
  EXPECT_EQ(offsetof(SegmentHeader, creator_start_time), 32u);
  EXPECT_EQ(offsetof(SegmentHeader, created_unix_ns), 40u);
  EXPECT_EQ(offsetof(SegmentHeader, ready), 48u);
  EXPECT_EQ(offsetof(SegmentHeader, flags), 52u);
}

TEST(Layout, ProcessTableMatchesItsDiagram) {
  EXPECT_EQ(sizeof(ProcessTableHeader), 128u);
  EXPECT_EQ(sizeof(ProcessSlot), 64u);
  EXPECT_EQ(offsetof(ProcessSlot, pid), 8u);
  EXPECT_EQ(offsetof(ProcessSlot, uid), 12u);
  EXPECT_EQ(offsetof(ProcessSlot, start_time), 16u);
  EXPECT_EQ(offsetof(ProcessSlot, attached_unix_ns), 24u);
  EXPECT_EQ(offsetof(ProcessSlot, label), 32u);
  EXPECT_EQ(kControlSlotsOffset, 256u);
}

TEST(Layout, RingMatchesItsDiagram) {
  EXPECT_EQ(sizeof(CellHeader), 32u);
  EXPECT_EQ(kRingHeaderOffset, 128u);
  EXPECT_EQ(kRingHeaderOffset + offsetof(RingHeader, producer), 256u);
  EXPECT_EQ(kRingHeaderOffset + offsetof(RingHeader, consumer), 384u);
  EXPECT_EQ(kRingHeaderOffset + offsetof(RingHeader, data), 512u);
  EXPECT_EQ(kRingHeaderOffset + offsetof(RingHeader, room), 640u);
  EXPECT_EQ(kRingHeaderOffset + offsetof(RingHeader, counters), 768u);
  EXPECT_EQ(kRingHeaderOffset + offsetof(RingHeader, consumers), 896u);
  EXPECT_EQ(kRingCellsOffset, 1920u);
}

TEST(Layout, ControlWordPacksStateOwnerAndSequence) {
  const std::uint64_t c = cell_control(CellState::taken, 0xABCDEF, 0x1234567890ULL);
  EXPECT_EQ(control_state(c), CellState::taken);
  EXPECT_EQ(control_owner(c), 0xABCDEFu);
  EXPECT_EQ(control_seq(c), 0x1234567890ULL & kSeqMask);
  EXPECT_EQ(cell_control(CellState::free, 0, 0), 0u);
}

TEST(Layout, SequenceDistanceWrapsAround) {
  EXPECT_EQ(seq_distance(5, 5), 0);
  EXPECT_EQ(seq_distance(3, 5), -2);
  EXPECT_EQ(seq_distance(7, 5), 2);
  EXPECT_EQ(seq_distance(1, kSeqMask), 2);          // across the 2^37 wrap
  EXPECT_EQ(seq_distance(kSeqMask, 1), -2);
}

TEST(Layout, ProcessReferenceIsNeverZeroAndRoundTrips) {
  const std::uint32_t ref = process_ref(1023, 0x12345);
  EXPECT_EQ(ref_slot(ref), 1023u);
  EXPECT_EQ(ref_generation_bits(ref), 0x12345u & 0x3FFF);
  EXPECT_NE(process_ref(0, 1), 0u);
}

}  // namespace
}  // namespace shmbus::layout
