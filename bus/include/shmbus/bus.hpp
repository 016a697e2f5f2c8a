// -----------------------------------------------------------------------------
// bus.hpp — create, attach, list and remove a bus; the process table
// -----------------------------------------------------------------------------
//
// A bus is one named domain on one host: a control segment (/dev/shm/shmbus.<name>,
// holding the process table) and one segment per mailbox. Every process that
// attaches takes a slot in the process table; the kernel tells when it dies
// (layout/process_table.hpp), so whatever it held can be given back.
//
//   auto bus_result = shmbus::Bus::create("orders");           // or Bus::attach
//   if (!bus_result) return fail(bus_result.error());
//   auto mailbox = bus_result->create_mailbox("mailer", {.capacity = 1024});
//
// A Bus is move-only; destroying it detaches this process (its slot is freed)
// but leaves the segments: Bus::remove() deletes them.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shmbus/error.hpp"
#include "shmbus/client.hpp"
#include "shmbus/loan.hpp"
#include "shmbus/mailbox.hpp"
#include "shmbus/registry.hpp"
#include "shmbus/state.hpp"

namespace shmbus {

namespace detail {
class BusCore;
}

struct CreateOptions {
  std::uint32_t max_processes = 256;  // process-table slots, 1 … 1024
  std::uint32_t mode = 0600;          // permissions of every segment of the bus
  bool trusted = false;               // receivers skip the FlatBuffers verifier (never bounds checks)
  std::string label{};                  // this process's name in the table (display only)
  std::uint32_t max_in_flight = 64;   // call slots per process (calls in flight), 1 … 4096
  std::uint32_t max_reply = 1024;     // reply bytes a call slot holds, 0 … 1 MiB (more: loans)
  // Bytes for state values (state.hpp), reserved in /dev/shm at creation.
  std::uint64_t state_capacity = 8u << 20;
  // The blob pool's size classes (loan.hpp), reserved in /dev/shm at creation.
  std::vector<BlobClass> blob_classes = default_blob_classes();
};

struct AttachOptions {
  // How long to wait for a bus that is still being created.
  std::chrono::milliseconds ready_timeout{2000};
  std::string label{};
};

// One row of the process table, as seen at the moment of the call.
struct ProcessInfo {
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  ProcessRef ref;
  int pid = 0;
  std::uint64_t start_time = 0;
  std::string label{};
  bool alive = false;  // the kernel still holds its lock byte
};

class Bus {
 public:
  // Bus::create()
  //
  // Creates the bus's segments exclusively (mode `options.mode`) and attaches
  // this process: the state segment (state_capacity bytes of values), the
  // blob pool (blob_classes), then the control segment — the process table,
  // the service registry and max_processes × max_in_flight call slots of
  // 64 + max_reply bytes. All are reserved in /dev/shm at once (36 MiB with
  // the defaults), so a full /dev/shm fails here, never later. Fails with bad_name,
  // bad_options, bus_exists (the detail
  // names `shmbus gc` when the existing bus was abandoned by a dead creator),
  // permission_denied, too_many_processes or system_error.
  [[nodiscard]] static Result<Bus> create(std::string_view name, CreateOptions options = {});

  // Bus::attach()
  //
  // Maps the named bus and takes a process slot. Waits up to
  // `options.ready_timeout` for a bus still being created. Fails with
  // bad_name, no_such_bus, not_a_segment (also for a segment abandoned by its
  // dead creator: the detail says `shmbus gc` removes it), layout_mismatch
  // (the detail names both versions), permission_denied, size_too_small,
  // too_many_processes or system_error.
  [[nodiscard]] static Result<Bus> attach(std::string_view name, AttachOptions options = {});

  // Bus::remove()
  //
  // Unlinks the bus's segments. Processes that still map them keep working
  // until they detach; new attaches fail with no_such_bus. Fails with
  // bad_name, no_such_bus, permission_denied or system_error.
  [[nodiscard]] static Result<void> remove(std::string_view name);

  // Names of the buses on this host (whatever their state). Fails with
  // system_error when /dev/shm cannot be read.
  [[nodiscard]] static Result<std::vector<std::string>> list();

  // Bus::in_use()
  //
  // True while any process holds a slot of the bus (its lock byte is locked),
  // decided by the kernel. Takes no slot. Fails with bad_name, no_such_bus,
  // not_a_segment, layout_mismatch, permission_denied, size_too_small or
  // system_error.
  [[nodiscard]] static Result<bool> in_use(std::string_view name);

  Bus(Bus&&) noexcept;
  Bus& operator=(Bus&&) noexcept;
  ~Bus();

  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] bool trusted() const noexcept;
  [[nodiscard]] ProcessRef self() const noexcept;

  // Whether the process named by `ref` is still attached and alive: false
  // once it died (also as an unreaped zombie) or detached. Never fails.
  [[nodiscard]] bool is_alive(ProcessRef ref) const noexcept;

  // The table's occupied slots, with liveness. Never fails.
  [[nodiscard]] std::vector<ProcessInfo> processes() const;

  // Bus::reclaim_dead()
  //
  // Frees the slots of dead processes and recycles their call slots (unread
  // replies count as late_replies and caller_gone), releases their state
  // pins, and gives back blob-pool blocks held by dead processes or by
  // records already consumed or skipped (loan.hpp); returns how many process
  // slots this call freed (of two processes reclaiming one dead slot at
  // once, exactly one counts it).
  std::uint32_t reclaim_dead() noexcept;

  // Bus::create_mailbox()
  //
  // Creates a mailbox segment. Fails with bad_name, bad_options (capacity not
  // a power of two in 2 … 2^24, max_record 0 or above 64 MiB), bus_exists (a
  // mailbox of that name exists), permission_denied or system_error.
  [[nodiscard]] Result<Mailbox> create_mailbox(std::string_view name, MailboxOptions options = {});

  // Bus::open_mailbox()
  //
  // Maps an existing mailbox. Fails with bad_name, no_such_mailbox,
  // not_a_segment, layout_mismatch, permission_denied, size_too_small or
  // system_error.
  [[nodiscard]] Result<Mailbox> open_mailbox(std::string_view name);

  // Unlinks a mailbox segment. Fails with bad_name, no_such_mailbox,
  // permission_denied or system_error.
  [[nodiscard]] Result<void> remove_mailbox(std::string_view name);

  // Bus::register_service()
  //
  // Registers a service (registry.hpp) and creates its pool and dead-letter
  // mailboxes; registering the same name with the same schema and options
  // again is a no-op. Servers register on start (server.hpp). Fails with
  // bad_name, bad_options, schema_mismatch, too_many_services,
  // permission_denied or system_error.
  [[nodiscard]] Result<void> register_service(std::string_view name, const ServiceOptions& options);

  // Bus::close_service()
  //
  // Closes a service to new messages: from now on its callers' call(),
  // send_request() and cast() fail with `stopped` (counted in its outcomes),
  // while its servers go on taking what is queued — a launcher closes, then
  // drains, then stops the servers. A send racing with the close is either
  // refused (its claim aborted, counted in sender_aborted) or already
  // claimed when this returns, so the closer's next look at the queue
  // (ServiceInfo::depth, mailboxes.claimed) sees it: drain before counting
  // what is left. One-way and idempotent. Fails with no_such_service.
  [[nodiscard]] Result<void> close_service(std::string_view name);

  // Bus::service()
  //
  // A client handle for calls and casts (client.hpp). Look it up once and
  // reuse it. Fails with no_such_service (not registered yet),
  // no_such_mailbox (a mailbox of the service was removed), not_a_segment,
  // layout_mismatch, permission_denied, size_too_small or system_error.
  [[nodiscard]] Result<Service> service(std::string_view name);

  // Bus::dead_letters()
  //
  // A receiver of the service's dead-letter list: casts that max_deliveries
  // servers died on. Each record is the cast as sent (type cast), with its
  // delivery count in RecordInfo::correlation; done() drops it, and a tool
  // may cast it again to requeue it. Fails with no_such_service,
  // too_many_consumers, not_a_segment, permission_denied or system_error.
  [[nodiscard]] Result<Receiver> dead_letters(std::string_view service);

  // Bus::peek_dead_letters()
  //
  // Copies of up to `max` of the service's dead letters, oldest first,
  // without taking any (Mailbox::peek): RecordInfo::position names each
  // letter, RecordInfo::correlation is its delivery count. A letter a live
  // receiver holds (being requeued or dropped) is marked in_flight. Fails
  // with no_such_service, not_a_segment, permission_denied or system_error.
  [[nodiscard]] Result<std::vector<PeekedRecord>> peek_dead_letters(std::string_view service,
                                                                   std::size_t max);

  // Every registered service: its servers, queue depth, dead letters and
  // counters, as seen at the moment of the call. Never fails.
  [[nodiscard]] std::vector<ServiceInfo> services() const;

  // Bus::state()
  //
  // The bus's state segment (state.hpp): read-only, or writable for a
  // process allowed to write. Fails with permission_denied (the segment's
  // mode does not let this user open it so), no_such_bus (the segment was
  // removed), not_a_segment, layout_mismatch or system_error.
  [[nodiscard]] Result<State> state(StateAccess access = StateAccess::read_only);

  // Bus::loan()
  //
  // Loans a block of at least `bytes` from the blob pool (loan.hpp): the
  // smallest size class that fits. Fails with record_too_large (above the
  // largest class), pool_exhausted (no free block by options.deadline; at
  // once by default) or system_error (the pool segment cannot be mapped).
  [[nodiscard]] Expected<Loan> loan(std::size_t bytes, LoanOptions options = {}) noexcept;

  // Free and held blocks per size class, as seen at the moment of the call.
  // Fails like loan() when the pool cannot be mapped.
  [[nodiscard]] Result<std::vector<BlobClassInfo>> blob_pool() const;

 private:
  friend class Server;
  friend class Readiness;
  friend class State;
  explicit Bus(std::shared_ptr<detail::BusCore> core) noexcept;
  std::shared_ptr<detail::BusCore> core_;
};

}  // namespace shmbus
