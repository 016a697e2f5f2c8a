#include "state/state_segment.hpp"

#include "segment/segment.hpp"

namespace shmbus::detail {

std::string state_shm_name(std::string_view bus) { return "shmbus." + std::string(bus) + ".~state"; }

Result<void> create_state_segment(std::string_view bus, std::uint64_t capacity, std::uint32_t mode) {
  const SegmentSpec spec{state_shm_name(bus), layout::SegmentKind::state,
                         sizeof(layout::SegmentHeader) + capacity, mode, 0};
  auto segment = Segment::create(spec, [](std::span<std::byte>) {});
  if (!segment) return tl::unexpected(segment.error());
  return {};
}

}  // namespace shmbus::detail
