// -----------------------------------------------------------------------------
// mailbox.hpp — send records into a mailbox ring, receive them one at a time
// -----------------------------------------------------------------------------
//
// A mailbox is a lock-free ring of records in shared memory
// (layout/ring.hpp). Many producers send into it; one consumer (mpsc: a
// server's own mailbox) or many (mpmc: a pool's shared mailbox, so any idle
// server takes the next record) receive from it.
//
//   // producer: zero-copy claim, or send() to copy a buffer in
//   auto claim = mailbox.try_claim(builder.GetSize());
//   if (!claim) return claim.error();            // mailbox_full, record_too_large
//   std::memcpy(claim->payload().data(), builder.GetBufferPointer(), builder.GetSize());
//   claim->commit();
//
//   // consumer
//   auto receiver = mailbox.receiver().value();
//   auto delivery = receiver.receive(shmbus::deadline_in(1s), shmbus::WaitMode::park);
//   if (delivery) handle(delivery->payload());   // done() when `delivery` goes away
//
// Guarantees: a record is accepted (commit returned) or refused with an error,
// never dropped or overwritten. Records of one sending handle arrive in the
// order sent, except those marked redelivered. A record whose consumer dies
// while holding it is delivered again to a live consumer, marked redelivered.
// A claim whose producer dies before commit is skipped and counted
// (sender_aborted) — that producer was never told "accepted".
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shmbus/error.hpp"
#include "shmbus/layout/ring.hpp"
#include "shmbus/wait.hpp"

namespace shmbus {

namespace detail {
class BusCore;
class Ring;
struct MailboxAccess;  // tests/support/ring_access.hpp
struct MailboxFactory;
class BlobPool;       // checks a loan's record, writes a loan's claim
}  // namespace detail

// A process of a bus: table slot and the low bits of its generation (never 0).
struct ProcessRef {
  std::uint32_t value = 0;
  friend bool operator==(ProcessRef, ProcessRef) = default;
};

struct MailboxOptions {
  layout::RingKind kind = layout::RingKind::mpsc;
  std::uint32_t capacity = 1024;    // records; a power of two, 2 … 2^24
  std::uint32_t max_record = 4096;  // payload bytes per record, 1 … 64 MiB
};

// Counters of one mailbox, read without a lock. Taken together they are a
// snapshot only while nobody sends or receives. Each is added right after the
// step it counts: a process killed between the two leaves that counter one
// short (layout/ring.hpp, "Crash"); records themselves are never lost.
struct MailboxCounters {
  std::uint64_t claimed = 0;         // positions handed to producers (tail)
  std::uint64_t consumed = 0;        // records done by consumers
  std::uint64_t sender_aborted = 0;  // claims skipped: producer died or aborted
  std::uint64_t redelivered = 0;     // records taken over from a dead consumer
  std::uint64_t bad_messages = 0;    // torn or forged cells, payloads failing verification
  std::uint64_t full_refusals = 0;   // sends refused with mailbox_full
  std::uint64_t consumer_wake_calls = 0;  // futex wakes made by producers
  std::uint64_t producer_wake_calls = 0;  // futex wakes made by consumers
};

// What the ring says about a received record.
struct RecordInfo {
  std::uint64_t position = 0;
  std::uint32_t sequence = 0;     // per sending handle, from 0
  ProcessRef sender;
  std::uint16_t type = 0;
  std::uint8_t deliveries = 1;    // 1 on first delivery
  bool redelivered = false;       // a consumer died holding it before
  std::uint64_t correlation = 0;
  // The payload is a loan (loan.hpp), read in place from the blob pool; if
  // its ref does not resolve, payload() is empty and ref_error says why
  // (stale_ref, bad_ref, or system_error: the pool cannot be mapped).
  bool loaned = false;
  Errc ref_error = Errc{};
};

// A copy of a record still in a mailbox (Mailbox::peek): taken by nobody.
struct PeekedRecord {
  // As a receiver would see it now; `position` names the record in the ring.
  // For a loan, ref_error says why the block could not be read (then
  // `payload` is empty).
  RecordInfo info;
  // A live consumer holds it right now (it may be done at any moment); a
  // record held by a dead consumer is not in flight: it will be redelivered.
  bool in_flight = false;
  std::vector<std::byte> payload;  // the payload's bytes (a loan's: the block's)
};

struct SendOptions {
  std::uint16_t type = 0;
  std::uint64_t correlation = 0;
};

class Mailbox;
class MessageBuffer;  // message.hpp

// A claimed record: write the payload in place, then commit() or abort().
// Destroying an uncommitted Claim aborts it. Move-only.
class Claim {
 public:
  // The ring position this claim holds (a loan's location names it).
  [[nodiscard]] std::uint64_t position() const noexcept { return position_; }

  Claim(Claim&& other) noexcept;
  Claim& operator=(Claim&& other) noexcept;
  ~Claim();

  // The writable payload area: exactly the size asked for in claim.
  [[nodiscard]] std::span<std::byte> payload() const noexcept { return payload_; }
  void set_type(std::uint16_t type) noexcept;
  void set_correlation(std::uint64_t correlation) noexcept;

  // Publishes the record with `length` bytes (default: the claimed size,
  // never more). After this the record is accepted: it will be delivered.
  void commit() noexcept;
  void commit(std::size_t length) noexcept;
  // Gives the cell back; the consumer skips it and counts sender_aborted.
  void abort() noexcept;

 private:
  friend class Mailbox;
  friend class detail::BlobPool;
  Claim(detail::Ring* ring, std::uint64_t position, std::span<std::byte> payload) noexcept;
  detail::Ring* ring_ = nullptr;
  std::uint64_t position_ = 0;
  std::span<std::byte> payload_;
};

class Receiver;

// A received record, held by its receiver until done() (or destruction).
class Delivery {
 public:
  Delivery(Delivery&& other) noexcept;
  Delivery& operator=(Delivery&& other) noexcept;
  ~Delivery();

  // The payload, in the ring. Another process wrote it: bounds are checked,
  // the content is not (see message.hpp for verified reads).
  [[nodiscard]] std::span<const std::byte> payload() const noexcept { return payload_; }
  [[nodiscard]] const RecordInfo& info() const noexcept { return info_; }

  // Releases the cell. The record is consumed; the producer's slot is free;
  // a loan's block goes back to the pool.
  void done() noexcept;

  // Reads the payload as a FlatBuffer of type Root (message.hpp): copied into
  // `scratch` first, then verified unless the bus is trusted.
  template <class Root>
  [[nodiscard]] Expected<const Root*> read(const char* file_identifier,
                                           MessageBuffer& scratch) const noexcept;
  // Whether the bus was created trusted (receivers skip the verifier).
  [[nodiscard]] bool trusted() const noexcept;
  // Counts a payload that failed verification in the mailbox's bad_messages.
  void count_bad_message() const noexcept;

 private:
  friend class Receiver;
  friend class detail::BlobPool;
  friend struct detail::MailboxAccess;
  Delivery(Receiver* receiver, std::span<const std::byte> payload, RecordInfo info,
           std::uint32_t loan_block = 0, std::uint64_t loan_control = 0) noexcept;
  Receiver* receiver_ = nullptr;
  std::span<const std::byte> payload_;
  RecordInfo info_;
  std::uint32_t loan_block_ = 0;
  std::uint64_t loan_generation_ = 0;  // the ref's, also when it did not resolve
  std::uint64_t loan_control_ = 0;  // the block's word when resolved; 0: no loan to free
};

// The consuming side of a mailbox: an entry in the ring's consumer table.
// One record at a time (GenServer rule): receive again only after done().
// Move-only; destroying it frees the entry.
class Receiver {
 public:
  Receiver(Receiver&& other) noexcept;
  Receiver& operator=(Receiver&& other) = delete;
  ~Receiver();

  // Takes the next record if one is ready. Fails with `empty`. Records left
  // by dead producers (sender_aborted) and torn cells (bad_messages) are
  // skipped and counted on the way; records held by dead consumers are
  // taken over and returned marked redelivered.
  [[nodiscard]] Expected<Delivery> try_receive() noexcept;

  // Waits until a record is ready or `deadline` passes (then `empty`).
  [[nodiscard]] Expected<Delivery> receive(Deadline deadline,
                                           WaitMode mode = WaitMode::spin_then_park) noexcept;

  // Takes over one record held by a dead consumer, if there is one, else
  // takes the head record, skipping a claim whose producer died. Receiving
  // does this on its own once per kParkRecheckInterval, busy or idle; public
  // for supervisors that know a process died. Fails with `empty`.
  [[nodiscard]] Expected<Delivery> recover() noexcept;

  // Whether a record seems ready at the head (a snapshot; takes nothing).
  [[nodiscard]] bool ready() const noexcept;
  // Parks until a record may be ready, a wake_waiters() call, or `deadline`
  // (Deadline::max(): no timeout). Takes nothing; returns on spurious wakes
  // too. For a thread that tells an event loop when to receive (readiness.hpp).
  void wait_until_ready(Deadline deadline) noexcept;
  // Wakes every thread parked on this mailbox's data futex.
  void wake_waiters() noexcept;

 private:
  friend class Mailbox;
  friend class Delivery;
  Receiver(std::shared_ptr<detail::BusCore> core, std::shared_ptr<detail::Ring> ring,
           std::uint32_t entry, std::uint32_t inherited) noexcept;
  Delivery make_delivery(std::uint64_t position) noexcept;
  void finish(std::uint64_t position, std::uint32_t loan_block, std::uint64_t loan_control) noexcept;

  std::shared_ptr<detail::BusCore> core_;
  std::shared_ptr<detail::Ring> ring_;
  std::uint32_t entry_ = 0;
  std::uint32_t inherited_ = 0;  // dead consumer whose entry we took; its record comes first
  bool trusted_ = false;
  bool holding_ = false;
  std::uint32_t polls_ = 0;
  Deadline next_recovery_{};
};

// A handle to one mailbox of an attached bus. Cheap to move; many threads of
// one process may send through one handle at once (records of one handle are
// ordered per thread).
class Mailbox {
 public:
  Mailbox(Mailbox&&) noexcept;
  Mailbox& operator=(Mailbox&&) noexcept;
  ~Mailbox();

  // Mailbox::try_claim()
  //
  // Claims a cell for a record of `bytes` (0 allowed). Fails with
  // record_too_large (bytes > max_record) or mailbox_full. Never blocks.
  [[nodiscard]] Expected<Claim> try_claim(std::size_t bytes) noexcept;

  // Mailbox::claim()
  //
  // As try_claim, but waits for room until `deadline`; then mailbox_full.
  [[nodiscard]] Expected<Claim> claim(std::size_t bytes, Deadline deadline,
                                      WaitMode mode = WaitMode::spin_then_park) noexcept;

  // Copies `payload` into a claimed record and commits it. Fails like
  // try_claim / claim.
  [[nodiscard]] Expected<void> try_send(std::span<const std::byte> payload,
                                        SendOptions options = {}) noexcept;
  [[nodiscard]] Expected<void> send(std::span<const std::byte> payload, Deadline deadline,
                                    SendOptions options = {},
                                    WaitMode mode = WaitMode::spin_then_park) noexcept;

  // Mailbox::receiver()
  //
  // Registers a consumer. Fails with too_many_consumers (mpsc: another live
  // consumer holds the mailbox; mpmc: 64 live consumers). Entries of dead
  // consumers are reclaimed first, and a record a dead consumer held is
  // returned by the new receiver's first receive, marked redelivered.
  [[nodiscard]] Result<Receiver> receiver();

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] std::uint32_t capacity() const noexcept;
  [[nodiscard]] std::uint32_t max_record() const noexcept;
  [[nodiscard]] layout::RingKind kind() const noexcept;
  // Records claimed and not yet consumed. Exact only while nobody sends or
  // receives; otherwise a snapshot between the two.
  [[nodiscard]] std::uint64_t depth() const noexcept;
  [[nodiscard]] MailboxCounters counters() const noexcept;

  // Mailbox::peek()
  //
  // Copies of up to `max` records in the mailbox, oldest first: those waiting
  // and those a consumer holds. Takes nothing and changes nothing in the
  // mailbox (its only writes add 0), so a process killed while peeking
  // changes nothing. A snapshot: a record consumed while the scan runs is
  // left out, one sent meanwhile may be in it. Each copy is checked after it
  // was made (the cell still holds the same record, a loan's block the same
  // word: seqlock-style), so a copy is never torn; a torn or
  // forged cell is left out. Never fails (allocates: a tool's call, not for
  // hot paths).
  [[nodiscard]] std::vector<PeekedRecord> peek(std::size_t max) const;

 private:
  friend class Bus;
  friend struct detail::MailboxAccess;
  friend struct detail::MailboxFactory;
  friend class detail::BlobPool;
  Mailbox(std::shared_ptr<detail::BusCore> core, std::shared_ptr<detail::Ring> ring,
          std::string name) noexcept;
  Claim make_claim(std::uint64_t position, std::size_t bytes) noexcept;
  static void fill_and_commit(Claim& claimed, std::span<const std::byte> payload,
                              SendOptions options) noexcept;
  std::shared_ptr<detail::BusCore> core_;
  std::shared_ptr<detail::Ring> ring_;
  std::string name_;
};

}  // namespace shmbus
