// service_link.hpp — what a client handle or a server knows of one service:
// its registry entry, its pool mailbox, and the limits it checks before
// sending. Shared by Service, PendingCall and Reply, so none of them can
// outlive the mappings it points into.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bus/bus_core.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/mailbox.hpp"

namespace shmbus::detail {

struct ServiceLink {
  ServiceLink(std::shared_ptr<BusCore> core_in, std::uint32_t index_in, std::string name_in,
              Mailbox pool_in) noexcept
      : core(std::move(core_in)), index(index_in), name(std::move(name_in)), pool(std::move(pool_in)) {}

  std::shared_ptr<BusCore> core;
  std::uint32_t index = 0;  // registry entry
  std::string name;
  Mailbox pool;
  std::array<char, 4> request_identifier{};  // zeros: any payload
  std::array<char, 4> reply_identifier{};
  bool trusted = false;
  std::vector<Mailbox> partitions;           // keyed routing; empty: none

  // The mailbox a message with `key` goes to, or bad_options (no partitions),
  // or stopped (the service was closed).
  [[nodiscard]] Expected<Mailbox*> route(const std::optional<std::uint64_t>& key) noexcept;
  // Whether Bus::close_service closed the service. A sender asks again after
  // its claim, before the commit: with the closer's seq_cst exchange, either the
  // sender sees the close (and aborts its claim) or the closer's later reads
  // of the mailbox (its drain) see the claim — a message never queues unseen
  // behind the drain, also from a sender that stalled after route().
  [[nodiscard]] bool closed() const noexcept { return load_seq_cst(identity().closed) != 0; }
  // Wakes the servers of a keyed service parked on its doorbell (they wait
  // on several mailboxes at once, so no single ring's wake reaches them).
  void ring_doorbell() const noexcept;
  [[nodiscard]] layout::ServiceIdentity& identity() const noexcept {
    return core->registry().entry(index).identity;
  }

  // Opens the pool mailbox of the live service `name`. Fails with
  // no_such_service, or like Bus::open_mailbox.
  [[nodiscard]] static Result<std::shared_ptr<ServiceLink>> open(std::shared_ptr<BusCore> core,
                                                                 std::string_view name);

  // Whether `payload` carries the service's request identifier (FlatBuffers
  // bytes 4..7), when the service has one.
  [[nodiscard]] bool has_request_identifier(std::span<const std::byte> payload) const noexcept;
  // The same for a reply and the service's reply identifier.
  [[nodiscard]] bool has_reply_identifier(std::span<const std::byte> payload) const noexcept;
};

}  // namespace shmbus::detail
