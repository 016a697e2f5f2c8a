// StateView (a pin held), PutTransaction (a reserved extent being written)
// and the FlatBuffers allocator that builds in that extent.
#include <cstdlib>
#include <cstring>
#include <utility>

#include "bus/bus_core.hpp"
#include "shmbus/state.hpp"
#include "state/state_store.hpp"

namespace shmbus {

StateView::StateView(std::shared_ptr<detail::BusCore> core, detail::StateStore* store,
                     std::uint32_t cell, StateRef ref, std::span<const std::byte> bytes,
                     std::string_view key, const char* identifier) noexcept
    : core_(std::move(core)), store_(store), cell_(cell), ref_(ref), bytes_(bytes), key_(key),
      identifier_(identifier) {}

StateView::StateView(StateView&& other) noexcept
    : core_(std::move(other.core_)), store_(std::exchange(other.store_, nullptr)),
      cell_(other.cell_), ref_(other.ref_), bytes_(other.bytes_), key_(other.key_),
      identifier_(other.identifier_) {}

StateView& StateView::operator=(StateView&& other) noexcept {
  if (this != &other) {
    unpin();
    core_ = std::move(other.core_);
    store_ = std::exchange(other.store_, nullptr);
    cell_ = other.cell_;
    ref_ = other.ref_;
    bytes_ = other.bytes_;
    key_ = other.key_;
    identifier_ = other.identifier_;
  }
  return *this;
}

StateView::~StateView() { unpin(); }

void StateView::unpin() noexcept {
  if (store_ != nullptr) std::exchange(store_, nullptr)->unpin(cell_);
}

bool StateView::verified_as(const char* identifier) const noexcept {
  return store_ != nullptr && identifier_ != nullptr && identifier != nullptr &&
         std::strncmp(identifier_, identifier, 4) == 0 && std::strlen(identifier) == 4;
}

// --- PutTransaction

PutTransaction::PutTransaction(std::shared_ptr<detail::BusCore> core, detail::StateStore* store,
                               std::uint32_t slot, std::uint64_t handle,
                               std::span<std::byte> bytes) noexcept
    : core_(std::move(core)), store_(store), slot_(slot), handle_(handle), bytes_(bytes),
      allocator_(std::make_unique<SpanAllocator>()) {
  // The whole extent (64-byte aligned at both ends): a FlatBuffer's
  // alignment is counted from its end.
  const std::size_t extent = (std::max<std::size_t>(bytes.size(), 1) + 63) / 64 * 64;
  *allocator_ = SpanAllocator({bytes.data(), extent});
}

PutTransaction::PutTransaction(PutTransaction&& other) noexcept
    : core_(std::move(other.core_)), store_(other.store_), slot_(other.slot_),
      handle_(std::exchange(other.handle_, 0)), bytes_(other.bytes_),
      allocator_(std::move(other.allocator_)) {}

PutTransaction& PutTransaction::operator=(PutTransaction&& other) noexcept {
  if (this != &other) {
    abort();
    core_ = std::move(other.core_);
    store_ = other.store_;
    slot_ = other.slot_;
    handle_ = std::exchange(other.handle_, 0);
    bytes_ = other.bytes_;
    allocator_ = std::move(other.allocator_);
  }
  return *this;
}

PutTransaction::~PutTransaction() { abort(); }

void PutTransaction::abort() noexcept {
  if (handle_ != 0) store_->abort(slot_, std::exchange(handle_, 0));
  bytes_ = {};  // the space is no longer ours to write
}

flatbuffers::FlatBufferBuilder PutTransaction::builder() {
  return flatbuffers::FlatBufferBuilder(allocator_->span().size(), allocator_.get(), false);
}

Result<StateRef> PutTransaction::publish() { return publish(bytes_.size()); }

Result<StateRef> PutTransaction::publish(std::size_t length) {
  if (length > bytes_.size()) {
    return fail(Errc::bad_options, std::to_string(length) + " bytes published from a span of " +
                                       std::to_string(bytes_.size()));
  }
  return publish_range(bytes_.first(length), nullptr);
}

Result<StateRef> PutTransaction::publish(const flatbuffers::FlatBufferBuilder& builder) {
  auto range = built_range(builder);
  if (!range) return tl::unexpected(range.error());
  return publish_range(*range, nullptr);
}

Result<std::span<const std::byte>> PutTransaction::built_range(
    const flatbuffers::FlatBufferBuilder& builder) const {
  if (allocator_ == nullptr) return fail(Errc::stale_ref, "the transaction was moved from");
  const auto* data = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
  const std::span<std::byte> extent = allocator_->span();
  const bool inside = data >= extent.data() && builder.GetSize() <= extent.size() &&
                      static_cast<std::size_t>(data - extent.data()) <= extent.size() - builder.GetSize();
  if (!inside) {
    return fail(builder.GetSize() > extent.size() ? Errc::record_too_large : Errc::bad_options,
                "the FlatBuffer (" + std::to_string(builder.GetSize()) +
                    " bytes) is not inside the transaction's " + std::to_string(extent.size()) +
                    "-byte extent: build it with builder(), sized for the largest value");
  }
  return std::span<const std::byte>(data, builder.GetSize());
}

Result<StateRef> PutTransaction::publish_range(std::span<const std::byte> range,
                                               const char* identifier) {
  if (handle_ == 0) return fail(Errc::stale_ref, "the transaction was already published or aborted");
  auto published = store_->publish(slot_, handle_, range, identifier);
  if (!published) {
    if (published.error().code != Errc::system_error) handle_ = 0;  // freed already
    return tl::unexpected(published.error());
  }
  handle_ = 0;
  bytes_ = {};  // published: immutable from now on
  return StateRef{*published};
}

}  // namespace shmbus
