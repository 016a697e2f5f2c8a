// state_path.hpp — shmbus's third payload path for the one-way harness
// (support/one_way.hpp): a value in the state segment, read by ref. See
// shmbus_paths.hpp for the bus, the service and the other two paths.
#pragma once

#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "peers/peer.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/state.hpp"
#include "support/pattern.hpp"
#include "support/shmbus_paths.hpp"

namespace shmbus::bench {

// (c) state: the value is published once (open(), untimed) in the state
// segment; each message is a 64-byte record {seq, StateRef} copied through the
// ring, and the receiver resolves the ref (State::resolve: a pinned view into
// its read-only mapping) and reads the value in place. Word 0 of the value is
// kStateTag; the record's seq is what the receiver checks. The child maps
// every page of the value before it says it is ready.
class ShmbusState : public ShmbusPath {
 public:
  static constexpr const char* kName = "state";
  static constexpr std::uint64_t kStateTag = 0x5354415445ull;  // "STATE"
  using ShmbusPath::ShmbusPath;

  [[nodiscard]] std::string open() {
    record_bytes_ = kRecordBytes;
    if (auto why = open_bus(kRecordBytes); !why.empty()) return why;
    auto state = bus_->state(StateAccess::read_write);
    if (!state) return state.error().message();
    auto put = state->begin_put("payload", spec_.bytes);
    if (!put) return put.error().message();
    fill_pattern(put->bytes(), kStateTag);
    auto ref = put->publish();
    if (!ref) return ref.error().message();
    ref_ = *ref;
    std::memcpy(record_.data() + 8, &ref_.handle, sizeof(ref_.handle));
    return {};
  }
  [[nodiscard]] std::string become_receiver() {
    if (auto why = attach_server(); !why.empty()) return why;
    auto state = child_bus_->state(StateAccess::read_only);
    if (!state) return state.error().message();
    state_.emplace(std::move(*state));
    auto view = state_->resolve(ref_);
    if (!view)
      return std::string("cannot resolve the ref: ") + std::string(to_string(view.error()));
    std::uint64_t x = pretouch_read(view->bytes());
    benchmark::DoNotOptimize(x);
    return {};
  }
  [[nodiscard]] std::string become_sender() { return {}; }

  [[nodiscard]] bool send(std::uint64_t seq, peers::PeerDeadline deadline) noexcept {
    std::memcpy(record_.data(), &seq, sizeof(seq));
    return service_->cast(record_, cast_options(deadline)).has_value();
  }

  template <class OnMessage>
  [[nodiscard]] bool receive(peers::PeerDeadline deadline, OnMessage&& on_message) {
    bool resolved = false;
    auto on_request = [&](std::span<const std::byte> record) {
      if (record.size() < 16) return;
      StateRef ref;
      std::memcpy(&ref.handle, record.data() + 8, sizeof(ref.handle));
      auto view = state_->resolve(ref);
      if (!view) return;
      resolved = true;
      on_message(word0(record), view->bytes());
    };  // the view (and its pin) goes here
    return serve_one(deadline, on_request) && resolved;
  }

  void describe(peers::TransportFacts& facts) const {
    facts["state_capacity"] = static_cast<double>(kShareStateCapacity);
  }

 private:
  static constexpr std::uint32_t kRecordBytes = 64;
  StateRef ref_{};
  std::array<std::byte, kRecordBytes> record_{};
  std::optional<State> state_;  // child: read-only
};

}  // namespace shmbus::bench
