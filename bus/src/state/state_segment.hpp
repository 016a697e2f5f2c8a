// state_segment.hpp — create and check the state segment of layout/state.hpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "shmbus/error.hpp"
#include "shmbus/layout/state.hpp"

namespace shmbus::detail {

// "shmbus.<bus>.~state"
[[nodiscard]] std::string state_shm_name(std::string_view bus);

// Checks the capacity (bad_options: below 64 KiB or above 1 TiB) and creates
// the segment exclusively, every key empty, the data area reserved in
// /dev/shm. Fails like Segment::create.
[[nodiscard]] Result<void> create_state_segment(std::string_view bus, std::uint64_t capacity,
                                                std::uint32_t mode);

// The data-area capacity of a mapped state segment, once its header agrees
// with this build's layout and the mapping holds the whole data area.
// Fails with not_a_segment or size_too_small.
[[nodiscard]] Result<std::uint64_t> check_state_segment(std::span<const std::byte> segment);

}  // namespace shmbus::detail
