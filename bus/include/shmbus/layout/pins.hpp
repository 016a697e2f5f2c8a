// -----------------------------------------------------------------------------
// layout/pins.hpp — per-process pins on state versions, in the control segment
// -----------------------------------------------------------------------------
//
// Readers map the state segment read-only (layout/state.hpp), so what they
// hold cannot live there: each process slot owns one PinLine here, at
// pins_offset (control.hpp). A pin is one 64-bit cell that only its process
// writes (one store; 0 = empty) and that writers and reapers read:
//
//   0        8        16                     120      128
//   +--------+--------+-- … --+--------+--------+
//   | pin 0  | pin 1  |       | pin 14 | owner  |
//
// `owner` is the process reference (process_table.hpp) of the process that
// last used the line: pins written under another reference belong to a dead
// process and are ignored, and the reaper clears them (state/pins.cpp).
// What a pin's value means is the state segment's business (layout/state.hpp).
#pragma once

#include <cstdint>
#include <type_traits>

#include "shmbus/layout/constants.hpp"

namespace shmbus::layout {

struct PinLine {
  std::uint64_t pins[kPinsPerProcess];
  std::uint64_t owner;  // process reference of the pins' holder; 0 = none
};

static_assert(std::is_trivially_copyable_v<PinLine> && std::is_standard_layout_v<PinLine>);
static_assert(sizeof(PinLine) == kNoFalseSharing && alignof(PinLine) == 8);

}  // namespace shmbus::layout
