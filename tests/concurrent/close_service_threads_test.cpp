// Bus::close_service racing with senders: a send that checked "open" before
// the close asks again after its claim, so it is either refused (stopped) or
// seen by the closer's next look at the queue — never queued unseen behind
// the closer's drain (a launcher then stops the servers and removes the bus).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "shmbus/client.hpp"
#include "shmbus/server.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

std::span<const std::byte> bytes_of(const std::uint64_t& value) {
  return {reinterpret_cast<const std::byte*>(&value), sizeof value};
}

struct Counter : Handler {
  std::atomic<std::uint64_t> casts{0}, calls{0};
  void handle_call(const Request&, ReplyWriter& reply) override {
    calls.fetch_add(1);
    (void)reply.assign({});
  }
  void handle_cast(const Request&) override { casts.fetch_add(1); }
};

// The sender passed its open check and waits for room in a full mailbox;
// the service is closed; a server then makes room. The sender's claim comes
// after the close: refused, and the server handles only what came before.
void refuses_a_send_waiting_for_room(bool call) {
  auto bus = test::ScopedBus::create();
  auto server = Server::start(bus.bus(), "svc", {.mailbox_capacity = 2});
  ASSERT_TRUE(server) << server.error().message();
  auto service = bus->service("svc").value();
  const std::uint64_t value = 7;
  ASSERT_TRUE(service.cast(bytes_of(value)));
  ASSERT_TRUE(service.cast(bytes_of(value)));
  std::atomic<bool> sent{false};
  Errc outcome = Errc{};
  std::thread sender([&] {
    if (call) {
      auto reply = service.call(bytes_of(value), {.deadline = deadline_in(20s)});
      outcome = reply ? Errc{} : reply.error();
    } else {
      auto cast = service.cast(bytes_of(value), {.deadline = deadline_in(20s)});
      outcome = cast ? Errc{} : cast.error();
    }
    sent.store(true);
  });
  // Past its open check: its first claim found the mailbox full (counted).
  const bool waiting = test::wait_until(10s, [&] {
    return bus->services().at(0).mailboxes.full_refusals >= 1;
  });
  EXPECT_TRUE(waiting) << "the sender never met the full mailbox";
  ASSERT_TRUE(bus->close_service("svc"));
  Counter handler;
  while (!sent.load()) (void)server->serve_one(handler, deadline_in(10ms));
  sender.join();
  while (server->serve_one(handler, deadline_in(100ms))) {
  }
  EXPECT_EQ(outcome, Errc::stopped) << "a send claimed after the close was accepted";
  EXPECT_EQ(handler.casts.load(), 2u);
  EXPECT_EQ(handler.calls.load(), 0u);
  const auto info = bus->services().at(0);
  EXPECT_EQ(info.depth, 0u);
  EXPECT_EQ(info.outcomes[static_cast<std::size_t>(Errc::stopped)], 1u);
}

TEST(CloseServiceThreads, ACastWaitingForRoomWhenTheServiceClosesIsRefused) {
  refuses_a_send_waiting_for_room(false);
}

TEST(CloseServiceThreads, ACallWaitingForRoomWhenTheServiceClosesIsRefused) {
  refuses_a_send_waiting_for_room(true);
}

}  // namespace
}  // namespace shmbus
