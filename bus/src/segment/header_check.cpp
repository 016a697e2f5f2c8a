#include "segment/header_check.hpp"

#include <string>

#include "process/liveness.hpp"
#include "shmbus/detail/atomic.hpp"

namespace shmbus::detail {

namespace {
const char* kind_name(layout::SegmentKind kind) {
  switch (kind) {
    case layout::SegmentKind::control: return "control";
    case layout::SegmentKind::mailbox: return "mailbox";
    case layout::SegmentKind::blob_pool: return "blob pool";
    case layout::SegmentKind::state: return "state";
  }
  return "unknown";
}

HeaderCheck refuse(Errc code, std::string detail) {
  return {HeaderVerdict::refused, Error{code, std::move(detail)}};
}
}  // namespace

HeaderCheck check_header(std::span<const std::byte> segment, layout::SegmentKind expected_kind,
                         const std::string& shm_name) {
  const std::string where = "/dev/shm/" + shm_name;
  if (segment.size() < sizeof(layout::SegmentHeader)) return {HeaderVerdict::building, {}};
  const auto& header = *reinterpret_cast<const layout::SegmentHeader*>(segment.data());
  // acquire: pairs with the creator's store_release(ready) in Segment::create().
  const std::uint32_t ready = load_acquire(header.ready);
  // acquire: pairs with the creator's store_release(magic): a set magic means
  // every other header field is final (only `ready` and the body may not be).
  const std::uint64_t magic = load_acquire(header.magic);
  if (magic == 0 && ready == 0) return {HeaderVerdict::building, {}};  // not even the header yet
  if (magic != layout::kMagic) {
    return refuse(Errc::not_a_segment, where + " is not a shmbus segment (bad magic)");
  }
  const std::uint32_t version = load_relaxed(header.layout_version);
  if (version != layout::kLayoutVersion) {
    return refuse(Errc::layout_mismatch, where + " has layout version " + std::to_string(version) +
                                             ", this build reads version " +
                                             std::to_string(layout::kLayoutVersion));
  }
  if (ready == 0) {
    if (process_alive(static_cast<pid_t>(header.creator_pid), header.creator_start_time)) {
      return {HeaderVerdict::building, {}};
    }
    return {HeaderVerdict::abandoned,
            Error{Errc::not_a_segment,
                  where + " was abandoned half-built by its creator (pid " +
                      std::to_string(header.creator_pid) +
                      ", now dead); `shmbus gc` (or Bus::remove) removes it"}};
  }
  if (header.kind != expected_kind) {
    return refuse(Errc::not_a_segment, where + " is a " + kind_name(header.kind) +
                                           " segment, expected a " + kind_name(expected_kind) +
                                           " segment");
  }
  if (header.total_size != segment.size()) {
    return refuse(Errc::size_too_small, where + " maps " + std::to_string(segment.size()) +
                                            " bytes but its header says " +
                                            std::to_string(header.total_size));
  }
  return {HeaderVerdict::ready, {}};
}

}  // namespace shmbus::detail
