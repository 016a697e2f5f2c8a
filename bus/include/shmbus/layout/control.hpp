// -----------------------------------------------------------------------------
// layout/control.hpp — where each part of the control segment starts
// -----------------------------------------------------------------------------
//
// The control segment: /dev/shm/shmbus.<bus>
//
//   0                SegmentHeader                               128
//   128              ProcessTableHeader (offsets below)          128
//   256              ProcessSlot[max_processes]                  64 each
//   registry_offset  RegistryHeader + ServiceEntry[kMaxServices]  (registry.hpp)
//   doorbells_offset ProcessDoorbell[max_processes]              64 each (calls.hpp)
//   pins_offset      PinLine[max_processes]                      128 each (pins.hpp)
//   calls_offset     call slots: max_processes × calls_per_process × call_stride
//                    (calls.hpp)
//
// The creator computes the offsets once and writes them into the
// ProcessTableHeader; an attacher re-computes them from the header's counts
// and refuses a segment whose stored offsets or size disagree (not_a_segment),
// so nothing another process wrote can move a bound.
#pragma once

#include <cstdint>
#include <type_traits>

#include "shmbus/layout/calls.hpp"
#include "shmbus/layout/pins.hpp"
#include "shmbus/layout/process_table.hpp"
#include "shmbus/layout/registry.hpp"

namespace shmbus::layout {

// Computed, never stored: the creator writes these offsets into the
// ProcessTableHeader (process_table.hpp, whose static_asserts pin them), and
// attachers recompute and compare.
struct ControlLayout {
  std::uint64_t registry_offset;
  std::uint64_t doorbells_offset;
  std::uint64_t pins_offset;
  std::uint64_t calls_offset;
  std::uint32_t call_stride;
  std::uint64_t total_size;
};

[[nodiscard]] constexpr std::uint64_t round_up(std::uint64_t n, std::uint64_t to) noexcept {
  return (n + to - 1) / to * to;
}

[[nodiscard]] constexpr ControlLayout control_layout(std::uint32_t max_processes,
                                                     std::uint32_t calls_per_process,
                                                     std::uint32_t max_reply) noexcept {
  ControlLayout l{};
  l.registry_offset =
      round_up(kControlSlotsOffset + std::uint64_t{max_processes} * sizeof(ProcessSlot),
               kNoFalseSharing);
  l.doorbells_offset = round_up(
      l.registry_offset + sizeof(RegistryHeader) + std::uint64_t{kMaxServices} * sizeof(ServiceEntry),
      kNoFalseSharing);
  l.pins_offset = round_up(l.doorbells_offset + std::uint64_t{max_processes} * sizeof(ProcessDoorbell),
                           kNoFalseSharing);
  l.calls_offset = round_up(l.pins_offset + std::uint64_t{max_processes} * sizeof(PinLine),
                            kNoFalseSharing);
  l.call_stride = static_cast<std::uint32_t>(round_up(sizeof(CallSlotHeader) + max_reply, kCacheLine));
  l.total_size = l.calls_offset +
                 std::uint64_t{max_processes} * calls_per_process * l.call_stride;
  return l;
}

static_assert(std::is_trivially_copyable_v<ControlLayout> && sizeof(ControlLayout) == 48);
static_assert(control_layout(1, 1, 0).registry_offset == 384);
static_assert(control_layout(256, 64, 4096).call_stride == 4160);

}  // namespace shmbus::layout
