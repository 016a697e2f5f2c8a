#pragma once
#include <cstdint>
#include "bus/control.hpp"
namespace shmbus::detail {
inline void clear_dead_pins(const ControlView&, std::uint32_t) noexcept {}
}
