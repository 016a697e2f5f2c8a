// -----------------------------------------------------------------------------
// client.hpp — call and cast a service
// -----------------------------------------------------------------------------
//
//   auto mailer = bus.service("mailer").value();               // look up once, reuse
//   auto reply = mailer.call(request_bytes, {.deadline = shmbus::deadline_in(200ms)});
//   if (!reply) log(shmbus::to_string(reply.error()));        // exactly one outcome, below
//   auto sent = reply->read<mailer::EmailSent>("MALR", scratch);
//
//   auto accepted = mailer.cast(bytes);                         // mailbox_full if no room now
//
//   auto pending = mailer.send_request(bytes, {.deadline = d});  // many in flight
//   ... pending->poll() / pending->wait() / pending->cancel()
//
// A call ends in exactly one of: a Reply, or
//   timeout_not_started  no server began it, and none ever will
//   timeout_in_progress  a server was running it at the deadline (its reply,
//                        if any, is counted in late_replies and dropped)
//   server_crashed       the server running it died; it is not run again
//   bad_message          the request failed verification or is of another
//                        type (the server refused it), or the reply is not
//                        of the service's reply type
//   record_too_large     the request exceeds the service's max_record, or the
//                        reply exceeds the bus's max_reply
//   mailbox_full         no room before the deadline (or at once, fail-now)
//   too_many_in_flight   this process's call slots are all in use
//   bad_options          a key for a service without partitions
//   stopped              the service was closed (Bus::close_service: its
//                        launcher is shutting down); nothing was sent
// The decision between "taken by a server" and "given up at the deadline" is
// one CAS (layout/calls.hpp): both sides know which won.
//
// Thread safety: a Service may be used by many threads at once; a
// PendingCall and a Reply belong to one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "shmbus/error.hpp"
#include "shmbus/loan.hpp"
#include "shmbus/message.hpp"
#include "shmbus/registry.hpp"
#include "shmbus/wait.hpp"

namespace shmbus {

namespace detail {
class BusCore;
class ServiceLink;
}  // namespace detail

struct CallOptions {
  Deadline deadline = Deadline::max();  // absolute CLOCK_MONOTONIC; the call ends by then
  WaitMode mode = WaitMode::spin_then_park;
  // Messages with the same key run on one server at a time, in the order
  // sent (the service must have partitions; else bad_options).
  std::optional<std::uint64_t> key{};
  // How long sending may wait for room in the mailbox; unset: until `deadline`.
  std::optional<Deadline> room_deadline{};
};

struct CastOptions {
  // Wait for room until this deadline; the default (min) fails at once with
  // mailbox_full when the mailbox has no room.
  Deadline deadline = Deadline::min();
  WaitMode mode = WaitMode::spin_then_park;
  std::optional<std::uint64_t> key{};  // as CallOptions::key
};

// A reply, read in place from the caller's call slot (or, for a loaned
// reply, from the blob pool block the server wrote), which it holds until it
// is destroyed. Move-only.
class Reply {
 public:
  Reply(Reply&& other) noexcept;
  Reply& operator=(Reply&& other) noexcept;
  ~Reply();

  [[nodiscard]] std::span<const std::byte> payload() const noexcept { return payload_; }
  // Whether the server replied with a loan (ReplyWriter::assign(Loan&&)).
  [[nodiscard]] bool loaned() const noexcept { return loan_control_ != 0; }

  // Copies the reply into `scratch` and verifies it (unless the bus is
  // trusted). Fails with bad_message.
  template <class Root>
  [[nodiscard]] Expected<const Root*> read(const char* file_identifier,
                                           MessageBuffer& scratch) const noexcept {
    return read_message<Root>(payload_, file_identifier, trusted_, scratch);
  }

 private:
  friend class PendingCall;
  Reply(std::shared_ptr<detail::ServiceLink> link, std::uint32_t index, std::uint64_t generation,
        std::span<const std::byte> payload, std::uint32_t loan_block = 0,
        std::uint64_t loan_control = 0) noexcept;
  // Frees the call slot, then the reply's block (layout/blobs.hpp order).
  void release() noexcept;
  std::shared_ptr<detail::ServiceLink> link_;
  std::uint32_t index_ = 0;
  std::uint64_t generation_ = 0;
  std::span<const std::byte> payload_;
  bool trusted_ = false;
  std::uint32_t loan_block_ = 0;
  std::uint64_t loan_control_ = 0;  // the block's word when resolved; 0: not a loan
};

// A call in flight. Destroying it before an outcome cancels it (as cancel()).
class PendingCall {
 public:
  PendingCall(PendingCall&& other) noexcept;
  PendingCall& operator=(PendingCall&& other) noexcept;
  ~PendingCall();

  // The outcome if there is one now, else `empty`; at or after the deadline
  // it gives the call up (as cancel()). Once an outcome has been returned,
  // further calls return it again for errors; a Reply is handed out once,
  // and poll/wait/cancel return `empty` after it. Learns of a dead server at most kParkRecheckInterval
  // after the previous check (one system call per interval, not per poll).
  [[nodiscard]] Expected<Reply> poll() noexcept;
  // Waits for the outcome until the call's deadline (then timeout_not_started
  // or timeout_in_progress, returned at the deadline, not later). While a
  // server runs the call, its liveness is checked every kParkRecheckInterval:
  // its death ends the call in server_crashed then, not at the deadline.
  [[nodiscard]] Expected<Reply> wait() noexcept;
  // Gives up now: timeout_not_started if no server has taken the call (it
  // never will), timeout_in_progress if one runs it, or the outcome that came
  // first. A call given up is counted under that outcome in the service's
  // outcomes, like a deadline.
  [[nodiscard]] Expected<Reply> cancel() noexcept;

  [[nodiscard]] Deadline deadline() const noexcept { return deadline_; }

 private:
  friend class Service;
  PendingCall(std::shared_ptr<detail::ServiceLink> link, std::uint32_t index,
              std::uint64_t generation, CallOptions options) noexcept;
  // One look at the slot: an outcome, or `empty`. `give_up` CASes the
  // undecided call away; `check_taker` asks the kernel whether its server lives.
  Expected<Reply> step(bool give_up, bool check_taker) noexcept;
  Expected<Reply> collect_reply() noexcept;
  Expected<Reply> collect_loaned_reply() noexcept;
  // CASes our slot word from `control` to `to`; false (and `control` updated)
  // when a server changed it first.
  bool leave_slot(std::uint64_t& control, std::uint64_t to) noexcept;
  Expected<Reply> finish(Errc outcome, bool free_slot) noexcept;
  std::shared_ptr<detail::ServiceLink> link_;
  std::uint32_t index_ = 0;
  std::uint64_t generation_ = 0;
  Deadline deadline_{};
  WaitMode mode_ = WaitMode::spin_then_park;
  bool finished_ = false;
  Errc outcome_ = Errc::empty;
  Deadline next_taker_check_{};  // poll() asks the kernel at most once per interval
};

// A client's handle to one service. Cheap to copy.
class Service {
 public:
  // call()
  //
  // send_request + wait. Fails with the outcomes listed at the top.
  [[nodiscard]] Expected<Reply> call(std::span<const std::byte> request,
                                     CallOptions options = {}) noexcept;

  // send_request()
  //
  // Starts a call without waiting for its reply. Fails before sending with
  // too_many_in_flight, record_too_large, bad_message (not of the service's
  // request type), bad_options (a key, and the service has no partitions) or
  // mailbox_full (no room by options.room_deadline, default the call's
  // deadline; an event loop that must not block sets it to now).
  // A call abandoned at its deadline keeps its slot until its server
  // finishes: a stuck server can use up the slots (too_many_in_flight).
  [[nodiscard]] Expected<PendingCall> send_request(std::span<const std::byte> request,
                                                   CallOptions options = {}) noexcept;

  // cast()
  //
  // Accepted into the mailbox, or refused: mailbox_full (no room by
  // options.deadline; at once by default), record_too_large, bad_message,
  // bad_options (a key, and the service has no partitions), stopped (the
  // service was closed: Bus::close_service).
  // An accepted cast is delivered, at least once (redelivered, marked, if a
  // server dies running it; dead-lettered after max_deliveries).
  [[nodiscard]] Expected<void> cast(std::span<const std::byte> message,
                                    CastOptions options = {}) noexcept;

  // The same three with a loan (loan.hpp) as the payload: the ring carries a
  // 32-byte ref, the server reads the block in place. On success the block
  // is the message's (the Loan is left empty); on failure the Loan is
  // untouched and still yours. Fail as above, and with bad_ref if the Loan
  // is empty (moved from or sent).
  [[nodiscard]] Expected<Reply> call(Loan&& request, CallOptions options = {}) noexcept;
  [[nodiscard]] Expected<PendingCall> send_request(Loan&& request, CallOptions options = {}) noexcept;
  [[nodiscard]] Expected<void> cast(Loan&& message, CastOptions options = {}) noexcept;

  [[nodiscard]] const std::string& name() const noexcept;
  // Records queued in the pool and partition mailboxes (a snapshot while
  // others send).
  [[nodiscard]] std::uint64_t depth() const noexcept;

 private:
  friend class Bus;
  explicit Service(std::shared_ptr<detail::ServiceLink> link) noexcept : link_(std::move(link)) {}
  // The one send path of calls and casts: copies `bytes` in, or sends `loan`
  // by ref when it is not null.
  Expected<PendingCall> start_call(std::span<const std::byte> bytes, Loan* loan,
                                   const CallOptions& options) noexcept;
  Expected<void> send_cast(std::span<const std::byte> bytes, Loan* loan,
                           const CastOptions& options) noexcept;
  std::shared_ptr<detail::ServiceLink> link_;
};

}  // namespace shmbus
