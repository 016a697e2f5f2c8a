// tsan_edge.hpp — telling ThreadSanitizer about an ordering it cannot see.
//
// ThreadSanitizer follows synchronisation by virtual address. A process may
// map one mailbox segment twice — its receiver's mapping and the blob pool
// reaper's own (BlobPool::service_mailbox) — and then a receiver's release of
// a cell and the reaper's acquire of the same cell order memory for real
// (one physical word), but not for TSan, which reports the block's next
// holder writing what the receiver read as a race. Where that edge hands a
// block on, both sides also name the block's descriptor word, which has one
// address in the process. No-ops outside TSan builds.
#pragma once

#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace shmbus::detail {

inline void tsan_release_edge([[maybe_unused]] const void* word) noexcept {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(const_cast<void*>(word));
#endif
}

inline void tsan_acquire_edge([[maybe_unused]] const void* word) noexcept {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(const_cast<void*>(word));
#endif
}

}  // namespace shmbus::detail
