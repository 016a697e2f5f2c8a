// registry.hpp — the service table of layout/registry.hpp, as one process
// sees it: register a service (and its mailboxes), join and leave its pool,
// find it by name, read its counters.
//
// Memory ordering: writers hold the robust mutex; a registrar writes an
// entry's identity, then stores state = live with release; lock-free readers
// (find, snapshot) load state with acquire before they read identity fields.
// Crash: a registrar killed before `live` leaves `creating`, which the next
// locker (EOWNERDEAD) frees; its mailbox segments, if made, are replaced by
// the next registration of the name. A server entry of a dead process is
// retired (counters folded into the service's) by the next join or leave.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bus/control.hpp"
#include "process/process_table.hpp"
#include "process/robust_mutex.hpp"
#include "shmbus/registry.hpp"

namespace shmbus::detail {

class BusCore;

class Registry {
 public:
  Registry(const ControlView& view, ProcessTable& table);

  // Registers `name`, creating its pool and dead-letter mailboxes, or checks
  // that the registered one has the same schema and options. Returns its
  // index. Fails with bad_name, bad_options, schema_mismatch,
  // too_many_services, permission_denied or system_error.
  [[nodiscard]] Result<std::uint32_t> register_service(const std::shared_ptr<BusCore>& core,
                                                       std::string_view name,
                                                       const ServiceOptions& options);
  // The index of a live service, or no_such_service. Lock-free.
  [[nodiscard]] Expected<std::uint32_t> find(std::string_view name) const noexcept;

  // Takes a server entry of service `service` for this process. Fails with
  // too_many_consumers (the pool is full) or system_error.
  [[nodiscard]] Result<std::uint32_t> join(std::uint32_t service);
  void set_leaving(std::uint32_t service, std::uint32_t entry) noexcept;
  void leave(std::uint32_t service, std::uint32_t entry);

  [[nodiscard]] layout::ServiceEntry& entry(std::uint32_t service) const noexcept {
    return view_.service(service);
  }
  [[nodiscard]] layout::ServerCounters& server_counters(std::uint32_t service,
                                                        std::uint32_t entry) const noexcept {
    return view_.service(service).servers[entry].counters;
  }
  // Counts a caller-side outcome (timeout_not_started, …) of service `service`.
  void count_outcome(std::uint32_t service, Errc outcome) const noexcept;

  // Every live service with its servers and counters (depth and dead letters
  // are filled in by the caller, which maps the mailboxes).
  [[nodiscard]] std::vector<ServiceInfo> snapshot() const;

 private:
  void repair() noexcept;
  [[nodiscard]] std::vector<ServiceInfo> snapshot_once() const;
  void retire(layout::ServiceEntry& service, layout::ServerEntry& server) noexcept;
  void retire_dead(layout::ServiceEntry& service) noexcept;

  const ControlView& view_;
  ProcessTable& table_;
  RobustMutex mutex_;
};

// Segment names of a service's mailboxes: shmbus.<bus>.<service>~pool / ~dead.
[[nodiscard]] std::string pool_shm_name(const BusCore& core, std::string_view service);
[[nodiscard]] std::string dead_letter_shm_name(const BusCore& core, std::string_view service);
// shmbus.<bus>.<service>~k<p>: partition p of a keyed service.
[[nodiscard]] std::string partition_shm_name(const BusCore& core, std::string_view service,
                                             std::uint32_t partition);


// Plain copies of the shared counters (relaxed loads, one word at a time).
[[nodiscard]] ServerCounters read_counters(const layout::ServerCounters& shared) noexcept;
void add_counters(ServerCounters& sum, const ServerCounters& more) noexcept;

}  // namespace shmbus::detail
