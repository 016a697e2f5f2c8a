// server_state.hpp — what one Server holds, and the small steps its receive
// loop (server.cpp) and its call path (server_calls.cpp) share. Private.
#pragma once

#include <bit>
#include <climits>
#include <optional>

#include "server/partition_set.hpp"
#include "server/service_link.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/server.hpp"
#include "wait/futex.hpp"

namespace shmbus {

namespace detail {
// One scan of the process table (a system call per live process) per second
// per server: dead callers are found within a second, at a negligible cost.
constexpr std::chrono::seconds kReclaimInterval{1};
// Busy servers read the clock for it only every this many messages.
constexpr std::uint32_t kMessagesPerReclaimCheck = 256;
// Handler times are sampled, one message in kLatencySample: the histogram's
// quantiles stay true, and the hot path reads no clock beyond what a call's
// deadline check needs (casts: none at all on unsampled messages).
constexpr std::uint32_t kLatencySample = 8;

}  // namespace detail

struct Server::State {
  std::shared_ptr<detail::ServiceLink> link;
  std::optional<Receiver> receiver;
  std::optional<Mailbox> dead_letters;
  std::optional<detail::PartitionSet> partitions;  // keyed services only
  bool pool_first = true;                          // alternates pool and partitions
  std::uint32_t entry = 0;  // our ServerEntry in the registry
  ServiceSchema schema;     // the verifiers of this process's handler
  std::uint32_t max_deliveries = 3;
  MessageBuffer scratch;
  std::atomic<bool> stop_requested{false};
  Deadline next_reclaim{};  // servers reclaim dead processes (callers) now and then
  std::uint32_t since_reclaim_check = 0;
  std::uint32_t messages = 0;
  [[nodiscard]] bool sample_latency() noexcept { return ++messages % detail::kLatencySample == 0; }

  // A loop that calls serve_one(now) never parks, so the receiver's own
  // interval check may not come around: look for dead producers' claims and
  // dead siblings' records once per interval when nothing came.
  Deadline next_recover{};
  [[nodiscard]] Expected<Delivery> recover_if_due() noexcept {
    const Deadline now = Clock::now();
    if (now < next_recover) return tl::unexpected(Errc::empty);
    next_recover = now + kParkRecheckInterval;
    return receiver->recover();
  }

  // Dead callers' call slots are recycled when their process slot is
  // reclaimed; servers see to it so that nobody else has to.
  void reclaim_if_due(bool idle) noexcept {
    if (!idle && ++since_reclaim_check < detail::kMessagesPerReclaimCheck) return;
    since_reclaim_check = 0;
    const Deadline now = Clock::now();
    if (now < next_reclaim) return;
    next_reclaim = now + detail::kReclaimInterval;
    (void)core().reclaim_dead();
  }

  [[nodiscard]] detail::BusCore& core() const noexcept { return *link->core; }
  [[nodiscard]] layout::ServerCounters& counters() const noexcept {
    return core().registry().server_counters(link->index, entry);
  }
};

namespace detail {

inline void count(std::uint64_t& counter, std::uint64_t n = 1) noexcept {
  // One writer (this server): a plain load and store, no locked instruction.
  detail::store_relaxed(counter, detail::load_relaxed(counter) + n);
}

inline void wake_caller(layout::CallSlotHeader& slot, layout::ProcessDoorbell& doorbell) noexcept {
  // seq_cst: after our CAS on control (Dekker with the caller's waiters++).
  if (detail::load_seq_cst(slot.waiters) != 0) {
    detail::futex_wake(reinterpret_cast<const std::uint32_t*>(&slot.control), INT_MAX);
  }
  // A readiness waiter of the caller's process waits for any of its calls.
  if (detail::load_seq_cst(doorbell.waiters) != 0) {
    detail::ring_all(doorbell.seq);
  }
}

inline std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

inline void record_latency(layout::ServerCounters& counters, std::uint64_t ns) noexcept {
  const std::uint64_t micros = ns / 1000;
  const auto bucket = std::min<std::size_t>(std::bit_width(micros), layout::kLatencyBuckets - 1);
  count(counters.latency[bucket]);
  count(counters.busy_ns, ns);
}

// The request's bytes, verified against the service's types: a private copy
// when verified, the ring's bytes when the service is untyped or the bus
// trusted. A loan is verified in place, never copied (its sender can only
// hurt itself by writing after sending: DESIGN.md, the trust model). Empty
// optional: bad_message (or the loan's ref_error).
inline std::optional<std::span<const std::byte>> checked_payload(const detail::ServiceLink& link,
                                                          const ServiceSchema& schema,
                                                          MessageBuffer& scratch,
                                                          const Delivery& delivery) {
  const std::span<const std::byte> payload = delivery.payload();
  if (delivery.info().ref_error != Errc{}) return std::nullopt;
  if (!link.has_request_identifier(payload)) return std::nullopt;
  if (link.trusted || schema.verify_request == nullptr) return payload;
  if (delivery.info().loaned) {
    if (!schema.verify_request(payload)) return std::nullopt;
    return payload;
  }
  const auto copy = scratch.assign(payload);
  if (!schema.verify_request(copy)) return std::nullopt;
  return copy;
}

}  // namespace detail

}  // namespace shmbus
