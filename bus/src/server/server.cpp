// server.cpp — the server's side of layout/calls.hpp and the receive loop.
#include "shmbus/server.hpp"

#include <bit>
#include <climits>
#include <cstring>
#include <optional>

#include "bus/mailbox_factory.hpp"
#include "server/partition_set.hpp"
#include "server/service_link.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/detail/test_hook.hpp"
#include "wait/futex.hpp"

namespace shmbus {

using namespace detail;  // the shared-word helpers of detail/atomic.hpp
using layout::CallState;

namespace {
// One scan of the process table (a system call per live process) per second
// per server: dead callers are found within a second, at a negligible cost.
constexpr std::chrono::seconds kReclaimInterval{1};
// Busy servers read the clock for it only every this many messages.
constexpr std::uint32_t kMessagesPerReclaimCheck = 256;
// Handler times are sampled, one message in kLatencySample: the histogram's
// quantiles stay true, and the hot path reads no clock beyond what a call's
// deadline check needs (casts: none at all on unsampled messages).
constexpr std::uint32_t kLatencySample = 8;
}  // namespace

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
  [[nodiscard]] bool sample_latency() noexcept { return ++messages % kLatencySample == 0; }

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
    if (!idle && ++since_reclaim_check < kMessagesPerReclaimCheck) return;
    since_reclaim_check = 0;
    const Deadline now = Clock::now();
    if (now < next_reclaim) return;
    next_reclaim = now + kReclaimInterval;
    (void)core().reclaim_dead();
  }

  [[nodiscard]] detail::BusCore& core() const noexcept { return *link->core; }
  [[nodiscard]] layout::ServerCounters& counters() const noexcept {
    return core().registry().server_counters(link->index, entry);
  }
};

namespace {

void count(std::uint64_t& counter, std::uint64_t n = 1) noexcept {
  // One writer (this server): a plain load and store, no locked instruction.
  detail::store_relaxed(counter, detail::load_relaxed(counter) + n);
}

void wake_caller(layout::CallSlotHeader& slot, layout::ProcessDoorbell& doorbell) noexcept {
  // seq_cst: after our CAS on control (Dekker with the caller's waiters++).
  if (detail::load_seq_cst(slot.waiters) != 0) {
    detail::futex_wake(reinterpret_cast<const std::uint32_t*>(&slot.control), INT_MAX);
  }
  // A readiness waiter of the caller's process waits for any of its calls.
  if (detail::load_seq_cst(doorbell.waiters) != 0) {
    detail::fetch_add(doorbell.seq, std::uint32_t{1});
    detail::futex_wake(&doorbell.seq, INT_MAX);
  }
}

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

void record_latency(layout::ServerCounters& counters, std::uint64_t ns) noexcept {
  const std::uint64_t micros = ns / 1000;
  const auto bucket = std::min<std::size_t>(std::bit_width(micros), layout::kLatencyBuckets - 1);
  count(counters.latency[bucket]);
  count(counters.busy_ns, ns);
}

}  // namespace

Expected<void> ReplyWriter::assign(std::span<const std::byte> bytes) noexcept {
  if (bytes.size() > area_.size()) {
    length_ = bytes.size();  // marks the reply too large for the caller
    return tl::unexpected(Errc::record_too_large);
  }
  std::memcpy(area_.data(), bytes.data(), bytes.size());
  length_ = bytes.size();
  return {};
}

Result<Server> Server::start(Bus& bus, std::string_view service, const ServiceOptions& options) {
  auto& core = bus.core_;
  auto index = core->registry().register_service(core, service, options);
  if (!index) return tl::unexpected(index.error());
  auto link = detail::ServiceLink::open(core, service);
  if (!link) return tl::unexpected(link.error());
  auto dead = detail::MailboxFactory::open(core, detail::dead_letter_shm_name(*core, service),
                                           std::string(service) + "~dead");
  if (!dead) return tl::unexpected(dead.error());
  auto receiver = (*link)->pool.receiver();
  if (!receiver) return tl::unexpected(receiver.error());
  auto entry = core->registry().join(*index);
  if (!entry) return tl::unexpected(entry.error());
  auto state = std::make_unique<State>();
  state->link = std::move(*link);
  state->receiver.emplace(std::move(*receiver));
  state->dead_letters.emplace(std::move(*dead));
  state->entry = *entry;
  state->schema = options.schema;
  state->max_deliveries = options.max_deliveries;
  if (!state->link->partitions.empty()) {
    state->partitions.emplace(std::move(state->link->partitions), *index, *entry);
    state->link->partitions.clear();
  }
  return Server(std::move(state));
}

Server::Server(std::unique_ptr<State> state) noexcept : state_(std::move(state)) {}
Server::Server(Server&&) noexcept = default;

Server::~Server() {
  if (!state_) return;
  if (state_->partitions) state_->partitions->release_all(state_->core());
  state_->receiver.reset();  // frees our consumer entries first: nothing is held
  state_->core().registry().leave(state_->link->index, state_->entry);
}

const std::string& Server::service() const noexcept { return state_->link->name; }

ServerCounters Server::counters() const noexcept {
  return detail::read_counters(state_->counters());
}

void Server::stop() noexcept { state_->stop_requested.store(true, std::memory_order_relaxed); }

Expected<void> Server::serve(Handler& handler, ServeOptions options) noexcept {
  // One deadline per idle stretch, not a clock read per message: serve_one
  // returns false only when nothing came by it, and then we look at `stop`.
  Deadline until = Clock::now() + kParkRecheckInterval;
  while (!state_->stop_requested.load(std::memory_order_relaxed)) {
    if (!serve_one(handler, until, options.mode)) until = Clock::now() + kParkRecheckInterval;
  }
  state_->core().registry().set_leaving(state_->link->index, state_->entry);
  // Keyed: siblings take our partitions now, not when this object goes.
  if (state_->partitions) state_->partitions->release_all(state_->core());
  return tl::unexpected(Errc::stopped);
}

bool Server::serve_one(Handler& handler, Deadline deadline, WaitMode mode) noexcept {
  if (state_->partitions) {
    const bool served = serve_one_keyed(handler, deadline, mode);
    state_->reclaim_if_due(!served);
    if (served) return true;
    auto recovered = state_->recover_if_due();
    if (!recovered) return false;
    handle(handler, *recovered);
    recovered->done();
    return true;
  }
  auto delivery = state_->receiver->receive(deadline, mode);
  state_->reclaim_if_due(!delivery);
  if (!delivery) delivery = state_->recover_if_due();
  if (!delivery) return false;
  handle(handler, *delivery);
  delivery->done();
  return true;
}

std::optional<Delivery> Server::take_any() noexcept {
  State& s = *state_;
  s.pool_first = !s.pool_first;
  if (s.pool_first) {
    if (auto delivery = s.receiver->try_receive()) return std::move(*delivery);
    return s.partitions->try_receive();
  }
  if (auto delivery = s.partitions->try_receive()) return delivery;
  if (auto delivery = s.receiver->try_receive()) return std::move(*delivery);
  return std::nullopt;
}

bool Server::wait_for_work(Deadline deadline) noexcept {
  // Runs on Readiness's waiter thread: it reads shared words and the
  // immutable mailboxes only, never the serving thread's receivers.
  State& s = *state_;
  const Deadline recheck = Clock::now() + kParkRecheckInterval;
  if (!s.partitions) {
    if (s.receiver->ready()) return true;
    // Records queued but none ready: a dead producer's claim (or a dead
    // sibling's record) blocks the head. Look again in a while; the loop's
    // serve_one recovers it. Nothing queued: sleep without a timer.
    const bool blocked = s.link->pool.depth() > 0;
    s.receiver->wait_until_ready(blocked ? std::min(deadline, recheck) : deadline);
    return s.receiver->ready() || (blocked && Clock::now() >= recheck);
  }
  auto& id = s.link->identity();
  const std::uint64_t epoch = load_acquire(s.core().control().registry().epoch);
  const std::uint32_t rung = load_acquire(id.doorbell_seq);
  fetch_add(id.doorbell_waiters, std::uint32_t{1});  // seq_cst, then seq_cst loads (Dekker)
  const bool waiting = s.receiver->ready() || s.partitions->owned_backlog();
  // Partitions with records that are not ours may become ours (a sibling
  // died or left): their hand-over needs the loop to look now and then.
  if (!waiting) {
    const bool check = s.partitions->unowned_backlog() || s.link->pool.depth() > 0;
    detail::futex_wait(&id.doorbell_seq, rung, check ? std::min(deadline, recheck) : deadline);
  }
  fetch_sub(id.doorbell_waiters, std::uint32_t{1});
  return waiting || s.receiver->ready() || s.partitions->owned_backlog() ||
         s.partitions->unowned_backlog() ||
         load_acquire(s.core().control().registry().epoch) != epoch;
}

void Server::wake_work_waiters() noexcept {
  State& s = *state_;
  s.receiver->wake_waiters();
  if (s.partitions) {
    auto& id = s.link->identity();
    fetch_add(id.doorbell_seq, std::uint32_t{1});
    detail::futex_wake(&id.doorbell_seq, INT_MAX);
  }
}

// A keyed service's server waits on its pool and its partitions at once, so
// it parks on the service's doorbell, which every sender to the service rings.
bool Server::serve_one_keyed(Handler& handler, Deadline deadline, WaitMode mode) noexcept {
  State& s = *state_;
  auto& id = s.link->identity();
  auto run = [&](Delivery& delivery) {
    handle(handler, delivery);
    delivery.done();
    return true;
  };
  const Deadline spin_end = Clock::now() + detail::kSpinBudget;
  for (;;) {
    const Deadline now = Clock::now();
    s.partitions->rebalance_if_due(s.core(), now);
    // Read before looking: a ring after the look moves it, so the park below
    // returns at once (Dekker with the sender's commit, then waiters load).
    const std::uint32_t rung = load_acquire(id.doorbell_seq);
    if (auto delivery = take_any()) return run(*delivery);
    if (now >= deadline) return false;
    if (mode == WaitMode::busy_poll || (mode == WaitMode::spin_then_park && now < spin_end)) {
      for (int i = 0; i < 32; ++i) detail::cpu_relax();
      continue;
    }
    // Dekker with the sender: our seq_cst waiters++, then seq_cst loads of
    // the heads against its seq_cst commit, then waiters load.
    fetch_add(id.doorbell_waiters, std::uint32_t{1});
    if (!s.receiver->ready() && !s.partitions->ready()) {
      detail::futex_wait(&id.doorbell_seq, rung, std::min(deadline, s.partitions->next_check()));
    }
    fetch_sub(id.doorbell_waiters, std::uint32_t{1});
  }
}

void Server::handle(Handler& handler, Delivery& delivery) noexcept {
  const RecordInfo& info = delivery.info();
  if (info.redelivered) count(state_->counters().redelivered);
  switch (static_cast<layout::MessageKind>(info.type)) {
    case layout::MessageKind::call: return handle_call(handler, delivery);
    case layout::MessageKind::cast: return handle_cast(handler, delivery);
  }
  count(state_->counters().bad_messages);  // a record no client of ours writes
  delivery.count_bad_message();
}

namespace {

// The request's bytes, verified against the service's types: a private copy
// when verified, the ring's bytes when the service is untyped or the bus
// trusted. Empty optional: bad_message.
std::optional<std::span<const std::byte>> checked_payload(const detail::ServiceLink& link,
                                                          const ServiceSchema& schema,
                                                          MessageBuffer& scratch,
                                                          std::span<const std::byte> payload) {
  if (!link.has_request_identifier(payload)) return std::nullopt;
  if (link.trusted || schema.verify_request == nullptr) return payload;
  const auto copy = scratch.assign(payload);
  if (!schema.verify_request(copy)) return std::nullopt;
  return copy;
}

}  // namespace

void Server::handle_cast(Handler& handler, Delivery& delivery) noexcept {
  State& s = *state_;
  const RecordInfo& info = delivery.info();
  if (info.deliveries > s.max_deliveries) {
    // max_deliveries servers died running it: park it where a person looks.
    // The delivery count travels in the correlation word (a cast has none).
    auto moved = s.dead_letters->try_send(delivery.payload(), {info.type, info.deliveries});
    count(moved ? s.counters().dead_lettered : s.counters().dead_letters_dropped);
    return;
  }
  auto payload = checked_payload(*s.link, s.schema, s.scratch, delivery.payload());
  if (!payload) {
    count(s.counters().bad_messages);
    delivery.count_bad_message();
    return;
  }
  const Request request(*payload, info);
  const bool sampled = s.sample_latency();
  const std::uint64_t start = sampled ? now_ns() : 0;
  SHMBUS_TEST_HOOK(server_in_cast);
  handler.handle_cast(request);
  if (sampled) record_latency(s.counters(), now_ns() - start);
  count(s.counters().casts);
}

void Server::handle_call(Handler& handler, Delivery& delivery) noexcept {
  State& s = *state_;
  const RecordInfo& info = delivery.info();
  const detail::ControlView& view = s.core().control();
  const std::uint32_t caller = info.sender.value;
  const std::uint32_t index = layout::correlation_index(info.correlation);
  const std::uint64_t generation = layout::correlation_generation(info.correlation);
  if (layout::ref_slot(caller) >= view.max_processes() || index >= view.calls_per_process()) {
    count(s.counters().bad_messages);  // names no call slot: forged or torn
    delivery.count_bad_message();
    return;
  }
  auto& slot = view.call_slot(layout::ref_slot(caller), index);
  auto& doorbell = view.doorbell(layout::ref_slot(caller));
  const std::uint64_t pending = layout::call_control(CallState::pending, 0, generation);
  std::uint64_t control = load_acquire(slot.control);
  if (control != pending) return count_skipped(info, control, generation);
  if (info.deliveries > s.max_deliveries) {
    // Servers died on it before they could take it (verifier, copy): stop here.
    const auto refused = layout::call_control(
        CallState::failed, static_cast<std::uint32_t>(Errc::server_crashed), generation);
    if (compare_exchange(slot.control, control, refused)) return wake_caller(slot, doorbell);
    return count_skipped(info, control, generation);
  }
  const std::uint64_t start = now_ns();
  if (start > load_relaxed(slot.deadline_ns)) {
    const auto expired = layout::call_control(CallState::expired, 0, generation);
    if (!compare_exchange(slot.control, control, expired)) return count_skipped(info, control, generation);
    count(s.counters().expired_skipped);
    return wake_caller(slot, doorbell);
  }
  auto payload = checked_payload(*s.link, s.schema, s.scratch, delivery.payload());
  if (!payload) {
    const auto refused = layout::call_control(
        CallState::failed, static_cast<std::uint32_t>(Errc::bad_message), generation);
    if (!compare_exchange(slot.control, control, refused)) return count_skipped(info, control, generation);
    count(s.counters().bad_messages);
    delivery.count_bad_message();
    return wake_caller(slot, doorbell);
  }
  const std::uint32_t self = s.core().table().self().value;
  const std::uint64_t taken = layout::call_control(CallState::taken, self, generation);
  if (!compare_exchange(slot.control, control, taken)) return count_skipped(info, control, generation);
  SHMBUS_TEST_HOOK(server_after_take);
  const Request request(*payload, info);
  ReplyWriter writer({view.reply_area(slot), view.max_reply()});
  handler.handle_call(request, writer);
  SHMBUS_TEST_HOOK(server_before_reply);
  if (s.sample_latency()) record_latency(s.counters(), now_ns() - start);
  count(s.counters().calls);
  finish_call(slot, doorbell, caller, generation, writer.length_);
}

void Server::finish_call(layout::CallSlotHeader& slot, layout::ProcessDoorbell& doorbell,
                         std::uint32_t caller, std::uint64_t generation,
                         std::size_t length) noexcept {
  State& s = *state_;
  const std::uint32_t self = s.core().table().self().value;
  std::uint64_t outcome = layout::call_control(CallState::replied, 0, generation);
  if (length > s.core().control().max_reply()) {
    count(s.counters().replies_too_large);
    outcome = layout::call_control(CallState::failed,
                                   static_cast<std::uint32_t>(Errc::record_too_large), generation);
  } else {
    store_relaxed(slot.length, static_cast<std::uint32_t>(length));
  }
  std::uint64_t control = layout::call_control(CallState::taken, self, generation);
  // seq_cst CAS: publishes length and reply bytes to the caller's acquire load.
  if (compare_exchange(slot.control, control, outcome)) {
    if (layout::call_state(outcome) == CallState::replied) count(s.counters().replies);
    wake_caller(slot, doorbell);
    // The woken caller may already have read it and left: only a caller that
    // was reclaimed (slot gone from the table) makes the reply unreadable.
    if (s.core().table().is_attached(caller)) return;
    // Its caller died and was reclaimed while we ran: nobody will read this.
    // Exactly one of us and the sweep of its process slot wins this CAS.
    control = outcome;
    if (compare_exchange(slot.control, control,
                         layout::call_control(CallState::free, layout::kFreedCallerGone,
                                              generation + 1))) {
      count(s.counters().late_replies);
      count(s.counters().caller_gone);
    }
    return;
  }
  // ABANDONED(g, us): the caller returned timeout_in_progress at its
  // deadline. The slot is ours until we free it; its caller's allocator waits.
  const std::uint64_t abandoned = layout::call_control(CallState::abandoned, self, generation);
  if (control != abandoned) return;  // not ours to touch (see calls.hpp)
  count(s.counters().late_replies);
  (void)compare_exchange(slot.control, control,
                         layout::call_control(CallState::free, layout::kFreedNormally,
                                              generation + 1));
}

void Server::count_skipped(const RecordInfo& info, std::uint64_t control,
                           std::uint64_t generation) noexcept {
  auto& counters = state_->counters();
  const std::uint64_t next = (generation + 1) & layout::kCallGenerationMask;
  if (layout::call_state(control) == CallState::free && layout::call_generation(control) == next) {
    // The FREE word says why (calls.hpp, kFreed*): no system call needed.
    switch (layout::call_who(control)) {
      case layout::kFreedTakerDied: return;  // its caller got server_crashed
      case layout::kFreedCallerGone: return count(counters.caller_gone);
      default: return count(counters.expired_skipped);
    }
  }
  // A redelivered record found decided (by a server that died after deciding
  // and counting, or holding it: its caller learns server_crashed) or its
  // slot reused: counted already. Otherwise the caller, or a new owner of
  // its process slot, moved on after giving up.
  if (info.redelivered) return;
  const bool attached = state_->core().table().is_attached(info.sender.value);
  count(attached ? counters.expired_skipped : counters.caller_gone);
}

}  // namespace shmbus
