// state_store.hpp — one mapping of the state segment (layout/state.hpp):
// the readers' lock-free path (state_store.cpp) and, on a writable mapping,
// the writers' steps under the robust mutex (state_writer.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "process/robust_mutex.hpp"
#include "segment/segment.hpp"
#include "shmbus/error.hpp"
#include "shmbus/layout/state.hpp"
#include "shmbus/state.hpp"
#include "state/pins.hpp"

namespace shmbus::detail {

// A forked child shares its parent's process slot, pin line and writer
// identity; using them would let the bus free what the parent still reads.
inline constexpr const char* kStateForkedChild =
    "the state segment used in a forked child: attach the bus again in the child";

class BusCore;

// A version held by one of this process's pin cells.
struct Pinned {
  std::uint32_t cell = 0;
  std::uint64_t handle = 0;
  const layout::VersionSlot* slot = nullptr;
  std::span<const std::byte> bytes;
};

// What begin_put reserved: a writing slot and its extent.
struct Reserved {
  std::uint32_t slot = 0;
  std::uint64_t handle = 0;
  std::span<std::byte> bytes;
};

[[nodiscard]] std::uint64_t state_key_hash(std::string_view key) noexcept;
[[nodiscard]] inline bool valid_state_key(std::string_view key) noexcept {
  return !key.empty() && key.size() <= layout::kMaxStateKeyBytes;
}

class StateStore {
 public:
  // Maps the segment (read-only or writable) and checks it. `pins` is this
  // process's PinSet, shared by both mappings of one attachment. Fails like
  // Segment::attach and check_state_segment.
  [[nodiscard]] static Result<std::unique_ptr<StateStore>> open(BusCore& core, bool writable,
                                                                std::shared_ptr<PinSet> pins);
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Readers: no lock, no system call, no allocation.
  [[nodiscard]] Expected<Pinned> get(std::string_view key) noexcept;
  [[nodiscard]] Expected<Pinned> resolve(std::uint64_t handle) noexcept;
  // In a forked child the pin line is the parent's: it is left alone.
  void unpin(std::uint32_t cell) noexcept;
  [[nodiscard]] std::vector<StateEntry> list();
  [[nodiscard]] StateUsage usage() const noexcept;

  // Writers (state_writer.cpp); only on a writable mapping.
  [[nodiscard]] Result<Reserved> reserve(std::string_view key, std::uint64_t size);
  [[nodiscard]] Result<std::uint64_t> publish(std::uint32_t slot, std::uint64_t handle,
                                              std::span<const std::byte> value,
                                              const char* identifier);
  void abort(std::uint32_t slot, std::uint64_t handle) noexcept;
  [[nodiscard]] Result<void> remove(std::string_view key);
  [[nodiscard]] Result<std::uint32_t> reclaim();

  [[nodiscard]] const std::shared_ptr<PinSet>& pins() const noexcept { return pins_; }
  [[nodiscard]] std::span<const std::byte> mapping() const noexcept { return segment_.bytes(); }

 private:
  StateStore(BusCore& core, Segment segment, std::uint64_t capacity, bool writable,
             std::shared_ptr<PinSet> pins) noexcept;

  // Reader helpers (state_store.cpp).
  [[nodiscard]] std::uint64_t pin_current(const layout::KeyEntry& entry, std::uint32_t cell) noexcept;
  // Whether `handle`'s slot still holds that version (bounds-checked bytes
  // out). `was_current`: the pin was validated against a key's `current`.
  [[nodiscard]] bool holds(std::uint64_t handle, std::span<const std::byte>& bytes,
                           bool was_current = false) const noexcept;
  [[nodiscard]] bool key_is(const layout::VersionSlot& slot, std::string_view key) const noexcept;

  // Writer helpers (state_writer.cpp), all under the mutex.
  void repair() noexcept;
  std::uint32_t sweep_dead_writers() noexcept;
  std::uint32_t reclaim_locked() noexcept;
  [[nodiscard]] layout::KeyEntry* find_entry(std::string_view key, std::uint64_t hash,
                                             bool for_insert) noexcept;
  [[nodiscard]] std::optional<std::uint64_t> find_extent(std::uint64_t size) const noexcept;
  [[nodiscard]] std::string full_detail(std::uint64_t size, const char* what) const;
  [[nodiscard]] bool alive(std::uint32_t ref) const noexcept;

  [[nodiscard]] layout::VersionSlot& slot(std::uint32_t i) const noexcept { return versions_[i]; }

  BusCore& core_;
  Segment segment_;
  std::byte* base_;
  std::uint64_t capacity_;  // checked against the mapping at open
  bool writable_;
  layout::StateHeader* header_;
  layout::KeyEntry* keys_;
  layout::VersionSlot* versions_;
  std::shared_ptr<PinSet> pins_;
  std::optional<RobustMutex> mutex_;  // writable mappings only
};

}  // namespace shmbus::detail
