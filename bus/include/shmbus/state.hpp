// -----------------------------------------------------------------------------
// state.hpp — the bus's read-mostly state: large values written once, read in place
// -----------------------------------------------------------------------------
//
//   // a writer (a process allowed to map the segment writable)
//   auto state = bus.state(shmbus::StateAccess::read_write).value();
//   auto put = state.put("routes", bytes);                 // state_full if it cannot fit
//
//   auto tx = state.begin_put("model", max_size).value();  // reserve, write in place…
//   auto builder = tx.builder();                           // …or build a FlatBuffer there
//   builder.Finish(make_model(builder), "MODL");
//   auto ref = tx.publish<Model>(builder, "MODL");         // verified once, here
//
//   // any reader: no lock, no system call, no copy, whatever the size
//   auto state = bus.state().value();                      // mapped read-only
//   auto view = state.get("model");                        // no_such_key
//   if (view) use(view->bytes());                          // pinned while `view` lives
//   auto model = view->root<Model>("MODL");                // bad_message if not that type
//
// A value is immutable once published; a publish replaces the key's version
// atomically, so a reader sees the old value or the new one, never a mix. A
// StateView pins its version: the bytes stay valid and unchanged until the
// view is destroyed, also when the key is replaced or removed meanwhile. A
// process holds at most 15 views at once (layout::kPinsPerProcess):
// too_many_in_flight beyond that — keep views short-lived. A process that
// dies gives its pins back (the reaper, or the next writer's reclaim).
//
// A message can carry a StateRef (schemas/shmbus/state_ref.fbs has it as a
// FlatBuffers struct): the receiver's resolve() gives the same version in
// place, or stale_ref once it was reclaimed, or bad_ref for a forged ref —
// never a read out of bounds. A ref does not pin: the version it names stays
// until it is superseded and nobody pins it.
//
// Writers are serialized (a robust mutex: a writer killed anywhere leaves
// nothing half-done for the next one) and write values outside the lock.
// Layout, pins and the crash analysis: layout/state.hpp.
//
// Threads: State, StateView and PutTransaction are handles; share a State
// between threads only for reads (get, resolve), one handle per thread
// otherwise. A forked child must attach the bus again: state calls there
// abort (its pins would be its parent's), and views it inherited are left
// alone when destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/error.hpp"
#include "shmbus/span_allocator.hpp"

namespace shmbus {

namespace detail {
class BusCore;
class StateStore;
}  // namespace detail

enum class StateAccess { read_only, read_write };

// One version of one key, as a message carries it: version id << 16 | slot
// (layout/state.hpp). 0 names nothing.
struct StateRef {
  std::uint64_t handle = 0;
  friend bool operator==(StateRef, StateRef) = default;
};

// A pinned, read-only view of one published version. Move-only; destroying
// it unpins the version (one store).
class StateView {
 public:
  StateView(StateView&& other) noexcept;
  StateView& operator=(StateView&& other) noexcept;
  ~StateView();

  // The value, inside the read-only mapping of the state segment.
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return bytes_; }
  [[nodiscard]] std::string_view key() const noexcept { return key_; }
  [[nodiscard]] std::uint64_t version() const noexcept { return ref_.handle >> 16; }
  [[nodiscard]] StateRef ref() const noexcept { return ref_; }

  // The FlatBuffer root, when the writer published it verified with this
  // file identifier (publish<Root>); bad_message otherwise. Not re-verified.
  template <class Root>
  [[nodiscard]] Expected<const Root*> root(const char* identifier) const noexcept {
    if (!verified_as(identifier)) return tl::unexpected(Errc::bad_message);
    return flatbuffers::GetRoot<Root>(bytes_.data());
  }
  [[nodiscard]] bool verified_as(const char* identifier) const noexcept;

 private:
  friend class State;
  StateView(std::shared_ptr<detail::BusCore> core, detail::StateStore* store, std::uint32_t cell,
            StateRef ref, std::span<const std::byte> bytes, std::string_view key,
            const char* identifier) noexcept;
  void unpin() noexcept;
  std::shared_ptr<detail::BusCore> core_;
  detail::StateStore* store_ = nullptr;
  std::uint32_t cell_ = 0;
  StateRef ref_;
  std::span<const std::byte> bytes_;
  std::string_view key_;           // in the slot: immutable while pinned
  const char* identifier_ = nullptr;  // 4 chars in the slot, or nullptr: not verified
};

// A value being written in place, invisible to readers until publish().
// Move-only; destroying it unpublished aborts it (its space is freed).
class PutTransaction {
 public:
  PutTransaction(PutTransaction&& other) noexcept;
  PutTransaction& operator=(PutTransaction&& other) noexcept;
  ~PutTransaction();

  // The reserved span, writable (exactly the size asked for).
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return bytes_; }
  // A builder whose buffer ends at the span's end (initial size: the span).
  [[nodiscard]] flatbuffers::FlatBufferBuilder builder();

  // Publishes the whole span, or its first `length` bytes, as the key's new
  // version (replacing the old one atomically). Fails with bad_options
  // (length above the span), stale_ref (already published or aborted, or
  // the transaction's slot was freed because this process was judged dead)
  // or system_error (the writers' mutex is unrecoverable).
  Result<StateRef> publish();
  Result<StateRef> publish(std::size_t length);
  // Publishes the buffer `builder` finished (built with builder()). Fails
  // also with record_too_large (the buffer outgrew the span) or bad_options
  // (a builder not built over this span).
  Result<StateRef> publish(const flatbuffers::FlatBufferBuilder& builder);
  // Verifies the buffer as a `Root` with `identifier` (the FlatBuffers
  // Verifier) before publishing; fails with bad_message if it does not pass.
  template <class Root>
  Result<StateRef> publish(const flatbuffers::FlatBufferBuilder& builder, const char* identifier) {
    auto range = built_range(builder);
    if (!range) return tl::unexpected(range.error());
    const auto* data = reinterpret_cast<const std::uint8_t*>(range->data());
    flatbuffers::Verifier verifier(data, range->size(), 64, 1000000);
    if (identifier == nullptr || !flatbuffers::BufferHasIdentifier(data, identifier) ||
        !verifier.VerifyBuffer<Root>(identifier)) {
      return fail(Errc::bad_message, "the FlatBuffer does not verify as the root type with "
                                     "identifier '" + std::string(identifier ? identifier : "") + "'");
    }
    return publish_range(*range, identifier);
  }
  // Frees the reserved space; nothing was ever visible. Idempotent.
  void abort() noexcept;

 private:
  friend class State;
  PutTransaction(std::shared_ptr<detail::BusCore> core, detail::StateStore* store,
                 std::uint32_t slot, std::uint64_t handle, std::span<std::byte> bytes) noexcept;
  [[nodiscard]] Result<std::span<const std::byte>> built_range(
      const flatbuffers::FlatBufferBuilder& builder) const;
  Result<StateRef> publish_range(std::span<const std::byte> range, const char* identifier);
  std::shared_ptr<detail::BusCore> core_;
  detail::StateStore* store_ = nullptr;
  std::uint32_t slot_ = 0;
  std::uint64_t handle_ = 0;  // 0 once published or aborted
  std::span<std::byte> bytes_;
  std::unique_ptr<SpanAllocator> allocator_;
};

// What list() reports per key.
struct StateEntry {
  std::string key;
  std::uint64_t version = 0;
  std::uint64_t size = 0;  // value bytes
  StateRef ref;
};

// Where the data area's bytes are, as seen at the moment of the call.
// free = capacity - live - retired - writing (extents are 64-byte aligned).
struct StateUsage {
  std::uint64_t capacity = 0;
  std::uint64_t live_bytes = 0;     // current versions of keys
  std::uint64_t retired_bytes = 0;  // superseded, kept while pinned (or until a reclaim)
  std::uint64_t writing_bytes = 0;  // reserved by transactions not yet published
  std::uint64_t free_bytes = 0;
  std::uint32_t keys = 0;
  std::uint32_t live = 0, retired = 0, writing = 0;  // versions in each state
  std::uint64_t puts = 0, removes = 0, aborts = 0, reclaimed = 0, repaired = 0, full = 0;
};

// The bus's state segment, read-only or writable (Bus::state). Move-only;
// views and transactions keep the mapping alive on their own.
class State {
 public:
  State(State&&) noexcept = default;
  State& operator=(State&&) noexcept = default;
  ~State() = default;

  [[nodiscard]] bool writable() const noexcept { return writable_; }

  // The key's current version, pinned. Fails with no_such_key, bad_options
  // (a key empty or above 63 bytes) or too_many_in_flight (15 views held).
  [[nodiscard]] Expected<StateView> get(std::string_view key) const noexcept;
  // The version a ref names, pinned. Fails with bad_ref (never a version of
  // this bus), stale_ref (reclaimed, or no longer there) or too_many_in_flight.
  // A ref to a superseded version that a writer is deciding about right now
  // waits for that one pin scan (at most 1 s, then stale_ref); the current
  // version never waits.
  [[nodiscard]] Expected<StateView> resolve(StateRef ref) const noexcept;
  [[nodiscard]] static StateRef ref(const StateView& view) noexcept { return view.ref(); }

  // Every key with a value, as seen at the moment of the call. Never fails.
  [[nodiscard]] std::vector<StateEntry> list() const;
  [[nodiscard]] StateUsage usage() const noexcept;

  // Writers (a read_only State: permission_denied).
  //
  // State::begin_put()
  //
  // Reserves `size` bytes for a new version of `key` (after reclaiming what
  // no pin holds). Fails with bad_options (key empty or above 63 bytes, size
  // above the capacity), state_full (the detail says what live, retired and
  // in-progress versions hold; nothing changed), permission_denied or
  // system_error.
  [[nodiscard]] Result<PutTransaction> begin_put(std::string_view key, std::size_t size);
  // begin_put + copy + publish.
  Result<StateRef> put(std::string_view key, std::span<const std::byte> value);
  // Removes the key's value (pinned views keep it until they go). Fails with
  // no_such_key, bad_options, permission_denied or system_error.
  Result<void> remove(std::string_view key);
  // Frees retired versions no pin holds, and what dead writers left; returns
  // how many versions it freed. Fails with permission_denied or system_error.
  Result<std::uint32_t> reclaim();

 private:
  friend class Bus;
  State(std::shared_ptr<detail::BusCore> core, detail::StateStore* store, bool writable) noexcept
      : core_(std::move(core)), store_(store), writable_(writable) {}
  std::shared_ptr<detail::BusCore> core_;
  detail::StateStore* store_ = nullptr;
  bool writable_ = false;
};

}  // namespace shmbus
