// ring_peek.hpp — a read-only view of a mailbox's ring header, for benchmarks.
//
// The parking benchmarks must send only once the receiver has parked. The
// ring says when a consumer is about to park: wait_for_data increments
// RingHeader::data.waiters right before FUTEX_WAIT (layout/ring.hpp). This
// maps the mailbox segment (/dev/shm/shmbus.<bus>.<mailbox>, the name
// layout/ring.hpp documents) read-only and loads that word; it changes nothing.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "shmbus/detail/atomic.hpp"
#include "shmbus/layout/ring.hpp"

namespace shmbus::bench {

class RingPeek {
 public:
  RingPeek(const std::string& bus, const std::string& mailbox) {
    const std::string shm = "/shmbus." + bus + "." + mailbox;
    const int fd = ::shm_open(shm.c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return;
    void* p = ::mmap(nullptr, kBytes, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p != MAP_FAILED) base_ = static_cast<const std::byte*>(p);
  }
  RingPeek(const RingPeek&) = delete;
  RingPeek& operator=(const RingPeek&) = delete;
  ~RingPeek() {
    if (base_ != nullptr) ::munmap(const_cast<std::byte*>(base_), kBytes);
  }

  [[nodiscard]] bool ok() const noexcept { return base_ != nullptr; }
  [[nodiscard]] const layout::RingHeader& header() const noexcept {
    return *reinterpret_cast<const layout::RingHeader*>(base_ + layout::kRingHeaderOffset);
  }
  // Consumers announced in wait_for_data (parked, or about to park).
  [[nodiscard]] std::uint32_t data_waiters() const noexcept {
    return detail::load_acquire(header().data.waiters);
  }

 private:
  static constexpr std::size_t kBytes = layout::kRingCellsOffset;
  const std::byte* base_ = nullptr;
};

}  // namespace shmbus::bench
