// The writers' side of the state segment: every step runs under the robust
// mutex, as the numbered steps of layout/state.hpp, each one word, so that a
// writer killed between two steps leaves what repair() mends.
#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "bus/bus_core.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/detail/enforce.hpp"
#include "shmbus/detail/test_hook.hpp"
#include "state/state_store.hpp"

namespace shmbus::detail {

using layout::VersionState;

namespace {

constexpr std::uint64_t align_up(std::uint64_t n, std::uint64_t a) noexcept { return (n + a - 1) / a * a; }

void set_control(layout::VersionSlot& s, std::uint64_t version, VersionState state) noexcept {
  std::atomic_ref<std::uint64_t>(s.control).store(layout::version_control(version, state),
                                                  std::memory_order_seq_cst);
}

void count(std::uint64_t& counter, std::uint64_t n = 1) noexcept {
  fetch_add(counter, n, std::memory_order_relaxed);
}

std::string mib(std::uint64_t bytes) {
  return std::to_string(bytes) + " B (" + std::to_string(bytes >> 20) + " MiB)";
}

}  // namespace

bool StateStore::alive(std::uint32_t ref) const noexcept {
  return ref != 0 && (ref == core_.table().self().value || core_.table().is_alive(ref));
}

// Writing slots of dead writers: the value was never visible; free it.
std::uint32_t StateStore::sweep_dead_writers() noexcept {
  std::uint32_t freed = 0;
  for (std::uint32_t i = 0; i < layout::kMaxStateVersions; ++i) {
    const std::uint64_t control = load_seq_cst(slot(i).control);
    if (layout::version_state_of(control) != VersionState::writing) continue;
    if (alive(load_relaxed(slot(i).writer))) continue;
    set_control(slot(i), layout::version_of(control), VersionState::free);
    ++freed;
  }
  if (freed != 0) count(header_->aborts, freed);
  return freed;
}

// Runs on EOWNERDEAD, before anything else reads the tables.
void StateStore::repair() noexcept {
  std::uint64_t mended = sweep_dead_writers();
  std::array<std::uint64_t, layout::kMaxStateVersions> current{};
  for (std::uint32_t i = 0; i < layout::kMaxStateKeys; ++i) {
    const std::uint64_t handle = load_seq_cst(keys_[i].current);
    if (handle != 0 && layout::handle_slot(handle) < layout::kMaxStateVersions) {
      current[layout::handle_slot(handle)] = handle;
    }
  }
  for (std::uint32_t i = 0; i < layout::kMaxStateVersions; ++i) {
    const std::uint64_t control = load_seq_cst(slot(i).control);
    const std::uint64_t version = layout::version_of(control);
    const VersionState state = layout::version_state_of(control);
    // Published but named by no key: a publish or remove stopped half-way.
    const bool orphan = state == VersionState::published &&
                        current[i] != layout::state_handle(version, i);
    if (orphan || state == VersionState::reclaiming) {
      set_control(slot(i), version, VersionState::retired);
      ++mended;
    }
  }
  std::atomic_ref<std::uint64_t>(header_->scanner).store(0);  // a scan cut short by death
  count(header_->repaired, mended);
}

std::uint32_t StateStore::reclaim_locked() noexcept {
  sweep_dead_writers();
  // 1: every retired version -> reclaiming (seq_cst), before the scan.
  std::array<bool, layout::kMaxStateVersions> candidate{};
  bool any = false;
  for (std::uint32_t i = 0; i < layout::kMaxStateVersions; ++i) {
    const std::uint64_t control = load_seq_cst(slot(i).control);
    if (layout::version_state_of(control) != VersionState::retired) continue;
    set_control(slot(i), layout::version_of(control), VersionState::reclaiming);
    candidate[i] = any = true;
  }
  if (!any) return 0;
  std::atomic_ref<std::uint64_t>(header_->scanner).store(core_.table().self().value);
  SHMBUS_TEST_HOOK(state_reclaim_marked);
  // 2: every live process's pins. The pin before the owner (pins.hpp).
  std::array<bool, layout::kMaxStateVersions> pinned{};
  const ControlView& control = core_.control();
  for (std::uint32_t p = 0; p < control.max_processes(); ++p) {
    layout::PinLine& line = control.pins(p);
    int owner_alive = -1;  // not asked yet: one system call per line, at most
    for (const std::uint64_t& pin : line.pins) {
      const std::uint64_t handle = load_seq_cst(pin);
      if (handle == 0 || layout::handle_slot(handle) >= layout::kMaxStateVersions) continue;
      if (owner_alive < 0) owner_alive = alive(static_cast<std::uint32_t>(load_seq_cst(line.owner)));
      if (owner_alive == 1) pinned[layout::handle_slot(handle)] = true;
    }
  }
  // 3: free what no pin names; the rest waits for the next reclaim.
  std::uint32_t freed = 0;
  for (std::uint32_t i = 0; i < layout::kMaxStateVersions; ++i) {
    if (!candidate[i]) continue;
    const std::uint64_t version = layout::version_of(load_seq_cst(slot(i).control));
    set_control(slot(i), version, pinned[i] ? VersionState::retired : VersionState::free);
    if (!pinned[i]) ++freed;
  }
  std::atomic_ref<std::uint64_t>(header_->scanner).store(0);
  count(header_->reclaimed, freed);
  return freed;
}

layout::KeyEntry* StateStore::find_entry(std::string_view key, std::uint64_t hash,
                                         bool for_insert) noexcept {
  layout::KeyEntry* reusable = nullptr;
  for (std::uint32_t i = 0; i < layout::kMaxStateKeys; ++i) {
    layout::KeyEntry& entry = keys_[(hash + i) & (layout::kMaxStateKeys - 1)];
    const std::uint64_t entry_hash = load_relaxed(entry.hash);
    const std::uint64_t handle = load_seq_cst(entry.current);
    if (entry_hash == 0) return for_insert && reusable == nullptr ? &entry : reusable;
    if (handle == 0) {
      if (for_insert && reusable == nullptr) reusable = &entry;  // a tombstone
      continue;
    }
    const std::uint32_t index = layout::handle_slot(handle);
    if (entry_hash == hash && index < layout::kMaxStateVersions && key_is(slot(index), key)) {
      return &entry;
    }
  }
  return reusable;
}

std::optional<std::uint64_t> StateStore::find_extent(std::uint64_t size) const noexcept {
  std::array<std::pair<std::uint64_t, std::uint64_t>, layout::kMaxStateVersions> used;
  std::size_t n = 0;
  for (std::uint32_t i = 0; i < layout::kMaxStateVersions; ++i) {
    if (layout::version_state_of(load_seq_cst(slot(i).control)) == VersionState::free) continue;
    used[n++] = {load_relaxed(slot(i).extent_offset), load_relaxed(slot(i).extent_size)};
  }
  std::sort(used.begin(), used.begin() + static_cast<std::ptrdiff_t>(n));
  // Extents come from a shared segment: one outside the data area (torn by
  // a writer killed mid-publish, or corrupt) is never trusted to bound one.
  const std::uint64_t end = layout::kStateDataOffset + capacity_;
  std::uint64_t at = layout::kStateDataOffset;
  for (std::size_t i = 0; i < n; ++i) {
    const auto [first, length] = used[i];
    if (first < layout::kStateDataOffset || first > end || length > end - first) continue;
    if (first >= at && first - at >= size) return at;
    at = std::max(at, first + length);
  }
  if (at <= end && end - at >= size) return at;
  return std::nullopt;
}

std::string StateStore::full_detail(std::uint64_t size, const char* what) const {
  const StateUsage u = usage();
  return std::string(what) + " for " + mib(size) + ": capacity " + mib(u.capacity) + ", live " +
         mib(u.live_bytes) + " in " + std::to_string(u.live) + " versions, retired (still pinned) " +
         mib(u.retired_bytes) + " in " + std::to_string(u.retired) + ", being written " +
         mib(u.writing_bytes) + " in " + std::to_string(u.writing) + ", free " + mib(u.free_bytes) +
         " (not all in one piece)";
}

Result<Reserved> StateStore::reserve(std::string_view key, std::uint64_t size) {
  SHMBUS_ENFORCE(core_.table().joined_here(), kStateForkedChild);
  if (!writable_) return fail(Errc::permission_denied, "this State was opened read-only");
  if (!valid_state_key(key)) return fail(Errc::bad_options, "a state key has 1 … 63 bytes");
  if (size > capacity_) {
    return fail(Errc::bad_options, mib(size) + " is above the state capacity " + mib(capacity_));
  }
  const std::uint64_t extent = align_up(std::max<std::uint64_t>(size, 1), layout::kStateExtentAlign);
  RobustLock lock(*mutex_);
  if (!lock.result()) return tl::unexpected(lock.result().error());
  reclaim_locked();
  const std::uint64_t hash = state_key_hash(key);
  auto refuse = [&](const char* what) {
    count(header_->full);
    return fail(Errc::state_full, full_detail(size, what));
  };
  if (find_entry(key, hash, true) == nullptr) return refuse("no free key entry (256 keys)");
  std::uint32_t index = 0;
  while (index < layout::kMaxStateVersions &&
         layout::version_state_of(load_seq_cst(slot(index).control)) != VersionState::free) {
    ++index;
  }
  if (index == layout::kMaxStateVersions) return refuse("no free version slot (1024 versions)");
  const auto offset = find_extent(extent);
  if (!offset) return refuse("no free extent");
  // Step 1: the version id is spent before the slot says so.
  const std::uint64_t version = load_seq_cst(header_->next_version);
  std::atomic_ref<std::uint64_t>(header_->next_version).store(version + 1, std::memory_order_seq_cst);
  // Step 2: fill the free slot (nobody reads a free slot's fields).
  layout::VersionSlot& s = slot(index);
  store_relaxed(s.writer, core_.table().self().value);
  store_relaxed(s.flags, std::uint32_t{0});
  store_relaxed(s.extent_offset, *offset);
  store_relaxed(s.extent_size, extent);
  store_relaxed(s.value_offset, *offset);
  store_relaxed(s.value_size, std::uint64_t{size});
  store_relaxed(s.key_hash, hash);
  std::memset(s.identifier, 0, sizeof s.identifier);
  s.key_length = static_cast<std::uint8_t>(key.size());
  std::memcpy(s.key, key.data(), key.size());
  // Step 3: writing, by this process.
  set_control(s, version, VersionState::writing);
  SHMBUS_TEST_HOOK(state_reserved_locked);
  return Reserved{index, layout::state_handle(version, index), {base_ + *offset, size}};
}

Result<std::uint64_t> StateStore::publish(std::uint32_t index, std::uint64_t handle,
                                          std::span<const std::byte> value, const char* identifier) {
  SHMBUS_ENFORCE(core_.table().joined_here(), kStateForkedChild);
  RobustLock lock(*mutex_);
  if (!lock.result()) return tl::unexpected(lock.result().error());
  layout::VersionSlot& s = slot(index);
  const std::uint64_t version = layout::handle_version(handle);
  if (load_seq_cst(s.control) != layout::version_control(version, VersionState::writing) ||
      load_relaxed(s.writer) != core_.table().self().value) {
    return fail(Errc::stale_ref, "the transaction's space was freed (its writer was judged dead)");
  }
  const std::string_view key(s.key, s.key_length);
  const std::uint64_t hash = load_relaxed(s.key_hash);
  layout::KeyEntry* entry = find_entry(key, hash, true);
  if (entry == nullptr) {
    set_control(s, version, VersionState::free);
    count(header_->full);
    return fail(Errc::state_full, "no free key entry (256 keys) for '" + std::string(key) + "'");
  }
  // Step 1: the value's range (and the extent shrunk to it), flags.
  const auto offset = static_cast<std::uint64_t>(value.data() - base_);
  const std::uint64_t start = offset / layout::kStateExtentAlign * layout::kStateExtentAlign;
  const std::uint64_t end = align_up(std::max(offset + value.size(), start + 1), layout::kStateExtentAlign);
  // Size first: every range between the two stores lies inside the old
  // extent (a writer killed in between leaves no extent past the data).
  store_relaxed(s.extent_size, end - start);
  store_relaxed(s.extent_offset, start);
  store_relaxed(s.value_offset, offset);
  store_relaxed(s.value_size, std::uint64_t{value.size()});
  if (identifier != nullptr) std::memcpy(s.identifier, identifier, sizeof s.identifier);
  store_relaxed(s.flags, identifier != nullptr ? layout::kValueVerified : 0u);
  // Step 2: published, not yet visible.
  set_control(s, version, VersionState::published);
  SHMBUS_TEST_HOOK(state_publish_locked);
  // Steps 3, 4: the key names it — readers see it from here.
  if (load_relaxed(entry->hash) != hash) std::atomic_ref<std::uint64_t>(entry->hash).store(hash);
  const std::uint64_t old = std::atomic_ref<std::uint64_t>(entry->current).exchange(handle);
  SHMBUS_TEST_HOOK(state_publish_swapped);
  // Step 5: the previous version waits for its pins to go.
  if (old != 0 && layout::handle_slot(old) < layout::kMaxStateVersions) {
    set_control(slot(layout::handle_slot(old)), layout::handle_version(old), VersionState::retired);
  }
  count(header_->puts);
  reclaim_locked();
  return handle;
}

void StateStore::abort(std::uint32_t index, std::uint64_t handle) noexcept {
  if (!core_.table().joined_here()) return;  // the parent's transaction, not ours
  RobustLock lock(*mutex_);
  if (!lock.result()) return;  // unrecoverable mutex: the sweep frees it once we are gone
  layout::VersionSlot& s = slot(index);
  const std::uint64_t version = layout::handle_version(handle);
  if (load_seq_cst(s.control) != layout::version_control(version, VersionState::writing)) return;
  set_control(s, version, VersionState::free);
  count(header_->aborts);
}

Result<void> StateStore::remove(std::string_view key) {
  SHMBUS_ENFORCE(core_.table().joined_here(), kStateForkedChild);
  if (!writable_) return fail(Errc::permission_denied, "this State was opened read-only");
  if (!valid_state_key(key)) return fail(Errc::bad_options, "a state key has 1 … 63 bytes");
  RobustLock lock(*mutex_);
  if (!lock.result()) return tl::unexpected(lock.result().error());
  layout::KeyEntry* entry = find_entry(key, state_key_hash(key), false);
  if (entry == nullptr) return fail(Errc::no_such_key, "no state value under '" + std::string(key) + "'");
  // Step 1: no value (the hash stays: a tombstone). Step 2: retired.
  const std::uint64_t old = std::atomic_ref<std::uint64_t>(entry->current).exchange(0);
  SHMBUS_TEST_HOOK(state_remove_locked);
  set_control(slot(layout::handle_slot(old)), layout::handle_version(old), VersionState::retired);
  count(header_->removes);
  reclaim_locked();
  return {};
}

Result<std::uint32_t> StateStore::reclaim() {
  SHMBUS_ENFORCE(core_.table().joined_here(), kStateForkedChild);
  if (!writable_) return fail(Errc::permission_denied, "this State was opened read-only");
  RobustLock lock(*mutex_);
  if (!lock.result()) return tl::unexpected(lock.result().error());
  return reclaim_locked();
}

}  // namespace shmbus::detail
