// BusCore's state segment (mapped once per access mode, sharing one PinSet),
// Bus::state, and the State handle's calls.
#include <cstring>

#include "bus/bus_core.hpp"
#include "shmbus/bus.hpp"
#include "state/state_store.hpp"

namespace shmbus {

namespace detail {

Result<StateStore*> BusCore::state_store(bool writable) {
  std::lock_guard lock(parts_mutex_);
  std::unique_ptr<StateStore>& store = writable ? state_write_ : state_read_;
  if (!store) {
    const std::unique_ptr<StateStore>& other = writable ? state_read_ : state_write_;
    // One pin line per attachment: both mappings hand out its cells.
    std::shared_ptr<PinSet> pins =
        other ? other->pins()
              : std::make_shared<PinSet>(control().pins(layout::ref_slot(table().self().value)),
                                         table().self().value);
    auto opened = StateStore::open(*this, writable, std::move(pins));
    if (!opened) return tl::unexpected(opened.error());
    store = std::move(*opened);
  }
  return store.get();
}

}  // namespace detail

Result<State> Bus::state(StateAccess access) {
  const bool writable = access == StateAccess::read_write;
  auto store = core_->state_store(writable);
  if (!store) return tl::unexpected(store.error());
  return State(core_, *store, writable);
}

Expected<StateView> State::get(std::string_view key) const noexcept {
  auto pinned = store_->get(key);
  if (!pinned) return tl::unexpected(pinned.error());
  const auto* slot = pinned->slot;
  return StateView(core_, store_, pinned->cell, StateRef{pinned->handle}, pinned->bytes,
                   {slot->key, slot->key_length},
                   (slot->flags & layout::kValueVerified) != 0 ? slot->identifier : nullptr);
}

Expected<StateView> State::resolve(StateRef ref) const noexcept {
  auto pinned = store_->resolve(ref.handle);
  if (!pinned) return tl::unexpected(pinned.error());
  const auto* slot = pinned->slot;
  return StateView(core_, store_, pinned->cell, StateRef{pinned->handle}, pinned->bytes,
                   {slot->key, slot->key_length},
                   (slot->flags & layout::kValueVerified) != 0 ? slot->identifier : nullptr);
}

std::vector<StateEntry> State::list() const { return store_->list(); }

StateUsage State::usage() const noexcept { return store_->usage(); }

Result<PutTransaction> State::begin_put(std::string_view key, std::size_t size) {
  auto reserved = store_->reserve(key, size);
  if (!reserved) return tl::unexpected(reserved.error());
  return PutTransaction(core_, store_, reserved->slot, reserved->handle, reserved->bytes);
}

Result<StateRef> State::put(std::string_view key, std::span<const std::byte> value) {
  auto tx = begin_put(key, value.size());
  if (!tx) return tl::unexpected(tx.error());
  if (!value.empty()) std::memcpy(tx->bytes().data(), value.data(), value.size());
  return tx->publish();
}

Result<void> State::remove(std::string_view key) { return store_->remove(key); }

Result<std::uint32_t> State::reclaim() { return store_->reclaim(); }

}  // namespace shmbus
