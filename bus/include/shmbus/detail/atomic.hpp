// -----------------------------------------------------------------------------
// detail/atomic.hpp — atomic access to plain integers in shared memory
// -----------------------------------------------------------------------------
//
// Shared structs hold plain integers (never std::atomic<> members: their
// representation is the library's, and g++ 12 calls std::atomic<uint64_t>
// trivially copyable, so a static_assert cannot keep them out). Every access
// that races goes through these helpers. Loads use the GCC builtin because
// C++20 has no atomic_ref<const T>, and readers of read-only mappings must
// still load atomically.
#pragma once

#include <atomic>
#include <type_traits>

namespace shmbus::detail {

template <class T>
concept SharedWord = std::is_integral_v<T> && std::atomic_ref<T>::is_always_lock_free;

template <SharedWord T>
[[nodiscard]] inline T load_relaxed(const T& word) noexcept {
  return __atomic_load_n(&word, __ATOMIC_RELAXED);
}
template <SharedWord T>
[[nodiscard]] inline T load_acquire(const T& word) noexcept {
  return __atomic_load_n(&word, __ATOMIC_ACQUIRE);
}
// For the Dekker-style checks of the wake-up protocol (see wait/futex.hpp).
template <SharedWord T>
[[nodiscard]] inline T load_seq_cst(const T& word) noexcept {
  return __atomic_load_n(&word, __ATOMIC_SEQ_CST);
}
template <SharedWord T>
inline void store_relaxed(T& word, T value) noexcept {
  std::atomic_ref<T>(word).store(value, std::memory_order_relaxed);
}
template <SharedWord T>
inline void store_release(T& word, T value) noexcept {
  std::atomic_ref<T>(word).store(value, std::memory_order_release);
}
// Strong CAS, seq_cst: every CAS in shmbus is also a publication point.
template <SharedWord T>
[[nodiscard]] inline bool compare_exchange(T& word, T& expected, T desired) noexcept {
  return std::atomic_ref<T>(word).compare_exchange_strong(expected, desired,
                                                          std::memory_order_seq_cst);
}
template <SharedWord T>
inline T fetch_add(T& word, T delta,
                   std::memory_order order = std::memory_order_seq_cst) noexcept {
  return std::atomic_ref<T>(word).fetch_add(delta, order);
}
template <SharedWord T>
inline T fetch_sub(T& word, T delta,
                   std::memory_order order = std::memory_order_seq_cst) noexcept {
  return std::atomic_ref<T>(word).fetch_sub(delta, order);
}

}  // namespace shmbus::detail
