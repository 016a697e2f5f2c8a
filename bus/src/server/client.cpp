// client.cpp — the caller's side of layout/calls.hpp: send a request, then
// decide the outcome from the call slot, racing the server by CAS only.
#include "shmbus/client.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

#include "bus/mailbox_factory.hpp"
#include "blobs/blob_pool.hpp"
#include "server/service_link.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/detail/test_hook.hpp"
#include "wait/futex.hpp"

namespace shmbus {

using namespace detail;  // the shared-word helpers of detail/atomic.hpp
using detail::CallTicket;
using detail::ServiceLink;
using layout::CallState;

namespace detail {

Result<std::shared_ptr<ServiceLink>> ServiceLink::open(std::shared_ptr<BusCore> core,
                                                       std::string_view name) {
  auto index = core->registry().find(name);
  if (!index) {
    return fail(Errc::no_such_service,
                "no service '" + std::string(name) + "' on bus '" + core->name() + "'");
  }
  auto pool = MailboxFactory::open(core, pool_shm_name(*core, name), std::string(name) + "~pool");
  if (!pool) return tl::unexpected(pool.error());
  auto link = std::make_shared<ServiceLink>(core, *index, std::string(name), std::move(*pool));
  std::memcpy(link->request_identifier.data(),
              core->registry().entry(*index).identity.request_identifier, 4);
  std::memcpy(link->reply_identifier.data(),
              core->registry().entry(*index).identity.reply_identifier, 4);
  link->trusted = core->trusted();
  const std::uint32_t partitions =
      std::min(load_relaxed(core->registry().entry(*index).identity.partitions), layout::kMaxPartitions);
  for (std::uint32_t p = 0; p < partitions; ++p) {
    auto partition = MailboxFactory::open(core, partition_shm_name(*core, name, p),
                                          std::string(name) + "~k" + std::to_string(p));
    if (!partition) return tl::unexpected(partition.error());
    link->partitions.push_back(std::move(*partition));
  }
  return link;
}

Expected<Mailbox*> ServiceLink::route(const std::optional<std::uint64_t>& key) noexcept {
  // Refused before anything is claimed; a send that passes this check just
  // before the close asks again after its claim (closed()).
  if (closed()) return tl::unexpected(Errc::stopped);
  if (!key) return &pool;
  if (partitions.empty()) return tl::unexpected(Errc::bad_options);
  // splitmix64's finalizer: nearby keys land on different partitions.
  std::uint64_t h = *key + 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return &partitions[h & (partitions.size() - 1)];
}

void ServiceLink::ring_doorbell() const noexcept {
  auto& id = identity();
  // seq_cst: after our commit (Dekker with a server's waiters++ then re-check).
  if (load_seq_cst(id.doorbell_waiters) == 0) return;
  ring_all(id.doorbell_seq);
}

namespace {
bool has_identifier(std::span<const std::byte> payload, const std::array<char, 4>& id) noexcept {
  std::uint32_t want = 0;
  std::memcpy(&want, id.data(), 4);
  if (want == 0) return true;  // an untyped service
  if (payload.size() < 8) return false;
  std::uint32_t have = 0;
  std::memcpy(&have, payload.data() + 4, 4);  // one load, not a memcmp call
  return have == want;
}
}  // namespace

bool ServiceLink::has_request_identifier(std::span<const std::byte> payload) const noexcept {
  return has_identifier(payload, request_identifier);
}

bool ServiceLink::has_reply_identifier(std::span<const std::byte> payload) const noexcept {
  return has_identifier(payload, reply_identifier);
}

}  // namespace detail

namespace {

std::uint64_t to_ns(Deadline d) noexcept {
  if (d == Deadline::max()) return ~std::uint64_t{0};
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d.time_since_epoch()).count();
  return ns < 0 ? 0 : static_cast<std::uint64_t>(ns);
}

// The Errc of a FAILED word; only the codes a server writes are believed.
Errc failure_of(std::uint64_t control) noexcept {
  const auto code = static_cast<Errc>(layout::call_who(control));
  const bool known = code == Errc::bad_message || code == Errc::record_too_large ||
                     code == Errc::server_crashed || code == Errc::stale_ref ||
                     code == Errc::bad_ref;
  return known ? code : Errc::bad_message;
}

// Sends `loan` through `claim` of `mailbox`, one of `link`'s (layout/blobs.hpp
// numbers them: pool, dead letters, partitions).
bool send_loan(ServiceLink& link, const Mailbox& mailbox, Claim& claim, Loan& loan,
               std::uint16_t type, std::uint64_t correlation) noexcept {
  std::uint32_t number = layout::kPoolMailbox;
  for (std::size_t p = 0; p < link.partitions.size(); ++p) {
    if (&link.partitions[p] == &mailbox) number = layout::kFirstPartitionMailbox + static_cast<std::uint32_t>(p);
  }
  auto pool = link.core->blobs();
  if (!pool) return false;
  return (*pool)->send(claim, loan, layout::record_location(link.index, number, claim.position()),
                       type, correlation);
}

const std::uint32_t* futex_word(const layout::CallSlotHeader& slot) noexcept {
  // The control word's low half (little-endian): every state change moves it.
  return reinterpret_cast<const std::uint32_t*>(&slot.control);
}

}  // namespace

// ---- Service ----

const std::string& Service::name() const noexcept { return link_->name; }
std::uint64_t Service::depth() const noexcept {
  std::uint64_t depth = link_->pool.depth();
  for (const auto& partition : link_->partitions) depth += partition.depth();
  return depth;
}

Expected<PendingCall> Service::send_request(std::span<const std::byte> request,
                                            CallOptions options) noexcept {
  return start_call(request, nullptr, options);
}

Expected<PendingCall> Service::send_request(Loan&& request, CallOptions options) noexcept {
  if (request.empty()) return tl::unexpected(Errc::bad_ref);
  return start_call(request.payload(), &request, options);
}

Expected<Reply> Service::call(Loan&& request, CallOptions options) noexcept {
  auto pending = send_request(std::move(request), options);
  if (!pending) return tl::unexpected(pending.error());
  return pending->wait();
}

Expected<void> Service::cast(Loan&& message, CastOptions options) noexcept {
  if (message.empty()) return tl::unexpected(Errc::bad_ref);
  return send_cast(message.payload(), &message, options);
}

Expected<PendingCall> Service::start_call(std::span<const std::byte> request, Loan* loan,
                                          const CallOptions& options) noexcept {
  ServiceLink& link = *link_;
  auto refuse = [&](Errc e) -> Expected<PendingCall> {
    link.core->registry().count_outcome(link.index, e);
    return tl::unexpected(e);
  };
  if (!link.has_request_identifier(request)) return refuse(Errc::bad_message);
  auto ticket = link.core->call_slots().acquire();
  if (!ticket) return refuse(ticket.error());
  auto& slot = link.core->call_slots().slot(ticket->index);
  store_relaxed(slot.deadline_ns, to_ns(options.deadline));
  store_relaxed(slot.service, link.index + 1);
  // Ordered before the request's commit (a seq_cst CAS) that publishes it.
  store_relaxed(slot.control, layout::call_control(CallState::pending, 0, ticket->generation));
  auto mailbox = link.route(options.key);
  if (!mailbox) {
    link.core->call_slots().free(*ticket);
    return refuse(mailbox.error());
  }
  // Room first; the clock is read only when there is none.
  const std::size_t bytes = loan != nullptr ? sizeof(layout::LoanRecord) : request.size();
  auto claim = (*mailbox)->try_claim(bytes);
  const Deadline room = options.room_deadline.value_or(options.deadline);
  if (!claim && claim.error() == Errc::mailbox_full && room > Clock::now()) {
    claim = (*mailbox)->claim(bytes, room, options.mode);
  }
  if (!claim) {
    link.core->call_slots().free(*ticket);  // no record names the slot
    return refuse(claim.error());
  }
  if (link.closed()) {  // closed while we claimed: nothing is sent (see closed())
    claim->abort();
    link.core->call_slots().free(*ticket);
    return refuse(Errc::stopped);
  }
  const auto type = static_cast<std::uint16_t>(layout::MessageKind::call);
  const std::uint64_t correlation = layout::call_correlation(ticket->index, ticket->generation);
  if (loan != nullptr) {
    if (!send_loan(link, **mailbox, *claim, *loan, type, correlation)) {
      link.core->call_slots().free(*ticket);
      return refuse(Errc::bad_ref);
    }
  } else {
    std::memcpy(claim->payload().data(), request.data(), request.size());
    claim->set_type(type);
    claim->set_correlation(correlation);
    claim->commit();
  }
  if (!link.partitions.empty()) link.ring_doorbell();
  // A Readiness waiter of ours asleep without a timeout must learn of this
  // call's deadline (seq_cst: after the commit, Dekker with its waiters++).
  auto& own = link.core->call_slots().doorbell();
  if (load_seq_cst(own.waiters) != 0) {
    ring_all(own.seq);
  }
  return PendingCall(link_, ticket->index, ticket->generation, options);
}

Expected<Reply> Service::call(std::span<const std::byte> request, CallOptions options) noexcept {
  auto pending = send_request(request, options);
  if (!pending) return tl::unexpected(pending.error());
  return pending->wait();
}

Expected<void> Service::cast(std::span<const std::byte> message, CastOptions options) noexcept {
  return send_cast(message, nullptr, options);
}

Expected<void> Service::send_cast(std::span<const std::byte> message, Loan* loan,
                                  const CastOptions& options) noexcept {
  ServiceLink& link = *link_;
  auto refuse = [&](Errc e) -> Expected<void> {
    link.core->registry().count_outcome(link.index, e);
    return tl::unexpected(e);
  };
  if (!link.has_request_identifier(message)) return refuse(Errc::bad_message);
  auto mailbox = link.route(options.key);
  if (!mailbox) return refuse(mailbox.error());
  const auto type = static_cast<std::uint16_t>(layout::MessageKind::cast);
  if (loan != nullptr) {
    auto claim = (*mailbox)->try_claim(sizeof(layout::LoanRecord));
    if (!claim && claim.error() == Errc::mailbox_full && options.deadline > Clock::now()) {
      claim = (*mailbox)->claim(sizeof(layout::LoanRecord), options.deadline, options.mode);
    }
    if (!claim) return refuse(claim.error());
    if (link.closed()) {  // closed while we claimed: the loan stays ours (see closed())
      claim->abort();
      return refuse(Errc::stopped);
    }
    if (!send_loan(link, **mailbox, *claim, *loan, type, 0)) return refuse(Errc::bad_ref);
    if (!link.partitions.empty()) link.ring_doorbell();
    return {};
  }
  auto claim = (*mailbox)->try_claim(message.size());
  if (!claim && claim.error() == Errc::mailbox_full && options.deadline > Clock::now()) {
    claim = (*mailbox)->claim(message.size(), options.deadline, options.mode);
  }
  if (!claim) return refuse(claim.error());
  if (link.closed()) {  // closed while we claimed: nothing is sent (see closed())
    claim->abort();
    return refuse(Errc::stopped);
  }
  if (!message.empty()) std::memcpy(claim->payload().data(), message.data(), message.size());
  claim->set_type(type);
  claim->commit();
  if (!link.partitions.empty()) link.ring_doorbell();
  return {};
}

// ---- PendingCall ----

PendingCall::PendingCall(std::shared_ptr<ServiceLink> link, std::uint32_t index,
                         std::uint64_t generation, CallOptions options) noexcept
    : link_(std::move(link)),
      index_(index),
      generation_(generation),
      deadline_(options.deadline),
      mode_(options.mode) {}

PendingCall::PendingCall(PendingCall&& other) noexcept
    : link_(std::move(other.link_)),
      index_(other.index_),
      generation_(other.generation_),
      deadline_(other.deadline_),
      mode_(other.mode_),
      finished_(other.finished_),
      outcome_(other.outcome_),
      next_taker_check_(other.next_taker_check_) {
  other.finished_ = true;
}

PendingCall& PendingCall::operator=(PendingCall&& other) noexcept {
  if (this != &other) {
    if (!finished_ && link_) (void)cancel();
    link_ = std::move(other.link_);
    index_ = other.index_;
    generation_ = other.generation_;
    deadline_ = other.deadline_;
    mode_ = other.mode_;
    finished_ = other.finished_;
    outcome_ = other.outcome_;
    next_taker_check_ = other.next_taker_check_;
    other.finished_ = true;
  }
  return *this;
}

PendingCall::~PendingCall() {
  if (!finished_ && link_) (void)cancel();
}

Expected<Reply> PendingCall::poll() noexcept {
  if (finished_) return tl::unexpected(outcome_);
  const Deadline now = Clock::now();
  const bool check_taker = now >= next_taker_check_;
  if (check_taker) next_taker_check_ = now + kParkRecheckInterval;
  return step(now >= deadline_, check_taker);
}

Expected<Reply> PendingCall::cancel() noexcept {
  if (finished_) return tl::unexpected(outcome_);
  return step(true, true);
}

Expected<Reply> PendingCall::finish(Errc outcome, bool free_slot) noexcept {
  if (free_slot) link_->core->call_slots().free({index_, generation_});
  finished_ = true;
  outcome_ = outcome;
  link_->core->registry().count_outcome(link_->index, outcome);
  return tl::unexpected(outcome);
}

bool PendingCall::leave_slot(std::uint64_t& control, std::uint64_t to) noexcept {
  auto& slots = link_->core->call_slots();
  if (!compare_exchange(slots.slot(index_).control, control, to)) return false;
  // Freed by us, or ABANDONED: its server frees it, or acquire() once it is dead.
  slots.forget(index_);
  return true;
}

Expected<Reply> PendingCall::collect_reply() noexcept {
  auto& slots = link_->core->call_slots();
  // The caller's acquire load of REPLIED pairs with the server's CAS:
  // length and bytes are final.
  const auto& slot = slots.slot(index_);
  if ((slot.reply_flags & layout::kReplyLoan) != 0) return collect_loaned_reply();
  const std::uint32_t length = load_relaxed(slot.length);
  const std::span<const std::byte> reply{slots.reply_area(index_), length};
  // The reply's type: its identifier here; its whole structure when the
  // user reads it (Reply::read verifies a private copy).
  if (length > slots.max_reply() || !link_->has_reply_identifier(reply)) {
    return finish(Errc::bad_message, true);
  }
  finished_ = true;
  slots.mark_answered(index_);
  return Reply(link_, index_, generation_, reply);
}

Expected<Reply> PendingCall::collect_loaned_reply() noexcept {
  auto& slots = link_->core->call_slots();
  const layout::LoanRecord ref = slots.slot(index_).reply_loan;
  auto pool = link_->core->blobs();
  if (!pool) return finish(Errc::system_error, true);
  const std::uint32_t self_slot = layout::ref_slot(link_->core->table().self().value);
  const detail::ResolvedLoan resolved =
      (*pool)->resolve(ref, layout::reply_location(self_slot, index_, generation_));
  if (resolved.error != Errc{}) return finish(resolved.error, true);
  if (!link_->has_reply_identifier(resolved.payload)) {
    // Freed with the slot by finish(); the block goes back at once.
    (*pool)->release_word(ref.block, resolved.control);
    return finish(Errc::bad_message, true);
  }
  finished_ = true;
  slots.mark_answered(index_);
  return Reply(link_, index_, generation_, resolved.payload, ref.block, resolved.control);
}

Expected<Reply> PendingCall::step(bool give_up, bool check_taker) noexcept {
  auto& slots = link_->core->call_slots();
  const std::uint64_t next = generation_ + 1;
  std::uint64_t control = load_acquire(slots.slot(index_).control);
  for (;;) {  // each `continue`: a CAS lost to the server, `control` holds its word
    if (layout::call_generation(control) != generation_) break;
    switch (layout::call_state(control)) {
      case CallState::replied: return collect_reply();
      case CallState::expired: return finish(Errc::timeout_not_started, true);
      case CallState::failed: return finish(failure_of(control), true);
      case CallState::pending:
        if (!give_up) return tl::unexpected(Errc::empty);
        if (leave_slot(control, layout::call_control(CallState::free, layout::kFreedCancelled, next))) {
          return finish(Errc::timeout_not_started, false);
        }
        continue;
      case CallState::taken:
        if (check_taker && !slots.table().is_alive(layout::call_who(control))) {
          if (leave_slot(control, layout::call_control(CallState::free, layout::kFreedTakerDied, next))) {
            return finish(Errc::server_crashed, false);
          }
          continue;
        }
        if (!give_up) return tl::unexpected(Errc::empty);
        if (leave_slot(control, layout::call_control(CallState::abandoned,
                                                     layout::call_who(control), generation_))) {
          return finish(Errc::timeout_in_progress, false);
        }
        continue;
      default: break;
    }
    break;
  }
  // Another generation, or a word nobody writes in our slot: another process
  // wrote what it must not. The call is lost to us.
  slots.forget(index_);
  return finish(Errc::server_crashed, false);
}

Expected<Reply> PendingCall::wait() noexcept {
  if (finished_) return tl::unexpected(outcome_);
  auto& slot = link_->core->call_slots().slot(index_);
  Deadline next_check = Clock::now() + kParkRecheckInterval;
  bool check_taker = false;
  for (;;) {
    // Read before step() looks: an outcome that lands after this read makes
    // the park below return at once (the word differs from `seen`).
    const std::uint64_t seen = load_acquire(slot.control);
    auto outcome = step(false, check_taker);
    if (outcome || outcome.error() != Errc::empty) return outcome;
    Deadline now = Clock::now();
    if (now >= deadline_) return step(true, true);
    check_taker = now >= next_check;
    if (check_taker) {
      next_check = now + kParkRecheckInterval;
      continue;
    }
    auto changed = [&] { return load_acquire(slot.control) != seen; };
    if (mode_ == WaitMode::busy_poll) {
      for (int i = 0; i < 256 && !changed(); ++i) detail::cpu_relax();
      continue;
    }
    if (mode_ == WaitMode::spin_then_park && detail::spin_until(changed)) continue;
    // Dekker with the server: count ourselves, then re-check (both seq_cst).
    fetch_add(slot.waiters, std::uint32_t{1});
    const std::uint64_t again = load_seq_cst(slot.control);
    if (again == seen) {
      detail::futex_wait(futex_word(slot), static_cast<std::uint32_t>(seen),
                         std::min(deadline_, next_check));
      // Woken with nothing changed: a reaper saying our server died (or a
      // spurious wake-up): ask the kernel at once.
      check_taker = load_acquire(slot.control) == seen && Clock::now() < next_check;
    }
    fetch_sub(slot.waiters, std::uint32_t{1});
  }
}

// ---- Reply ----

Reply::Reply(std::shared_ptr<ServiceLink> link, std::uint32_t index, std::uint64_t generation,
             std::span<const std::byte> payload, std::uint32_t loan_block,
             std::uint64_t loan_control) noexcept
    : link_(std::move(link)), index_(index), generation_(generation), payload_(payload),
      trusted_(link_->trusted), loan_block_(loan_block), loan_control_(loan_control) {}

Reply::Reply(Reply&& other) noexcept
    : link_(std::move(other.link_)),
      index_(other.index_),
      generation_(other.generation_),
      payload_(std::exchange(other.payload_, {})),
      trusted_(other.trusted_),
      loan_block_(other.loan_block_),
      loan_control_(std::exchange(other.loan_control_, 0)) {}

Reply& Reply::operator=(Reply&& other) noexcept {
  if (this != &other) {
    release();
    link_ = std::move(other.link_);
    index_ = other.index_;
    generation_ = other.generation_;
    payload_ = std::exchange(other.payload_, {});
    trusted_ = other.trusted_;
    loan_block_ = other.loan_block_;
    loan_control_ = std::exchange(other.loan_control_, 0);
  }
  return *this;
}

Reply::~Reply() { release(); }

void Reply::release() noexcept {
  if (!link_) return;
  link_->core->call_slots().free({index_, generation_});
  // After the slot: killed in between, the reaper finds the slot no longer
  // REPLIED with this generation and frees the block.
  if (loan_control_ != 0) {
    if (auto pool = link_->core->blobs()) (*pool)->release_word(loan_block_, loan_control_);
  }
}

}  // namespace shmbus
