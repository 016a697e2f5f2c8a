// header_check.hpp — what an attacher concludes from a segment's first bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "shmbus/error.hpp"
#include "shmbus/layout/segment_header.hpp"

namespace shmbus::detail {

enum class HeaderVerdict {
  ready,      // usable
  building,   // too short, or not yet ready with a live (or unknown) creator: wait
  abandoned,  // not ready and its creator is dead: refuse, `shmbus gc` removes it
  refused,    // not a shmbus segment, another layout, another kind, wrong size
};

struct HeaderCheck {
  HeaderVerdict verdict;
  Error error;  // for abandoned and refused
};

// Reads the header with the loads another process's writes require (`ready`
// with acquire first). Never trusts a field before the ones it depends on.
[[nodiscard]] HeaderCheck check_header(std::span<const std::byte> segment,
                                       layout::SegmentKind expected_kind,
                                       const std::string& shm_name);

}  // namespace shmbus::detail
