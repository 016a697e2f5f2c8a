#include "state/state_segment.hpp"

#include "process/robust_mutex.hpp"
#include "segment/segment.hpp"

namespace shmbus::detail {

namespace {

constexpr std::uint64_t kMiB = 1u << 20;

void initialize_state(std::span<std::byte> segment, std::uint64_t capacity) noexcept {
  auto& header = *reinterpret_cast<layout::StateHeader*>(segment.data() + layout::kStateHeaderOffset);
  RobustMutex::initialize(header.mutex);
  header.capacity = capacity;
  header.data_offset = layout::kStateDataOffset;
  header.keys_offset = layout::kStateKeysOffset;
  header.versions_offset = layout::kStateVersionsOffset;
  header.max_keys = layout::kMaxStateKeys;
  header.max_versions = layout::kMaxStateVersions;
  header.next_version = 1;  // 0 is no version: a handle is never 0
}

}  // namespace

std::string state_shm_name(std::string_view bus) { return "shmbus." + std::string(bus) + ".~state"; }

Result<void> create_state_segment(std::string_view bus, std::uint64_t capacity, std::uint32_t mode) {
  if (capacity < layout::kMinStateCapacity || capacity > layout::kMaxStateCapacity) {
    return fail(Errc::bad_options, "state_capacity " + std::to_string(capacity) +
                                       " is outside 64 KiB … 1 TiB (" +
                                       std::to_string(capacity / kMiB) + " MiB)");
  }
  // Extents are 64-byte aligned: a tail shorter than that could hold nothing.
  capacity -= capacity % layout::kStateExtentAlign;
  const SegmentSpec spec{state_shm_name(bus), layout::SegmentKind::state,
                         layout::kStateDataOffset + capacity, mode, 0};
  auto segment = Segment::create(
      spec, [capacity](std::span<std::byte> bytes) { initialize_state(bytes, capacity); });
  if (!segment) return tl::unexpected(segment.error());
  return {};
}

Result<std::uint64_t> check_state_segment(std::span<const std::byte> segment) {
  if (segment.size() < layout::kStateDataOffset) {
    return fail(Errc::size_too_small, "state segment shorter than its tables (" +
                                          std::to_string(segment.size()) + " bytes)");
  }
  const auto& header =
      *reinterpret_cast<const layout::StateHeader*>(segment.data() + layout::kStateHeaderOffset);
  if (header.data_offset != layout::kStateDataOffset ||
      header.keys_offset != layout::kStateKeysOffset ||
      header.versions_offset != layout::kStateVersionsOffset ||
      header.max_keys != layout::kMaxStateKeys || header.max_versions != layout::kMaxStateVersions) {
    return fail(Errc::not_a_segment, "state segment tables disagree with this build's layout");
  }
  if (header.capacity > segment.size() - layout::kStateDataOffset) {
    return fail(Errc::size_too_small, "state segment of " + std::to_string(segment.size()) +
                                          " bytes cannot hold its capacity of " +
                                          std::to_string(header.capacity));
  }
  return header.capacity;
}

}  // namespace shmbus::detail
