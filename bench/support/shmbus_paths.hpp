// shmbus_paths.hpp — the three ways shmbus moves a payload, as transports of
// the one-way harness (support/one_way.hpp, peers/peer.hpp):
//
//   ShmbusCopy   the payload is copied into the ring: Service::cast(bytes)
//                claims a cell of the payload's size, copies the sender's
//                private buffer in and commits; the server's Request::payload()
//                is the cell (an untyped service: no verifier, no private copy).
//   ShmbusLoan   a blob-pool block, written in place, sent by reference
//                (Service::cast(Loan&&)); the server reads the block.
//   ShmbusState  (state_path.hpp) a state value published once; each message
//                carries its StateRef and the server resolves it in place.
//
// All of them go through one untyped service ("share") served by the child
// with Server::serve_one(handler, deadline, mode), so the figures differ by
// the payload's path only, not by the layer. The parent creates the bus
// (named after its pid), registers the service and removes the bus when the
// benchmark ends; the child attaches again after the fork (two_process.hpp)
// and never touches the parent's objects.
#pragma once

#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "peers/peer.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/server.hpp"
#include "support/pattern.hpp"
#include "support/two_process.hpp"

namespace shmbus::bench {

inline constexpr char kShareService[] = "share";
inline constexpr std::size_t kMiB = std::size_t{1} << 20;

// The bench bus's blob classes (block sizes are multiples of 4096): the
// 64 MiB class has room for a 64 MiB payload plus FlatBuffers overhead.
[[nodiscard]] inline std::vector<BlobClass> share_blob_classes() {
  return {{64u << 10, 8}, {1u << 20, 8}, {16u << 20, 4}, {(64u << 20) + (64u << 10), 4}};
}

// A 64 MiB value plus its replacement, with room to spare.
inline constexpr std::uint64_t kShareStateCapacity = std::uint64_t{160} << 20;

// Ring cells for a payload of `bytes`: a few when one message is in flight;
// for a stream, as many as fit in about 32 MiB (4 … 1024, a power of two).
// The warm-up writes every cell twice (warmup_messages), so none is faulted
// in for the first time while timed.
[[nodiscard]] inline std::uint32_t share_capacity(std::size_t bytes, bool stream) {
  if (!stream) return bytes >= kMiB ? 4 : 64;
  const std::size_t cells = (std::size_t{32} * kMiB) / bytes;
  std::uint32_t capacity = 4;
  while (capacity < 1024 && std::size_t{capacity} * 2 <= cells) capacity *= 2;
  return capacity;
}

[[nodiscard]] inline WaitMode wait_mode(peers::PeerWait wait) noexcept {
  return wait == peers::PeerWait::park ? WaitMode::park : WaitMode::busy_poll;
}

// Calls a function with each received cast's payload (Request::payload()).
template <class OnRequest>
class CastHandler final : public Handler {
 public:
  explicit CastHandler(OnRequest& on_request) : on_request_(on_request) {}
  void handle_call(const Request& /*request*/, ReplyWriter& /*reply*/) override {}
  void handle_cast(const Request& request) override { on_request_(request.payload()); }

 private:
  OnRequest& on_request_;
};

// What the three paths share: the bus, the service, the child's server.
class ShmbusPath {
 public:
  explicit ShmbusPath(peers::TransportSpec spec) : spec_(spec), name_(unique_bus_name()) {}
  ShmbusPath(const ShmbusPath&) = delete;
  ShmbusPath& operator=(const ShmbusPath&) = delete;
  // In the parent only (the child _exits): the bus goes with the benchmark.
  ~ShmbusPath() {
    if (created_) (void)Bus::remove(name_);
  }

  // Parent, before fork: creates the bus and registers the service, whose
  // records hold `record_bytes`.
  [[nodiscard]] std::string open_bus(std::size_t record_bytes) {
    CreateOptions options;
    options.label = "bench-share-parent";
    options.max_processes = 8;
    options.max_in_flight = 4;
    options.state_capacity = kShareStateCapacity;
    options.blob_classes = share_blob_classes();
    auto bus = Bus::create(name_, options);
    if (!bus) return bus.error().message();
    created_ = true;
    bus_.emplace(std::move(*bus));
    ServiceOptions service;
    service.mailbox_capacity = share_capacity(spec_.bytes, spec_.stream);
    service.max_record = static_cast<std::uint32_t>(record_bytes);
    if (auto registered = bus_->register_service(kShareService, service); !registered) {
      return registered.error().message();
    }
    auto handle = bus_->service(kShareService);
    if (!handle) return handle.error().message();
    service_.emplace(*handle);
    return {};
  }

  // Child, after fork: attaches and joins the service's pool.
  [[nodiscard]] std::string attach_server() {
    auto bus = Bus::attach(name_, {.label = "bench-share-child"});
    if (!bus) return bus.error().message();
    child_bus_.emplace(std::move(*bus));
    ServiceOptions service;
    service.mailbox_capacity = share_capacity(spec_.bytes, spec_.stream);
    service.max_record = record_bytes_;
    auto server = Server::start(*child_bus_, kShareService, service);
    if (!server) return server.error().message();
    server_.emplace(std::move(*server));
    return {};
  }

  // Child: serves one cast, calling on_request(payload) inside the handler.
  template <class OnRequest>
  [[nodiscard]] bool serve_one(peers::PeerDeadline deadline, OnRequest&& on_request) {
    bool called = false;
    auto counted = [&](std::span<const std::byte> payload) {
      called = true;
      on_request(payload);
    };
    CastHandler<decltype(counted)> handler(counted);
    // serve_one is also true for a record it skipped (counted, not handed
    // to us): serve again until the handler ran.
    while (!called) {
      if (!server_->serve_one(handler, deadline, wait_mode(spec_.wait))) return false;
    }
    return true;
  }

  [[nodiscard]] CastOptions cast_options(peers::PeerDeadline deadline) const noexcept {
    CastOptions options;
    options.deadline = deadline;
    options.mode = WaitMode::busy_poll;  // waiting for room (stream only): the sender spins
    return options;
  }

 protected:
  peers::TransportSpec spec_;
  std::string name_;
  bool created_ = false;
  std::uint32_t record_bytes_ = 0;
  std::optional<Bus> bus_;          // parent
  std::optional<Service> service_;  // parent
  std::optional<Bus> child_bus_;    // child
  std::optional<Server> server_;    // child
};

// (a) copy: the payload's bytes go through the ring.
class ShmbusCopy : public ShmbusPath {
 public:
  static constexpr const char* kName = "copy";
  using ShmbusPath::ShmbusPath;

  [[nodiscard]] std::string open() {
    record_bytes_ = static_cast<std::uint32_t>(spec_.bytes);
    return open_bus(spec_.bytes);
  }
  [[nodiscard]] std::string become_receiver() { return attach_server(); }
  [[nodiscard]] std::string become_sender() {
    buffer_.assign(spec_.bytes, std::byte{0});
    fill_pattern(buffer_);
    return {};
  }

  [[nodiscard]] bool send(std::uint64_t seq, peers::PeerDeadline deadline) noexcept {
    std::memcpy(buffer_.data(), &seq, sizeof(seq));
    return service_->cast(buffer_, cast_options(deadline)).has_value();
  }

  template <class OnMessage>
  [[nodiscard]] bool receive(peers::PeerDeadline deadline, OnMessage&& on_message) {
    auto on_request = [&](std::span<const std::byte> payload) {
      on_message(word0(payload), payload);
    };
    return serve_one(deadline, on_request);
  }

  void describe(peers::TransportFacts& facts) const {
    facts["ring_cells"] = share_capacity(spec_.bytes, spec_.stream);
  }
  [[nodiscard]] std::int64_t warmup_messages() const {
    return 2 * std::int64_t{share_capacity(spec_.bytes, spec_.stream)};
  }

 private:
  std::vector<std::byte> buffer_;
};

// (b) loan: the sender loans a block (Bus::loan, the smallest class that
// fits), writes word 0 in place — the rest of the payload was written in the
// block beforehand, as a producer writes its data where it will be sent — and
// casts it: the ring carries a 32-byte ref, the server's Request::payload()
// is the block. Blocks are reused, never faulted in while timed: open() loans
// every block that can serve the size, writes the pattern into it and gives it
// back; the child maps every page of them for reading before it says it is
// ready (touch_blocks).
class ShmbusLoan : public ShmbusPath {
 public:
  static constexpr const char* kName = "loan";
  using ShmbusPath::ShmbusPath;

  [[nodiscard]] std::string open() {
    record_bytes_ = kRefRecordBytes;
    if (auto why = open_bus(kRefRecordBytes); !why.empty()) return why;
    return touch_blocks(*bus_, /*write=*/true);
  }
  [[nodiscard]] std::string become_receiver() {
    if (auto why = attach_server(); !why.empty()) return why;
    return touch_blocks(*child_bus_, /*write=*/false);
  }
  [[nodiscard]] std::string become_sender() { return {}; }

  [[nodiscard]] bool send(std::uint64_t seq, peers::PeerDeadline deadline) noexcept {
    // Streams wait (spinning) for a block the receiver has not given back yet.
    auto loan = bus_->loan(spec_.bytes, {.deadline = deadline, .mode = WaitMode::busy_poll});
    if (!loan) return false;
    std::memcpy(loan->bytes().data(), &seq, sizeof(seq));
    if (!loan->set_payload(0, spec_.bytes)) return false;
    return service_->cast(std::move(*loan), cast_options(deadline)).has_value();
  }

  template <class OnMessage>
  [[nodiscard]] bool receive(peers::PeerDeadline deadline, OnMessage&& on_message) {
    auto on_request = [&](std::span<const std::byte> payload) {
      on_message(word0(payload), payload);
    };
    return serve_one(deadline, on_request);
  }

  void describe(peers::TransportFacts& facts) const {
    facts["blocks"] = static_cast<double>(blocks_);
    facts["block_bytes"] = static_cast<double>(block_bytes_);
  }

 private:
  static constexpr std::uint32_t kRefRecordBytes = 64;  // a loan's record is a 32-byte ref

  // Loans every block that can serve the payload size — its class, and the
  // larger classes the pool falls back to when that one is used up (a stream
  // gets there) — until the pool refuses; touches the payload part of each
  // (writing the pattern, or reading every page) and gives them all back.
  [[nodiscard]] std::string touch_blocks(Bus& bus, bool write) {
    std::vector<Loan> held;
    for (;;) {
      auto loan = bus.loan(spec_.bytes);
      if (!loan) {
        if (loan.error() == Errc::pool_exhausted && !held.empty()) break;
        return std::string("cannot loan a block: ") + std::string(to_string(loan.error()));
      }
      const auto payload = loan->bytes().first(spec_.bytes);
      if (write) {
        fill_pattern(payload);
      } else {
        std::uint64_t x = pretouch_read(payload);
        benchmark::DoNotOptimize(x);
      }
      held.push_back(std::move(*loan));
    }
    blocks_ = held.size();
    block_bytes_ = held.front().bytes().size();  // the first: the class that serves the size
    return {};
  }

  std::size_t blocks_ = 0;
  std::size_t block_bytes_ = 0;
};

}  // namespace shmbus::bench
