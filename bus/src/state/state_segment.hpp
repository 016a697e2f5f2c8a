// state_segment.hpp — create the state segment of layout/state.hpp.
// (Placeholder until the state issue's implementation lands.)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shmbus/error.hpp"

namespace shmbus::detail {

// "shmbus.<bus>.~state"
[[nodiscard]] std::string state_shm_name(std::string_view bus);

// Checks the capacity (bad_options) and creates the segment exclusively,
// every key empty. Fails like Segment::create.
[[nodiscard]] Result<void> create_state_segment(std::string_view bus, std::uint64_t capacity,
                                                std::uint32_t mode);

}  // namespace shmbus::detail
