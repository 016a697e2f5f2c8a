#include "shmbus/span_allocator.hpp"

#include <cstdlib>
#include <cstring>

namespace shmbus {

bool SpanAllocator::inside(const void* p) const noexcept {
  const auto* at = static_cast<const std::byte*>(p);
  return at >= span_.data() && at < span_.data() + span_.size();
}

std::uint8_t* SpanAllocator::allocate(std::size_t size) {
  auto* end = reinterpret_cast<std::uint8_t*>(span_.data() + span_.size());
  if (!retired_ && size <= span_.size()) return end - size;
  return static_cast<std::uint8_t*>(std::malloc(size));  // the taker refuses it
}

void SpanAllocator::deallocate(std::uint8_t* p, std::size_t) {
  if (!inside(p)) std::free(p);
}

std::uint8_t* SpanAllocator::reallocate_downward(std::uint8_t* old_p, std::size_t old_size,
                                                 std::size_t new_size, std::size_t in_use_back,
                                                 std::size_t in_use_front) {
  std::uint8_t* new_p = allocate(new_size);
  if (new_p == nullptr) return nullptr;
  if (inside(old_p) && inside(new_p)) {
    // Both end at the span's end: the back is already in place.
    std::memmove(new_p, old_p, in_use_front);
    return new_p;
  }
  std::memcpy(new_p + new_size - in_use_back, old_p + old_size - in_use_back, in_use_back);
  std::memcpy(new_p, old_p, in_use_front);
  deallocate(old_p, old_size);
  return new_p;
}

}  // namespace shmbus
