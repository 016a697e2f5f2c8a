// server.cpp — a server's life (start, leave) and its receive loop; the call
// path is server_calls.cpp.
#include "shmbus/server.hpp"

#include <cstring>

#include "bus/mailbox_factory.hpp"
#include "blobs/blob_pool.hpp"
#include "server/server_state.hpp"
#include "shmbus/detail/test_hook.hpp"

namespace shmbus {

using namespace detail;  // the shared-word helpers of detail/atomic.hpp
using layout::CallState;

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

Result<Server> Server::join(Bus& bus, std::string_view service, const ServiceSchema& schema) {
  for (auto& info : bus.services()) {
    if (info.name != service) continue;
    ServiceOptions options = info.options;  // the registered sizes
    options.schema = schema;                // start() checks the types against the registry
    return start(bus, service, options);
  }
  return fail(Errc::no_such_service,
              "service '" + std::string(service) + "' is not registered (a launcher registers it)");
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
    detail::ring_all(id.doorbell_seq);
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


void Server::handle_cast(Handler& handler, Delivery& delivery) noexcept {
  State& s = *state_;
  const RecordInfo& info = delivery.info();
  if (info.deliveries > s.max_deliveries) {
    // max_deliveries servers died running it: park it where a person looks.
    // The delivery count travels in the correlation word (a cast has none).
    // A loan moves with its block (layout/blobs.hpp, "dead-letter move").
    bool moved = false;
    if (!info.loaned) {
      moved = s.dead_letters->try_send(delivery.payload(), {info.type, info.deliveries}).has_value();
    } else if (auto pool = s.core().blobs(); pool && info.ref_error == Errc{}) {
      moved = (*pool)->move_to_dead_letters(*s.dead_letters, delivery, s.link->index);
    } else if (pool && (*pool)->moved_on(delivery)) {
      return;  // a mover died after putting it in the list: counted there, or one short
    }
    count(moved ? s.counters().dead_lettered : s.counters().dead_letters_dropped);
    return;
  }
  auto payload = checked_payload(*s.link, s.schema, s.scratch, delivery);
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

}  // namespace shmbus
