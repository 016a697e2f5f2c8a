#include "shmbus/mailbox.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

#include "blobs/blob_pool.hpp"
#include "bus/bus_core.hpp"
#include "ring/ring.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/detail/enforce.hpp"
#include "shmbus/detail/test_hook.hpp"
#include "wait/futex.hpp"

namespace shmbus {

using detail::Ring;

namespace {
// Every this many receive attempts a receiver reads the clock, and once per
// kParkRecheckInterval it looks for dead producers and consumers — also under
// steady traffic, when it never parks for a whole interval.
constexpr std::uint32_t kPollsPerClockCheck = 64;
}  // namespace

// ---- Claim ---------------------------------------------------------------------------------

Claim::Claim(detail::Ring* ring, std::uint64_t position, std::span<std::byte> payload) noexcept
    : ring_(ring), position_(position), payload_(payload) {}

Claim::Claim(Claim&& other) noexcept
    : ring_(std::exchange(other.ring_, nullptr)), position_(other.position_), payload_(other.payload_) {}

Claim& Claim::operator=(Claim&& other) noexcept {
  if (this != &other) {
    abort();
    ring_ = std::exchange(other.ring_, nullptr);
    position_ = other.position_;
    payload_ = other.payload_;
  }
  return *this;
}

Claim::~Claim() { abort(); }

void Claim::set_type(std::uint16_t type) noexcept { ring_->cell(position_).type = type; }
void Claim::set_correlation(std::uint64_t correlation) noexcept {
  ring_->cell(position_).correlation = correlation;
}

void Claim::commit() noexcept { commit(payload_.size()); }

void Claim::commit(std::size_t length) noexcept {
  SHMBUS_ENFORCE(ring_ != nullptr, "commit of a finished claim");
  SHMBUS_ENFORCE(length <= payload_.size(), "commit longer than the claim");
  std::exchange(ring_, nullptr)->commit(position_, static_cast<std::uint32_t>(length));
}

void Claim::abort() noexcept {
  if (ring_ != nullptr) std::exchange(ring_, nullptr)->abort(position_);
}

// ---- Delivery ------------------------------------------------------------------------------

Delivery::Delivery(Receiver* receiver, std::span<const std::byte> payload, RecordInfo info,
                   std::uint32_t loan_block, std::uint64_t loan_control) noexcept
    : receiver_(receiver),
      payload_(payload),
      info_(info),
      loan_block_(loan_block),
      loan_control_(loan_control) {}

Delivery::Delivery(Delivery&& other) noexcept
    : receiver_(std::exchange(other.receiver_, nullptr)),
      payload_(other.payload_),
      info_(other.info_),
      loan_block_(other.loan_block_),
      loan_generation_(other.loan_generation_),
      loan_control_(other.loan_control_) {}

Delivery& Delivery::operator=(Delivery&& other) noexcept {
  if (this != &other) {
    done();
    receiver_ = std::exchange(other.receiver_, nullptr);
    payload_ = other.payload_;
    info_ = other.info_;
    loan_block_ = other.loan_block_;
    loan_generation_ = other.loan_generation_;
    loan_control_ = other.loan_control_;
  }
  return *this;
}

Delivery::~Delivery() { done(); }

void Delivery::done() noexcept {
  if (receiver_ != nullptr) {
    std::exchange(receiver_, nullptr)->finish(info_.position, loan_block_, loan_control_);
  }
}

bool Delivery::trusted() const noexcept { return receiver_ != nullptr && receiver_->trusted_; }

void Delivery::count_bad_message() const noexcept {
  if (receiver_ == nullptr) return;
  detail::fetch_add(receiver_->ring_->header().counters.bad_messages, std::uint64_t{1},
                    std::memory_order_relaxed);
}

// ---- Receiver ------------------------------------------------------------------------------

Receiver::Receiver(std::shared_ptr<detail::BusCore> core, std::shared_ptr<detail::Ring> ring,
                   std::uint32_t entry, std::uint32_t inherited) noexcept
    : core_(std::move(core)),
      ring_(std::move(ring)),
      entry_(entry),
      inherited_(inherited),
      trusted_(core_->trusted()) {}

Receiver::Receiver(Receiver&& other) noexcept
    // A Delivery points at its Receiver: moving one that holds a record would
    // leave that pointer dangling.
    : core_(std::move(other.core_)),
      ring_(std::move(other.ring_)),
      entry_(other.entry_),
      inherited_(other.inherited_),
      trusted_(other.trusted_),
      holding_(other.holding_),
      polls_(other.polls_),
      next_recovery_(other.next_recovery_) {
  SHMBUS_ENFORCE(!holding_, "a Receiver moved while a Delivery of it lives");
}

Receiver::~Receiver() {
  SHMBUS_ENFORCE(!holding_, "a Receiver destroyed while a Delivery of it lives");
  if (ring_) ring_->unregister_consumer(entry_, /*holds_undelivered=*/inherited_ != 0);
}

Delivery Receiver::make_delivery(std::uint64_t position) noexcept {
  const layout::CellHeader& cell = ring_->cell(position);
  RecordInfo info;
  info.position = position;
  info.sequence = cell.sequence;
  info.sender = ProcessRef{cell.sender};
  info.type = cell.type;
  info.deliveries = cell.deliveries;
  info.redelivered = (cell.flags & layout::kRecordRedelivered) != 0;
  info.correlation = cell.correlation;
  holding_ = true;
  // try_take and take_over checked length <= max_record, but another process
  // may write the word again since: read it once, and never past the cell.
  const std::uint32_t length = std::min(detail::load_relaxed(cell.length), ring_->max_record());
  if ((cell.flags & layout::kRecordLoan) == 0) {
    return Delivery(this, {ring_->payload(position), length}, info);
  }
  // A loan: the cell holds a LoanRecord naming the block, read in place.
  info.loaned = true;
  layout::LoanRecord ref{};
  if (length != sizeof ref) {
    info.ref_error = Errc::bad_ref;
    return Delivery(this, {}, info);
  }
  std::memcpy(&ref, ring_->payload(position), sizeof ref);
  auto pool = core_->blobs();
  if (!pool) {
    info.ref_error = Errc::system_error;
    return Delivery(this, {}, info);
  }
  const detail::ResolvedLoan resolved =
      (*pool)->resolve(ref, layout::record_location(ref.home >> 8, ref.home & 0xff, position));
  info.ref_error = resolved.error;
  Delivery delivery(this, resolved.payload, info, ref.block, resolved.control);
  delivery.loan_generation_ = ref.generation;
  return delivery;
}

void Receiver::finish(std::uint64_t position, std::uint32_t loan_block,
                      std::uint64_t loan_control) noexcept {
  if (loan_control != 0) {
    if (auto pool = core_->blobs()) (*pool)->record_releasing(loan_block);
  }
  ring_->release(entry_, position);
  holding_ = false;
  // After the release (layout/blobs.hpp): killed in between, the reaper
  // finds the record gone and frees the block.
  if (loan_control != 0) {
    SHMBUS_TEST_HOOK(receiver_before_loan_free);
    if (auto pool = core_->blobs()) (*pool)->release_word(loan_block, loan_control);
  }
}

Expected<Delivery> Receiver::try_receive() noexcept {
  SHMBUS_ENFORCE(!holding_, "receive while holding a record: call done() first");
  if (inherited_ != 0) {  // our entry came from a dead consumer: its record first
    inherited_ = 0;
    const std::uint64_t held = detail::load_acquire(ring_->header().consumers[entry_].held);
    if (ring_->take_over(entry_, held)) return make_delivery(held - 1);
  }
  if (++polls_ % kPollsPerClockCheck == 0) {
    const Deadline now = Clock::now();
    if (now >= next_recovery_) {
      next_recovery_ = now + kParkRecheckInterval;
      return recover();
    }
  }
  std::uint64_t position = 0;
  if (ring_->try_take(entry_, /*check_dead=*/false, position) == Ring::Take::taken) {
    return make_delivery(position);
  }
  return tl::unexpected(Errc::empty);
}

Expected<Delivery> Receiver::recover() noexcept {
  SHMBUS_ENFORCE(!holding_, "recover while holding a record: call done() first");
  if (auto position = ring_->recover_one(entry_)) return make_delivery(*position);
  std::uint64_t position = 0;
  if (ring_->try_take(entry_, /*check_dead=*/true, position) == Ring::Take::taken) {
    return make_delivery(position);
  }
  return tl::unexpected(Errc::empty);
}

Expected<Delivery> Receiver::receive(Deadline deadline, WaitMode mode) noexcept {
  for (std::uint32_t empty_polls = 0;;) {
    if (auto delivery = try_receive(); delivery) return delivery;
    // Busy polling reads the clock once per kPollsPerClockCheck empty polls,
    // so the record that ends a wait is not delayed by a clock read.
    if (mode == WaitMode::busy_poll && ++empty_polls % kPollsPerClockCheck != 0) {
      detail::cpu_relax();
      continue;
    }
    const Deadline now = Clock::now();
    if (now >= deadline) return tl::unexpected(Errc::empty);
    if (mode == WaitMode::busy_poll) {
      detail::cpu_relax();
      continue;
    }
    if (mode == WaitMode::spin_then_park) {
      if (detail::spin_until([this] { return ring_->data_ready(); })) continue;
    }
    const Deadline recheck_at = std::min(deadline, now + kParkRecheckInterval);
    ring_->wait_for_data(entry_, recheck_at);
    if (Clock::now() >= recheck_at) {
      // Nothing woke us for a whole interval: look for dead producers and consumers.
      next_recovery_ = recheck_at + kParkRecheckInterval;
      if (auto recovered = recover(); recovered) return recovered;
    }
  }
}

bool Receiver::ready() const noexcept { return ring_->data_ready(); }

void Receiver::wait_until_ready(Deadline deadline) noexcept {
  if (!ring_->data_ready()) ring_->wait_for_data(entry_, deadline);
}

void Receiver::wake_waiters() noexcept {
  auto& data = ring_->header().data;
  detail::ring_all(data.seq);
}

// ---- Mailbox -------------------------------------------------------------------------------

Mailbox::Mailbox(std::shared_ptr<detail::BusCore> core, std::shared_ptr<detail::Ring> ring,
                 std::string name) noexcept
    : core_(std::move(core)), ring_(std::move(ring)), name_(std::move(name)) {}
Mailbox::Mailbox(Mailbox&&) noexcept = default;
Mailbox& Mailbox::operator=(Mailbox&&) noexcept = default;
Mailbox::~Mailbox() = default;

Expected<Claim> Mailbox::try_claim(std::size_t bytes) noexcept {
  if (bytes > ring_->max_record()) return tl::unexpected(Errc::record_too_large);
  auto position = ring_->try_claim(static_cast<std::uint32_t>(bytes));
  if (!position) {
    if (position.error() == Errc::mailbox_full) ring_->count_full_refusal();
    return tl::unexpected(position.error());
  }
  return make_claim(*position, bytes);
}

Claim Mailbox::make_claim(std::uint64_t position, std::size_t bytes) noexcept {
  layout::CellHeader& cell = ring_->cell(position);
  cell.sequence = ring_->next_sequence();
  cell.type = 0;
  cell.correlation = 0;
  return Claim(ring_.get(), position, {ring_->payload(position), bytes});
}

Expected<Claim> Mailbox::claim(std::size_t bytes, Deadline deadline, WaitMode mode) noexcept {
  if (bytes > ring_->max_record()) return tl::unexpected(Errc::record_too_large);
  for (;;) {
    auto position = ring_->try_claim(static_cast<std::uint32_t>(bytes));
    if (position) return make_claim(*position, bytes);
    const Deadline now = Clock::now();
    if (now >= deadline) {
      ring_->count_full_refusal();
      return tl::unexpected(Errc::mailbox_full);
    }
    ring_->wait_for_room(std::min(deadline, now + kParkRecheckInterval), mode);
  }
}

Expected<void> Mailbox::try_send(std::span<const std::byte> payload, SendOptions options) noexcept {
  auto claimed = try_claim(payload.size());
  if (!claimed) return tl::unexpected(claimed.error());
  fill_and_commit(*claimed, payload, options);
  return {};
}

void Mailbox::fill_and_commit(Claim& claimed, std::span<const std::byte> payload,
                              SendOptions options) noexcept {
  if (!payload.empty()) std::memcpy(claimed.payload().data(), payload.data(), payload.size());
  claimed.set_type(options.type);
  claimed.set_correlation(options.correlation);
  claimed.commit();
}

Expected<void> Mailbox::send(std::span<const std::byte> payload, Deadline deadline,
                             SendOptions options, WaitMode mode) noexcept {
  auto claimed = claim(payload.size(), deadline, mode);
  if (!claimed) return tl::unexpected(claimed.error());
  fill_and_commit(*claimed, payload, options);
  return {};
}

Result<Receiver> Mailbox::receiver() {
  std::uint32_t inherited = 0;
  auto entry = ring_->register_consumer(inherited);
  if (!entry) return tl::unexpected(entry.error());
  return Receiver(core_, ring_, *entry, inherited);
}

std::uint32_t Mailbox::capacity() const noexcept { return ring_->capacity(); }
std::uint32_t Mailbox::max_record() const noexcept { return ring_->max_record(); }
layout::RingKind Mailbox::kind() const noexcept { return ring_->kind(); }
std::uint64_t Mailbox::depth() const noexcept { return ring_->depth(); }
MailboxCounters Mailbox::counters() const noexcept { return ring_->counters(); }

}  // namespace shmbus
