// Loan (loan.hpp) and Bus's loan entry points.
#include "shmbus/loan.hpp"

#include <cstring>
#include <utility>

#include "blobs/blob_pool.hpp"
#include "bus/bus_core.hpp"
#include "shmbus/bus.hpp"

namespace shmbus {

// ---- Loan

Loan::Loan(std::shared_ptr<detail::BusCore> core, std::uint32_t index, std::uint64_t generation,
           std::span<std::byte> block, std::size_t asked) noexcept
    : core_(std::move(core)),
      index_(index),
      generation_(generation),
      block_(block),
      offset_(0),
      length_(asked),
      allocator_(std::make_unique<SpanAllocator>(block)) {}

Loan::Loan(Loan&& other) noexcept
    : core_(std::move(other.core_)),
      index_(other.index_),
      generation_(other.generation_),
      block_(std::exchange(other.block_, {})),
      offset_(std::exchange(other.offset_, 0)),
      length_(std::exchange(other.length_, 0)),
      allocator_(std::move(other.allocator_)) {}

Loan& Loan::operator=(Loan&& other) noexcept {
  if (this != &other) {
    Loan dropped(std::move(*this));
    core_ = std::move(other.core_);
    index_ = other.index_;
    generation_ = other.generation_;
    block_ = std::exchange(other.block_, {});
    offset_ = std::exchange(other.offset_, 0);
    length_ = std::exchange(other.length_, 0);
    allocator_ = std::move(other.allocator_);
  }
  return *this;
}

Loan::~Loan() {
  if (!core_) return;  // moved from, or sent
  // A Loan inherited across fork() is the parent's block: not ours to free.
  if (!core_->table().joined_here()) return;
  if (auto pool = core_->blobs()) {
    (*pool)->release_word(index_, layout::block_control(layout::BlockState::owned,
                                                        core_->table().self().value, generation_));
  }
}

SpanAllocator& Loan::allocator() noexcept {
  if (allocator_) return *allocator_;
  thread_local SpanAllocator nowhere;  // a moved-from Loan: heap only
  return nowhere;
}

Expected<void> Loan::set_payload(std::size_t offset, std::size_t length) noexcept {
  if (offset > block_.size() || length > block_.size() - offset) {
    return tl::unexpected(Errc::bad_options);
  }
  offset_ = offset;
  length_ = length;
  return {};
}

Expected<void> Loan::set_payload(const flatbuffers::FlatBufferBuilder& builder) noexcept {
  const auto* start = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
  const std::size_t size = builder.GetSize();
  if (!allocator_->inside(start)) {
    // Outgrown onto the heap (our allocator's own buffer), or built elsewhere.
    return tl::unexpected(size > block_.size() ? Errc::record_too_large : Errc::bad_options);
  }
  if (start + size != block_.data() + block_.size()) return tl::unexpected(Errc::bad_options);
  return set_payload(static_cast<std::size_t>(start - block_.data()), size);
}

// ---- Bus

Expected<Loan> Bus::loan(std::size_t bytes, LoanOptions options) noexcept {
  auto pool = core_->blobs();
  if (!pool) return tl::unexpected(Errc::system_error);
  return (*pool)->loan(core_, bytes, options);
}

Result<std::vector<BlobClassInfo>> Bus::blob_pool() const {
  auto pool = core_->blobs();
  if (!pool) return tl::unexpected(pool.error());
  return (*pool)->info();
}

}  // namespace shmbus
