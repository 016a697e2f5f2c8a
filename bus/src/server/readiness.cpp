// readiness.cpp — waiter threads that turn futex wake-ups into a readable
// eventfd.
//
// Handshake: a waiter signals the eventfd once, then sleeps until drain()
// (the loop is about to look at the bus), then looks again. So a waiter never
// spins while the loop is busy, and work arriving while the loop looks is
// signalled again. Stopping: `stop` is set, then the waiters' futex words are
// bumped and woken until each thread has left (a waiter may have read its
// word just before the bump; the next round reaches it).
#include "shmbus/readiness.hpp"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <system_error>
#include <thread>

#include "bus/bus_core.hpp"
#include "shmbus/detail/atomic.hpp"
#include "wait/futex.hpp"

namespace shmbus {

using detail::CallSlots;

struct Readiness::State {
  std::shared_ptr<detail::BusCore> core;
  Server* server = nullptr;
  int event_fd = -1;
  std::atomic<bool> stop{false};
  std::atomic<std::uint32_t> drained{0};  // bumped by drain(); waiters sleep on it
  std::atomic<int> running{0};
  std::thread server_waiter;
  std::thread call_waiter;

  void signal_and_wait_for_drain() noexcept {
    const std::uint32_t seen = drained.load(std::memory_order_acquire);
    const std::uint64_t one = 1;
    (void)!::write(event_fd, &one, sizeof one);
    while (!stop.load(std::memory_order_acquire) && drained.load(std::memory_order_acquire) == seen) {
      drained.wait(seen, std::memory_order_acquire);
    }
  }

  void watch_server() noexcept {
    while (!stop.load(std::memory_order_acquire)) {
      const bool look = server->wait_for_work(Deadline::max());
      if (stop.load(std::memory_order_acquire)) break;
      if (look) signal_and_wait_for_drain();
    }
    running.fetch_sub(1);
  }

  void watch_calls() noexcept {
    CallSlots& slots = core->call_slots();
    auto& doorbell = slots.doorbell();
    Deadline next_check = Clock::now() + kParkRecheckInterval;
    while (!stop.load(std::memory_order_acquire)) {
      const std::uint32_t rung = detail::load_acquire(doorbell.seq);
      // seq_cst waiters++, then attention()'s seq_cst loads (Dekker with the server).
      detail::fetch_add(doorbell.waiters, std::uint32_t{1});
      const bool check_takers = Clock::now() >= next_check;
      if (check_takers) next_check = Clock::now() + kParkRecheckInterval;
      Deadline earliest{};
      const auto attention = slots.attention(check_takers, earliest);
      if (attention != CallSlots::Attention::ready && !stop.load(std::memory_order_acquire)) {
        // Idle (no calls in flight): no timeout at all. Else wake for the
        // liveness check or the first deadline, whichever comes first.
        const Deadline until = attention == CallSlots::Attention::none
                                   ? Deadline::max()
                                   : std::min(next_check, earliest);
        detail::futex_wait(&doorbell.seq, rung, until);
      }
      detail::fetch_sub(doorbell.waiters, std::uint32_t{1});
      if (attention == CallSlots::Attention::ready) signal_and_wait_for_drain();
    }
    running.fetch_sub(1);
  }

  void wake_all() noexcept {
    drained.fetch_add(1, std::memory_order_acq_rel);
    drained.notify_all();
    if (server != nullptr) server->wake_work_waiters();
    auto& doorbell = core->call_slots().doorbell();
    detail::ring_all(doorbell.seq);
  }

  void shut_down() noexcept {
    stop.store(true, std::memory_order_release);
    while (running.load() > 0) {
      wake_all();
      std::this_thread::yield();
    }
    if (server_waiter.joinable()) server_waiter.join();
    if (call_waiter.joinable()) call_waiter.join();
    if (event_fd >= 0) ::close(event_fd);
  }
};

Result<Readiness> Readiness::create(Bus& bus, Server* server) {
  auto state = std::make_unique<State>();
  state->core = bus.core_;
  state->server = server;
  state->event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (state->event_fd < 0) {
    return fail(Errc::system_error, std::string("eventfd: ") + std::strerror(errno));
  }
  State* s = state.get();
  s->running.store(server != nullptr ? 2 : 1);
  try {
    // Named, so `top -H` and tests can tell them apart (15 characters at most).
    s->call_waiter = std::thread([s] {
      pthread_setname_np(pthread_self(), "shmbus-calls");
      s->watch_calls();
    });
    if (server != nullptr) {
      s->server_waiter = std::thread([s] {
        pthread_setname_np(pthread_self(), "shmbus-serve");
        s->watch_server();
      });
    }
  } catch (const std::system_error& e) {
    // No exception crosses the API: stop what started, report the failure.
    if (!s->server_waiter.joinable() && server != nullptr) s->running.fetch_sub(1);
    if (!s->call_waiter.joinable()) s->running.fetch_sub(1);
    s->shut_down();
    state->event_fd = -1;
    return fail(Errc::system_error, std::string("Readiness: cannot start a waiter thread: ") + e.what());
  }
  return Readiness(std::move(state));
}

Readiness::Readiness(std::unique_ptr<State> state) noexcept : state_(std::move(state)) {}
Readiness::Readiness(Readiness&&) noexcept = default;
Readiness& Readiness::operator=(Readiness&& other) noexcept {
  if (this != &other) {
    if (state_) state_->shut_down();
    state_ = std::move(other.state_);
  }
  return *this;
}

Readiness::~Readiness() {
  if (state_) state_->shut_down();
}

int Readiness::fd() const noexcept { return state_->event_fd; }

void Readiness::drain() noexcept {
  std::uint64_t count = 0;
  (void)!::read(state_->event_fd, &count, sizeof count);
  state_->drained.fetch_add(1, std::memory_order_acq_rel);
  state_->drained.notify_all();
}

}  // namespace shmbus
