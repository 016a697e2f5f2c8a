// -----------------------------------------------------------------------------
// loan.hpp — zero-copy payloads: loan a block, write it in place, send the ref
// -----------------------------------------------------------------------------
//
//   auto loan = bus.loan(frame_size);                      // pool_exhausted if none free
//   if (!loan) return loan.error();
//   std::memcpy(loan->bytes().data(), frame, frame_size);  // or build a FlatBuffer in it:
//   loan->set_payload(0, frame_size);
//   auto sent = service.cast(std::move(*loan));            // the ring carries a 32-byte ref
//
//   flatbuffers::FlatBufferBuilder builder(1024, &loan->allocator());
//   ... builder.Finish(root, "MAIL");
//   loan->set_payload(builder);                            // ends at the block's end
//
// The receiver's Request::payload() (server.hpp) is the very block the sender
// wrote: nothing is copied, whatever its size. A block has one holder at a
// time, named in the block itself (layout/blobs.hpp): the loaning process,
// then the ring record (or call slot) that carries it, then nobody — the
// receiver's done() frees it. A holder that dies gives back exactly what it
// held; a block whose record was consumed or skipped is found and freed by
// the next reaper (servers run one every second, Bus::reclaim_dead() too).
//
// Blocks are not zeroed when they return: a loan holds what its last user
// wrote until it is overwritten.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/error.hpp"
#include "shmbus/span_allocator.hpp"
#include "shmbus/wait.hpp"

namespace shmbus {

namespace detail {
class BusCore;
class BlobPool;
}  // namespace detail

// One size class of the blob pool, chosen at bus creation (CreateOptions).
struct BlobClass {
  std::uint64_t block_size = 0;  // bytes; a multiple of 4096, 4 KiB … 1 GiB
  std::uint32_t count = 0;       // blocks, 1 … 65536
};

// 32 × 64 KiB and 8 × 1 MiB: 10 MiB. Buses that send 64 MiB payloads add a
// class for them (the benchmark and the tests do).
[[nodiscard]] inline std::vector<BlobClass> default_blob_classes() {
  return {{64u << 10, 32}, {1u << 20, 8}};
}

// What Bus::blob_pool() reports for one class.
struct BlobClassInfo {
  std::uint64_t block_size = 0;
  std::uint32_t count = 0;
  std::uint32_t free = 0;        // blocks nobody holds
  std::uint32_t loaned = 0;      // held by a process (being written, or kept)
  std::uint32_t in_flight = 0;   // held by a record or a reply not yet consumed
  std::uint64_t exhausted = 0;   // loans refused or waited for: pool_exhausted
  // Blocks freed by a reaper: held by a dead process, or by a record already
  // consumed or skipped whose receiver had not freed it yet (dead, or just
  // preempted between the two steps: not by itself a sign of a crash).
  std::uint64_t reclaimed = 0;
};

struct LoanOptions {
  // Wait for a free block until this deadline; the default (min) fails at
  // once with pool_exhausted.
  Deadline deadline = Deadline::min();
  WaitMode mode = WaitMode::spin_then_park;
};

class Loan;

// A block of the blob pool held by this process. Move-only; destroying a
// Loan that was not sent frees its block.
class Loan {
 public:
  Loan(Loan&& other) noexcept;
  Loan& operator=(Loan&& other) noexcept;
  ~Loan();

  // The whole block, writable (at least the size asked for); empty once sent.
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return block_; }
  // What will be sent: `length` bytes at `offset` of the block. Out of the
  // block: bad_options, and nothing changes. Default: the size asked for.
  Expected<void> set_payload(std::size_t offset, std::size_t length) noexcept;
  // The buffer a builder using allocator() finished (it ends at the block's
  // end). Fails with record_too_large when the builder outgrew the block
  // (it moved to the heap), bad_options for a buffer built elsewhere.
  Expected<void> set_payload(const flatbuffers::FlatBufferBuilder& builder) noexcept;
  [[nodiscard]] std::span<std::byte> payload() const noexcept {
    return block_.subspan(offset_, length_);
  }
  // An allocator that builds straight into this block (span_allocator.hpp;
  // one builder at a time).
  // Once the loan is sent (or moved from) it builds on the heap, never into
  // the block; a builder must not be used after its loan is sent.
  [[nodiscard]] SpanAllocator& allocator() noexcept;

  // False once sent or moved from.
  [[nodiscard]] bool empty() const noexcept { return core_ == nullptr; }

  // Which block this is: index in the pool and its generation (layout/blobs.hpp).
  [[nodiscard]] std::uint32_t block() const noexcept { return index_; }
  [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }

 private:
  friend class detail::BlobPool;
  Loan(std::shared_ptr<detail::BusCore> core, std::uint32_t index, std::uint64_t generation,
       std::span<std::byte> block, std::size_t asked) noexcept;
  std::shared_ptr<detail::BusCore> core_;
  std::uint32_t index_ = 0;
  std::uint64_t generation_ = 0;
  std::span<std::byte> block_;
  std::size_t offset_ = 0;
  std::size_t length_ = 0;
  std::unique_ptr<SpanAllocator> allocator_;
};

}  // namespace shmbus
