// -----------------------------------------------------------------------------
// readiness.hpp — put a bus into your own event loop (epoll, asio, libuv)
// -----------------------------------------------------------------------------
//
// A producer in another process cannot write into this process's eventfd, so
// Readiness runs small waiter threads that park on the bus's futex words and
// signal a private eventfd: one for the server's mailbox (if it serves), one
// for the outcomes of this process's calls. Idle, they sleep in the kernel
// with no timeout: an idle embedded service uses no CPU. Timers run only
// while there is something to watch: with calls in flight the call waiter
// wakes at their deadlines and every kParkRecheckInterval to ask the kernel
// whether their servers live (server_crashed in bounded time); with records
// queued but blocked (a dead producer's claim, partitions of a dead or
// leaving sibling) the server waiter looks again each interval.
//
// The serving thread must call serve_one with a deadline of now (it never
// parks itself; the waiter thread parks for it). Keep the Server where it is
// (not moved) while its Readiness lives.
//
//   auto ready = shmbus::Readiness::create(bus, &server).value();
//   epoll_ctl(ep, EPOLL_CTL_ADD, ready.fd(), &event{EPOLLIN});
//   ... on EPOLLIN for ready.fd():
//   ready.drain();                                           // first: re-arms the waiters
//   while (server.serve_one(handler, shmbus::Clock::now())) {}   // never blocks
//   for (auto& call : calls) if (auto r = call.poll(); r || r.error() != shmbus::Errc::empty) …
//
// The descriptor is level-like: after drain() it becomes readable again as
// long as the mailbox holds a record or a call has an outcome not collected.
// It may be readable with nothing to do (a signal raised just before your
// last look): readiness can be spurious, never missing.
#pragma once

#include <memory>

#include "shmbus/bus.hpp"
#include "shmbus/server.hpp"

namespace shmbus {

class Readiness {
 public:
  // Readiness::create()
  //
  // Watches `server`'s mailbox (if not null) and this process's calls.
  // `server` must outlive the Readiness. Fails with system_error (eventfd or
  // thread creation failed).
  [[nodiscard]] static Result<Readiness> create(Bus& bus, Server* server);

  Readiness(Readiness&&) noexcept;
  Readiness& operator=(Readiness&&) noexcept;
  // Stops and joins the waiter threads, closes the descriptor.
  ~Readiness();

  // Readable (EPOLLIN) when there may be work. Owned by the Readiness.
  [[nodiscard]] int fd() const noexcept;
  // Consumes the readable state; call it before looking at the bus, so work
  // that arrives while you look makes the descriptor readable again.
  void drain() noexcept;

 private:
  struct State;
  explicit Readiness(std::unique_ptr<State> state) noexcept;
  std::unique_ptr<State> state_;
};

}  // namespace shmbus
