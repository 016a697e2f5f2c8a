// BusCore's blob pool: mapped once, on first use.
#include "blobs/blob_pool.hpp"
#include "bus/bus_core.hpp"

namespace shmbus::detail {

Result<BlobPool*> BusCore::blobs() {
  // Every loan sent and received asks: once mapped, no lock (acquire pairs
  // with the release below, after the pool is complete).
  if (BlobPool* mapped = blobs_ready_.load(std::memory_order_acquire)) return mapped;
  std::lock_guard lock(parts_mutex_);
  if (!blobs_) {
    auto pool = BlobPool::open(*this);
    if (!pool) return tl::unexpected(pool.error());
    blobs_ = std::move(*pool);
    blobs_ready_.store(blobs_.get(), std::memory_order_release);
  }
  return blobs_.get();
}

}  // namespace shmbus::detail
