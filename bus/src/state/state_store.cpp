// The readers' side of the state segment: get and resolve pin a version with
// one store and check it again (layout/state.hpp), then hand out a span of
// the mapping. No lock, no system call, no copy, whatever the value's size.
#include "state/state_store.hpp"

#include <chrono>
#include <cstring>
#include <thread>

#include "bus/bus_core.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/detail/enforce.hpp"
#include "shmbus/wait.hpp"
#include "state/state_segment.hpp"

namespace shmbus::detail {

void StateStore::unpin(std::uint32_t cell) noexcept {
  if (core_.table().joined_here()) pins_->release(cell);
}

using layout::VersionState;

std::uint64_t state_key_hash(std::string_view key) noexcept {
  std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a
  for (char ch : key) {
    hash ^= static_cast<unsigned char>(ch);
    hash *= 0x100000001b3ULL;
  }
  hash ^= hash >> 29;  // spread the low bits that pick the first entry
  return hash == 0 ? 1 : hash;  // 0 marks a never-used entry
}

Result<std::unique_ptr<StateStore>> StateStore::open(BusCore& core, bool writable,
                                                     std::shared_ptr<PinSet> pins) {
  auto segment = Segment::attach(state_shm_name(core.name()), layout::SegmentKind::state,
                                 deadline_in(std::chrono::seconds(2)), Errc::no_such_bus,
                                 writable ? Segment::Access::read_write : Segment::Access::read_only);
  if (!segment) return tl::unexpected(segment.error());
  auto capacity = check_state_segment(segment->bytes());
  if (!capacity) {
    Error error = capacity.error();
    error.detail = "/dev/shm/" + segment->shm_name() + ": " + error.detail;
    return tl::unexpected(error);
  }
  return std::unique_ptr<StateStore>(
      new StateStore(core, std::move(*segment), *capacity, writable, std::move(pins)));
}

StateStore::StateStore(BusCore& core, Segment segment, std::uint64_t capacity, bool writable,
                       std::shared_ptr<PinSet> pins) noexcept
    : core_(core),
      segment_(std::move(segment)),
      base_(segment_.base()),
      capacity_(capacity),
      writable_(writable),
      header_(reinterpret_cast<layout::StateHeader*>(base_ + layout::kStateHeaderOffset)),
      keys_(reinterpret_cast<layout::KeyEntry*>(base_ + layout::kStateKeysOffset)),
      versions_(reinterpret_cast<layout::VersionSlot*>(base_ + layout::kStateVersionsOffset)),
      pins_(std::move(pins)) {
  if (writable_) mutex_.emplace(header_->mutex, [this] { repair(); });
}

std::uint64_t StateStore::pin_current(const layout::KeyEntry& entry, std::uint32_t cell) noexcept {
  std::uint64_t handle = load_seq_cst(entry.current);
  for (;;) {
    if (handle == 0) return 0;
    pins_->pin(cell, handle);
    // seq_cst: this second look is ordered after the pin's store; a writer
    // that replaced `current` before it scans pins after its own store.
    const std::uint64_t again = load_seq_cst(entry.current);
    if (again == handle) return handle;
    handle = again;
  }
}

bool StateStore::holds(std::uint64_t handle, std::span<const std::byte>& bytes,
                       bool was_current) const noexcept {
  const std::uint32_t index = layout::handle_slot(handle);
  if (index >= layout::kMaxStateVersions) return false;
  const layout::VersionSlot& s = slot(index);
  const std::uint64_t control = load_seq_cst(s.control);
  const VersionState state = layout::version_state_of(control);
  if (layout::version_of(control) != layout::handle_version(handle)) return false;
  // A pin checked against the key's `current` is seen by every scan marked
  // after it, so a slot the writer marks `reclaiming` meanwhile stays intact.
  const bool reclaiming_ok = was_current && state == VersionState::reclaiming;
  if (state != VersionState::published && state != VersionState::retired && !reclaiming_ok) {
    return false;
  }
  // Immutable while pinned, but written by another process: bounds first.
  const std::uint64_t offset = s.value_offset;
  const std::uint64_t size = s.value_size;
  if (offset < layout::kStateDataOffset || size > capacity_ ||
      offset - layout::kStateDataOffset > capacity_ - size || s.key_length == 0 ||
      s.key_length > layout::kMaxStateKeyBytes) {
    return false;
  }
  bytes = {base_ + offset, size};
  return true;
}

bool StateStore::key_is(const layout::VersionSlot& s, std::string_view key) const noexcept {
  return s.key_length == key.size() && std::memcmp(s.key, key.data(), key.size()) == 0;
}

Expected<Pinned> StateStore::get(std::string_view key) noexcept {
  SHMBUS_ENFORCE(core_.table().joined_here(), kStateForkedChild);
  if (!valid_state_key(key)) return tl::unexpected(Errc::bad_options);
  const std::uint64_t hash = state_key_hash(key);
  auto cell = pins_->acquire();
  if (!cell) return tl::unexpected(cell.error());
  for (std::uint32_t i = 0; i < layout::kMaxStateKeys; ++i) {
    const layout::KeyEntry& entry = keys_[(hash + i) & (layout::kMaxStateKeys - 1)];
    const std::uint64_t entry_hash = load_relaxed(entry.hash);
    if (entry_hash == 0) break;
    if (entry_hash != hash) continue;
    const std::uint64_t handle = pin_current(entry, *cell);
    std::span<const std::byte> bytes;
    if (handle != 0 && holds(handle, bytes, true) && key_is(slot(layout::handle_slot(handle)), key)) {
      return Pinned{*cell, handle, &slot(layout::handle_slot(handle)), bytes};
    }
  }
  pins_->release(*cell);
  return tl::unexpected(Errc::no_such_key);
}

Expected<Pinned> StateStore::resolve(std::uint64_t handle) noexcept {
  SHMBUS_ENFORCE(core_.table().joined_here(), kStateForkedChild);
  const std::uint64_t version = layout::handle_version(handle);
  if (version == 0 || layout::handle_slot(handle) >= layout::kMaxStateVersions ||
      version >= load_seq_cst(header_->next_version)) {
    return tl::unexpected(Errc::bad_ref);
  }
  auto cell = pins_->acquire();
  if (!cell) return tl::unexpected(cell.error());
  pins_->pin(*cell, handle);
  std::span<const std::byte> bytes;
  // A writer scanning pins right now holds the slot `reclaiming` for one
  // scan; once it is back to retired our pin protects it, so wait for a live
  // scanner (rare: a ref to a superseded version racing a reclaim; a scan is
  // one pass over the pin lines). A scanner that died mid-scan freed nothing
  // it had not decided: the version is intact, and our pin is seen by every
  // later scan.
  const Deadline give_up = Clock::now() + std::chrono::seconds(1);
  for (int tries = 0;; ++tries) {
    if (tries >= 64) {
      if (Clock::now() >= give_up) break;
      std::this_thread::yield();
    }
    if (holds(handle, bytes)) return Pinned{*cell, handle, &slot(layout::handle_slot(handle)), bytes};
    const std::uint64_t control = load_seq_cst(slot(layout::handle_slot(handle)).control);
    const VersionState state = layout::version_state_of(control);
    if (layout::version_of(control) != version ||
        (state != VersionState::reclaiming && state != VersionState::retired &&
         state != VersionState::published)) {
      break;  // reclaimed (or a corrupt slot): the version is gone
    }
    if (state != VersionState::reclaiming) continue;  // the scan ended meanwhile: look again
    const auto scanner = static_cast<std::uint32_t>(load_seq_cst(header_->scanner));
    if (scanner != 0 && !core_.table().is_alive(scanner) && holds(handle, bytes, true)) {
      return Pinned{*cell, handle, &slot(layout::handle_slot(handle)), bytes};
    }
  }
  pins_->release(*cell);
  return tl::unexpected(Errc::stale_ref);
}

std::vector<StateEntry> StateStore::list() {
  SHMBUS_ENFORCE(core_.table().joined_here(), kStateForkedChild);
  std::vector<StateEntry> entries;
  auto cell = pins_->acquire();
  if (!cell) return entries;  // 15 views held by this process: nothing can be pinned
  for (std::uint32_t i = 0; i < layout::kMaxStateKeys; ++i) {
    const std::uint64_t handle = pin_current(keys_[i], *cell);
    std::span<const std::byte> bytes;
    if (handle == 0 || !holds(handle, bytes, true)) continue;
    const layout::VersionSlot& s = slot(layout::handle_slot(handle));
    entries.push_back({std::string(s.key, s.key_length), layout::handle_version(handle),
                       bytes.size(), StateRef{handle}});
  }
  pins_->release(*cell);
  return entries;
}

StateUsage StateStore::usage() const noexcept {
  StateUsage usage;
  usage.capacity = capacity_;
  for (std::uint32_t i = 0; i < layout::kMaxStateVersions; ++i) {
    const layout::VersionSlot& s = slot(i);
    const VersionState state = layout::version_state_of(load_seq_cst(s.control));
    const std::uint64_t size = load_relaxed(s.extent_size);
    if (state == VersionState::published) {
      usage.live_bytes += size;
      ++usage.live;
    } else if (state == VersionState::retired || state == VersionState::reclaiming) {
      usage.retired_bytes += size;
      ++usage.retired;
    } else if (state == VersionState::writing) {
      usage.writing_bytes += size;
      ++usage.writing;
    }
  }
  for (std::uint32_t i = 0; i < layout::kMaxStateKeys; ++i) {
    if (load_seq_cst(keys_[i].current) != 0) ++usage.keys;
  }
  const std::uint64_t used = usage.live_bytes + usage.retired_bytes + usage.writing_bytes;
  usage.free_bytes = used > capacity_ ? 0 : capacity_ - used;
  usage.puts = load_relaxed(header_->puts);
  usage.removes = load_relaxed(header_->removes);
  usage.aborts = load_relaxed(header_->aborts);
  usage.reclaimed = load_relaxed(header_->reclaimed);
  usage.repaired = load_relaxed(header_->repaired);
  usage.full = load_relaxed(header_->full);
  return usage;
}

}  // namespace shmbus::detail
