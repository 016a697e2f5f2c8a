// Pins the shared-memory layout: a change here must come with a layout diagram
// change and a kLayoutVersion bump (layout/constants.hpp).
#include <gtest/gtest.h>

#include <cstddef>

#include "shmbus/error.hpp"
#include "shmbus/layout/calls.hpp"
#include "shmbus/layout/control.hpp"
#include "shmbus/layout/process_table.hpp"
#include "shmbus/layout/registry.hpp"
#include "shmbus/layout/ring.hpp"
#include "shmbus/layout/segment_header.hpp"

namespace shmbus::layout {
namespace {

TEST(Layout, VersionIsPinned) { EXPECT_EQ(kLayoutVersion, 4u); }

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

TEST(Layout, ProcessTableHeaderLocatesTheRegistryAndTheCallSlots) {
  EXPECT_EQ(offsetof(ProcessTableHeader, capacity), 0u);
  EXPECT_EQ(offsetof(ProcessTableHeader, segment_mode), 4u);
  EXPECT_EQ(offsetof(ProcessTableHeader, slots_offset), 8u);
  EXPECT_EQ(offsetof(ProcessTableHeader, reclaimed), 16u);
  EXPECT_EQ(offsetof(ProcessTableHeader, registry_offset), 24u);
  EXPECT_EQ(offsetof(ProcessTableHeader, calls_offset), 32u);
  EXPECT_EQ(offsetof(ProcessTableHeader, calls_per_process), 40u);
  EXPECT_EQ(offsetof(ProcessTableHeader, call_stride), 44u);
  EXPECT_EQ(offsetof(ProcessTableHeader, max_reply), 48u);
  EXPECT_EQ(offsetof(ProcessTableHeader, reserved0), 52u);
  EXPECT_EQ(offsetof(ProcessTableHeader, doorbells_offset), 56u);
  EXPECT_EQ(offsetof(ProcessTableHeader, pins_offset), 64u);
}

TEST(Layout, CallSlotMatchesItsDiagram) {
  EXPECT_EQ(sizeof(CallSlotHeader), 64u);
  EXPECT_EQ(alignof(CallSlotHeader), 8u);
  EXPECT_EQ(offsetof(CallSlotHeader, control), 0u);
  EXPECT_EQ(offsetof(CallSlotHeader, deadline_ns), 8u);
  EXPECT_EQ(offsetof(CallSlotHeader, waiters), 16u);
  EXPECT_EQ(offsetof(CallSlotHeader, length), 20u);
  EXPECT_EQ(offsetof(CallSlotHeader, service), 24u);
  EXPECT_EQ(offsetof(CallSlotHeader, reply_flags), 28u);
  EXPECT_EQ(offsetof(CallSlotHeader, reply_loan), 32u);
  EXPECT_EQ(kMaxCallsPerProcess, 4096u);
  EXPECT_EQ(kMaxReplyBytes, 1u << 20);
  EXPECT_EQ(sizeof(ProcessDoorbell), 64u);
  EXPECT_EQ(offsetof(ProcessDoorbell, seq), 0u);
  EXPECT_EQ(offsetof(ProcessDoorbell, waiters), 4u);
}

TEST(Layout, CallStatesAndMessageKindsArePinned) {
  // Written into shared memory: their numbers are layout, not code.
  EXPECT_EQ(static_cast<unsigned>(CallState::free), 0u);
  EXPECT_EQ(static_cast<unsigned>(CallState::pending), 1u);
  EXPECT_EQ(static_cast<unsigned>(CallState::taken), 2u);
  EXPECT_EQ(static_cast<unsigned>(CallState::replied), 3u);
  EXPECT_EQ(static_cast<unsigned>(CallState::expired), 4u);
  EXPECT_EQ(static_cast<unsigned>(CallState::failed), 5u);
  EXPECT_EQ(static_cast<unsigned>(CallState::abandoned), 6u);
  EXPECT_EQ(static_cast<unsigned>(MessageKind::call), 1u);
  EXPECT_EQ(static_cast<unsigned>(MessageKind::cast), 2u);
}

TEST(Layout, CallControlWordPacksGenerationWhoAndState) {
  const std::uint64_t c = call_control(CallState::abandoned, 0xABCDEF, 0x923456789ULL);
  EXPECT_EQ(call_state(c), CallState::abandoned);
  EXPECT_EQ(call_who(c), 0xABCDEFu);
  EXPECT_EQ(call_generation(c), 0x923456789ULL);
  EXPECT_EQ(c, (0x923456789ULL << 28) | (0xABCDEFULL << 4) | 6u);
  // A zero-filled segment reads FREE(0) in every slot.
  EXPECT_EQ(call_control(CallState::free, 0, 0), 0u);
  // Wider values are cut, never spilled into a neighbouring field.
  EXPECT_EQ(call_generation(call_control(CallState::free, 0, kCallGenerationMask + 2)), 1u);
  EXPECT_EQ(call_who(call_control(CallState::failed, 0x1FFFFFF, 0)), 0xFFFFFFu);
  EXPECT_EQ(call_state(call_control(CallState::failed, 0x1FFFFFF, 0)), CallState::failed);
  EXPECT_EQ(kCallGenerationMask, (std::uint64_t{1} << 36) - 1);
  EXPECT_EQ(kCallWhoMask, (std::uint64_t{1} << 24) - 1);
}

TEST(Layout, CorrelationNamesSlotIndexAndGeneration) {
  const std::uint64_t c = call_correlation(4095, 0xFEDCBA987ULL);
  EXPECT_EQ(correlation_index(c), 4095u);
  EXPECT_EQ(correlation_generation(c), 0xFEDCBA987ULL);
  EXPECT_EQ(c, (std::uint64_t{4095} << 36) | 0xFEDCBA987ULL);
  EXPECT_EQ(correlation_index(~std::uint64_t{0}), (1u << 28) - 1);
}

TEST(Layout, RegistryMatchesItsDiagram) {
  EXPECT_EQ(sizeof(RegistryHeader), 128u);
  EXPECT_EQ(offsetof(RegistryHeader, mutex), 0u);
  EXPECT_EQ(offsetof(RegistryHeader, epoch), 64u);
  EXPECT_EQ(offsetof(RegistryHeader, capacity), 72u);
  EXPECT_EQ(kMaxServices, 64u);
  EXPECT_EQ(kMaxServersPerService, 64u);
  EXPECT_EQ(kMaxPartitions, 64u);
  EXPECT_EQ(kLatencyBuckets, 16u);
  EXPECT_EQ(kOutcomeCounters, 32u);
  // Caller-side outcomes are counted at their Errc value.
  EXPECT_LT(static_cast<std::uint32_t>(Errc::stopped), kOutcomeCounters);
}

TEST(Layout, ServiceIdentityMatchesItsDiagram) {
  EXPECT_EQ(sizeof(ServiceIdentity), 512u);
  EXPECT_EQ(offsetof(ServiceIdentity, state), 0u);
  EXPECT_EQ(offsetof(ServiceIdentity, name), 8u);
  EXPECT_EQ(sizeof(ServiceIdentity::name), 48u);
  EXPECT_EQ(offsetof(ServiceIdentity, request_identifier), 56u);
  EXPECT_EQ(offsetof(ServiceIdentity, reply_identifier), 60u);
  EXPECT_EQ(offsetof(ServiceIdentity, schema_hash), 64u);
  EXPECT_EQ(offsetof(ServiceIdentity, request_type), 72u);
  EXPECT_EQ(offsetof(ServiceIdentity, reply_type), 136u);
  EXPECT_EQ(offsetof(ServiceIdentity, schema_path), 200u);
  EXPECT_EQ(offsetof(ServiceIdentity, mailbox_capacity), 328u);
  EXPECT_EQ(offsetof(ServiceIdentity, max_record), 332u);
  EXPECT_EQ(offsetof(ServiceIdentity, max_deliveries), 336u);
  EXPECT_EQ(offsetof(ServiceIdentity, dead_letter_capacity), 340u);
  EXPECT_EQ(offsetof(ServiceIdentity, partitions), 344u);
  EXPECT_EQ(offsetof(ServiceIdentity, doorbell_seq), 348u);
  EXPECT_EQ(offsetof(ServiceIdentity, doorbell_waiters), 352u);
}

TEST(Layout, ServerEntryAndCountersMatchTheirDiagram) {
  EXPECT_EQ(sizeof(ServerCounters), 224u);
  EXPECT_EQ(offsetof(ServerCounters, calls), 0u);
  EXPECT_EQ(offsetof(ServerCounters, expired_skipped), 24u);
  EXPECT_EQ(offsetof(ServerCounters, caller_gone), 40u);
  EXPECT_EQ(offsetof(ServerCounters, bad_messages), 72u);
  EXPECT_EQ(offsetof(ServerCounters, replies_too_large), 80u);
  EXPECT_EQ(offsetof(ServerCounters, busy_ns), 88u);
  EXPECT_EQ(offsetof(ServerCounters, latency), 96u);
  EXPECT_EQ(sizeof(ServerEntry), 256u);
  EXPECT_EQ(offsetof(ServerEntry, owner), 0u);
  EXPECT_EQ(offsetof(ServerEntry, state), 4u);
  EXPECT_EQ(offsetof(ServerEntry, joined_unix_ns), 8u);
  EXPECT_EQ(offsetof(ServerEntry, counters), 16u);
  EXPECT_EQ(sizeof(ServiceCounters), 512u);
  EXPECT_EQ(offsetof(ServiceCounters, outcomes), 0u);
  EXPECT_EQ(offsetof(ServiceCounters, retired), 256u);
}

TEST(Layout, ServiceEntryMatchesItsDiagram) {
  EXPECT_EQ(offsetof(ServiceEntry, identity), 0u);
  EXPECT_EQ(offsetof(ServiceEntry, counters), 512u);
  EXPECT_EQ(offsetof(ServiceEntry, servers), 1024u);
  EXPECT_EQ(sizeof(ServiceEntry), 17408u);  // 1024 + 64 servers × 256
  EXPECT_EQ(alignof(ServiceEntry), 8u);
}

TEST(Layout, ControlLayoutOfTheSmallestBus) {
  constexpr ControlLayout l = control_layout(1, 1, 0);
  EXPECT_EQ(l.registry_offset, 384u);      // 256 + one slot, rounded to 128
  EXPECT_EQ(l.doorbells_offset, 1114624u);  // + 128 + 64 × 17408
  EXPECT_EQ(l.pins_offset, 1114752u);       // + one doorbell, rounded to 128
  EXPECT_EQ(l.calls_offset, 1114880u);      // + one pin line (128)
  EXPECT_EQ(l.call_stride, 64u);
  EXPECT_EQ(l.total_size, 1114944u);
}

TEST(Layout, ControlLayoutOfTheDefaultBus) {
  // CreateOptions' defaults: 256 processes, 64 calls in flight, 1024-byte replies.
  constexpr ControlLayout l = control_layout(256, 64, 1024);
  EXPECT_EQ(l.registry_offset, 16640u);
  EXPECT_EQ(l.doorbells_offset, 1130880u);
  EXPECT_EQ(l.pins_offset, 1147264u);
  EXPECT_EQ(l.calls_offset, 1147264u + 256u * 128u);
  EXPECT_EQ(l.call_stride, 1088u);
  EXPECT_EQ(l.total_size, 1180032u + 256u * 64u * 1088u);  // 18 MiB
}

TEST(Layout, ControlLayoutRoundsEveryPart) {
  constexpr ControlLayout l = control_layout(3, 2, 100);
  EXPECT_EQ(l.registry_offset, 512u);  // 256 + 192, rounded to 128
  EXPECT_EQ(l.doorbells_offset, 1114752u);
  EXPECT_EQ(l.pins_offset, 1115008u);   // + 3 × 64, rounded to 128
  EXPECT_EQ(l.calls_offset, 1115392u);  // + 3 × 128
  EXPECT_EQ(l.call_stride, 192u);       // 64 + 100, rounded to 64
  EXPECT_EQ(l.total_size, 1116544u);
  // The largest counts an attacher accepts cannot overflow the sizes.
  constexpr ControlLayout most = control_layout(kMaxProcesses, kMaxCallsPerProcess, kMaxReplyBytes);
  EXPECT_EQ(most.call_stride, 1048640u);
  EXPECT_EQ(most.total_size, 4398316192128u + 1024u * 128u);
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
