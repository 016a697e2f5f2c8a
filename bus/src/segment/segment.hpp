// segment.hpp — one named POSIX shared-memory segment, created or attached.
//
// The only seam to Boost.Interprocess (segment.cpp): it creates, sizes,
// permissions, maps and removes segments, and its exceptions are turned into
// typed errors there. Nothing else of Boost is used: its mutexes and
// allocator do not survive a crashed owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "shmbus/error.hpp"
#include "shmbus/layout/segment_header.hpp"
#include "shmbus/wait.hpp"

namespace shmbus::detail {

struct SegmentSpec {
  std::string shm_name;  // "shmbus.orders" (no leading slash)
  layout::SegmentKind kind;
  std::uint64_t size;    // total bytes, header included
  std::uint32_t mode;    // permission bits
  std::uint32_t flags;   // layout::SegmentFlags
};

class Segment {
 public:
  // Creates the segment exclusively, writes its header (all but `ready`), runs
  // `init` over the zero-filled body, then stores ready = 1 with release.
  // Fails with bus_exists, permission_denied, size_too_small or system_error.
  [[nodiscard]] static Result<Segment> create(
      const SegmentSpec& spec, const std::function<void(std::span<std::byte>)>& init);

  // Maps an existing segment (read-write, or read-only: opened O_RDONLY, so
  // the mapping can never be made writable) and checks its header (see
  // header_check.hpp), waiting for one still being built until `deadline`.
  // `missing` is the code for a segment that does not exist.
  enum class Access { read_write, read_only };
  [[nodiscard]] static Result<Segment> attach(const std::string& shm_name,
                                              layout::SegmentKind kind, Deadline deadline,
                                              Errc missing, Access access = Access::read_write);

  // Unlinks a segment by name. Fails with `missing` or permission_denied.
  [[nodiscard]] static Result<void> remove(const std::string& shm_name, Errc missing);

  Segment(Segment&&) noexcept;
  Segment& operator=(Segment&&) noexcept;
  ~Segment();

  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {base_, size_}; }
  [[nodiscard]] std::byte* base() const noexcept { return base_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] const layout::SegmentHeader& header() const noexcept {
    return *reinterpret_cast<const layout::SegmentHeader*>(base_);
  }
  [[nodiscard]] const std::string& shm_name() const noexcept { return shm_name_; }
  // Whether `fd` is open on the very file this segment maps (not on a
  // segment of the same name created after this one was removed).
  [[nodiscard]] bool same_file(int fd) const noexcept;

 private:
  struct Mapping;
  Segment(std::unique_ptr<Mapping> mapping, std::string shm_name, int fd) noexcept;
  std::unique_ptr<Mapping> mapping_;
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  std::string shm_name_;
  std::uint64_t device_ = 0;
  std::uint64_t inode_ = 0;
};

}  // namespace shmbus::detail
