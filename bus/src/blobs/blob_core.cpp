// BusCore's blob pool: mapped once, on first use.
#include "blobs/blob_pool.hpp"
#include "bus/bus_core.hpp"

namespace shmbus::detail {

Result<BlobPool*> BusCore::blobs() {
  std::lock_guard lock(parts_mutex_);
  if (!blobs_) {
    auto pool = BlobPool::open(*this);
    if (!pool) return tl::unexpected(pool.error());
    blobs_ = std::move(*pool);
  }
  return blobs_.get();
}

}  // namespace shmbus::detail
