// -----------------------------------------------------------------------------
// span_allocator.hpp — build a FlatBuffer straight into shared memory
// -----------------------------------------------------------------------------
//
// FlatBuffers builds downward: its vector_downward writes from the end of
// what the allocator hands out. A SpanAllocator hands out the tail of one
// span, so a finished buffer ends at the span's end and starts at
// builder.GetBufferPointer() — for a loan (loan.hpp) or a state value being
// put (state.hpp), the bytes are where they will be read, and nothing is
// copied. A builder that outgrows the span moves to the heap instead of
// failing; whoever takes the finished buffer (Loan::set_payload,
// PutTransaction::publish) then refuses it: size the span for the largest
// message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include <flatbuffers/flatbuffers.h>

namespace shmbus {

class SpanAllocator final : public flatbuffers::Allocator {
 public:
  explicit SpanAllocator(std::span<std::byte> span = {}) noexcept : span_(span) {}

  std::uint8_t* allocate(std::size_t size) override;
  void deallocate(std::uint8_t* p, std::size_t size) override;
  std::uint8_t* reallocate_downward(std::uint8_t* old_p, std::size_t old_size,
                                    std::size_t new_size, std::size_t in_use_back,
                                    std::size_t in_use_front) override;

  [[nodiscard]] std::span<std::byte> span() const noexcept { return span_; }
  // Whether `p` lies in the span (a buffer still built in place).
  [[nodiscard]] bool inside(const void* p) const noexcept;
  // From now on every allocation goes to the heap (the span was handed on:
  // a sent loan); buffers already in the span are still never freed.
  void retire() noexcept { retired_ = true; }

 private:
  std::span<std::byte> span_;
  bool retired_ = false;
};

}  // namespace shmbus
