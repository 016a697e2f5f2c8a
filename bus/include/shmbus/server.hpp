// -----------------------------------------------------------------------------
// server.hpp — serve a service: one message at a time, GenServer style
// -----------------------------------------------------------------------------
//
//   struct Mailer : shmbus::Handler {
//     void handle_call(const shmbus::Request& request, shmbus::ReplyWriter& reply) override {
//       auto* email = request.root<mailer::SendEmail>();   // already verified
//       reply.assign(build_reply(email));                   // into the caller's slot
//     }
//     void handle_cast(const shmbus::Request& request) override { ... }
//   };
//
//   auto server = shmbus::Server::start(bus, "mailer", options).value();
//   Mailer handler;
//   server.serve(handler);          // until server.stop() (any thread, or a signal handler)
//
// Every server of a service takes from one shared pool mailbox, so an idle
// server takes the next message while a sibling is busy. Before it runs a
// call the server wins the call slot by CAS (layout/calls.hpp): a call whose
// caller gave up is skipped (`expired_skipped`), never run. A server never
// blocks on a caller: the reply goes straight into the caller's call slot.
// If a server dies while running a call, its caller gets server_crashed and
// the call is not run again; if it dies running a cast, the cast is
// redelivered to a sibling (marked, with its delivery count) until
// max_deliveries servers died on it, then it goes to the dead-letter list.
// Handlers must not throw (serve() is noexcept: a throw terminates the
// process, which its callers see as server_crashed).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "shmbus/bus.hpp"
#include "shmbus/layout/calls.hpp"
#include "shmbus/mailbox.hpp"
#include "shmbus/registry.hpp"
#include "shmbus/wait.hpp"

namespace shmbus {

// A received call or cast, valid during the handler. For a service with a
// schema the payload is a private copy that passed the verifier (unless the
// bus is trusted: then it is the ring's bytes, bounds-checked); for an
// untyped service, the ring's bytes.
class Request {
 public:
  [[nodiscard]] std::span<const std::byte> payload() const noexcept { return payload_; }
  [[nodiscard]] const RecordInfo& info() const noexcept { return info_; }
  // The FlatBuffer root, for a service registered with a schema of Root.
  template <class Root>
  [[nodiscard]] const Root* root() const noexcept {
    return flatbuffers::GetRoot<Root>(payload_.data());
  }

 private:
  friend class Server;
  Request(std::span<const std::byte> payload, const RecordInfo& info) noexcept
      : payload_(payload), info_(info) {}
  std::span<const std::byte> payload_;
  const RecordInfo& info_;
};

// Where a call's reply goes: the caller's call slot, written in place.
class ReplyWriter {
 public:
  // The reply area (the bus's max_reply bytes), to build into directly.
  [[nodiscard]] std::span<std::byte> buffer() const noexcept { return area_; }
  // The reply is the first `length` bytes of buffer(). A length above its
  // size makes the call fail with record_too_large at the caller.
  void commit(std::size_t length) noexcept { length_ = length; }
  // Copies `bytes` in and commits them. Fails with record_too_large (and the
  // caller then gets record_too_large).
  Expected<void> assign(std::span<const std::byte> bytes) noexcept;
  // Replies with a loan (loan.hpp), read in place by the caller: for replies
  // larger than the bus's max_reply. Replaces an earlier reply. The block is
  // the caller's once the reply is delivered; if the caller gave up or died,
  // it goes back to the pool.
  void assign(Loan&& loan) noexcept { loan_.emplace(std::move(loan)); }

 private:
  friend class Server;
  explicit ReplyWriter(std::span<std::byte> area) noexcept : area_(area) {}
  std::span<std::byte> area_;
  std::size_t length_ = 0;
  std::optional<Loan> loan_;
};

class Handler {
 public:
  virtual ~Handler() = default;
  virtual void handle_call(const Request& request, ReplyWriter& reply) = 0;
  virtual void handle_cast(const Request& request) = 0;
};

struct ServeOptions {
  WaitMode mode = WaitMode::spin_then_park;  // how an idle server waits
};

class Server {
 public:
  // Server::start()
  //
  // Registers `service` with `options` (or checks the registered one) and
  // joins its pool. Fails with bad_name, bad_options, schema_mismatch (the
  // name is registered with other types or options), too_many_services,
  // too_many_consumers (64 live servers), no_such_mailbox, not_a_segment,
  // layout_mismatch, size_too_small, permission_denied or system_error.
  [[nodiscard]] static Result<Server> start(Bus& bus, std::string_view service,
                                            const ServiceOptions& options);

  // Server::join()
  //
  // Joins the pool of a service registered by someone else — a launcher
  // (`shmbus launch`) registers each service with its configured sizes before
  // spawning the workers — taking the registered options and checking only
  // the types: `schema` must name the registered request and reply types
  // (same hash and identifiers). Fails with no_such_service (not registered),
  // schema_mismatch, and whatever start() fails with.
  [[nodiscard]] static Result<Server> join(Bus& bus, std::string_view service,
                                           const ServiceSchema& schema);

  Server(Server&&) noexcept;
  Server& operator=(Server&&) = delete;
  // Leaves the pool: the message in hand (if any) is finished first.
  ~Server();

  // Runs the receive loop until stop(). Returns stopped.
  Expected<void> serve(Handler& handler, ServeOptions options = {}) noexcept;
  // Handles at most one message, waiting for one until `deadline`: true when
  // one was handled (or skipped, counted), false when none came.
  bool serve_one(Handler& handler, Deadline deadline,
                 WaitMode mode = WaitMode::spin_then_park) noexcept;
  // Asks serve() to return after the message in hand; idle, it notices within
  // kParkRecheckInterval. Thread-safe and async-signal-safe.
  void stop() noexcept;

  [[nodiscard]] const std::string& service() const noexcept;
  // This server's counters (as `shmbus ps` shows them).
  [[nodiscard]] ServerCounters counters() const noexcept;

 private:
  friend class Readiness;
  struct State;
  explicit Server(std::unique_ptr<State> state) noexcept;
  // For Readiness's waiter thread: parks until a message may be waiting
  // (takes nothing), `deadline`, or wake_work_waiters(); true when the loop
  // should look. Idle with nothing queued, it sleeps without a timer.
  [[nodiscard]] bool wait_for_work(Deadline deadline) noexcept;
  void wake_work_waiters() noexcept;
  bool serve_one_keyed(Handler& handler, Deadline deadline, WaitMode mode) noexcept;
  [[nodiscard]] std::optional<Delivery> take_any() noexcept;
  void handle(Handler& handler, Delivery& delivery) noexcept;
  void handle_call(Handler& handler, Delivery& delivery) noexcept;
  void handle_cast(Handler& handler, Delivery& delivery) noexcept;
  void finish_call(layout::CallSlotHeader& slot, layout::ProcessDoorbell& doorbell,
                   std::uint32_t caller, std::uint32_t index, std::uint64_t generation,
                   ReplyWriter& writer) noexcept;
  // Writes `loan` as the reply of the call in `slot` and hands the block to
  // that slot; false when the block cannot be handed over.
  bool stage_loan_reply(layout::CallSlotHeader& slot, std::uint32_t caller, std::uint32_t index,
                        std::uint64_t generation, Loan& loan) noexcept;
  void count_skipped(const RecordInfo& info, std::uint64_t control,
                     std::uint64_t generation) noexcept;
  std::unique_ptr<State> state_;
};

}  // namespace shmbus
