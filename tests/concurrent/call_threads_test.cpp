// Calls and casts between threads of one process: the call-slot state machine
// under ThreadSanitizer (servers and callers are threads, the slots and the
// pool mailbox the same shared memory as between processes).
#include <gtest/gtest.h>

#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "support/scoped_bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/readiness.hpp"
#include "shmbus/server.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

std::span<const std::byte> bytes_of(const std::uint64_t& value) {
  return {reinterpret_cast<const std::byte*>(&value), sizeof value};
}

// Replies with the request + 1; counts casts.
struct Incrementer : Handler {
  std::atomic<std::uint64_t> casts{0};
  void handle_call(const Request& request, ReplyWriter& reply) override {
    std::uint64_t value = 0;
    std::memcpy(&value, request.payload().data(), sizeof value);
    ++value;
    (void)reply.assign(bytes_of(value));
  }
  void handle_cast(const Request&) override { casts.fetch_add(1); }
};

TEST(CallThreads, EveryCallGetsItsOwnReply) {
  auto bus = test::ScopedBus::create();
  auto server = Server::start(bus.bus(), "inc", {});
  ASSERT_TRUE(server) << server.error().message();
  Incrementer handler;
  std::thread serving([&] { (void)server->serve(handler); });
  auto service = bus->service("inc");
  ASSERT_TRUE(service) << service.error().message();
  const long calls = test::scaled(2000);
  std::vector<std::thread> callers;
  std::atomic<long> wrong{0};
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (long i = 0; i < calls; ++i) {
        const std::uint64_t value = static_cast<std::uint64_t>(t) << 32 | static_cast<std::uint64_t>(i);
        auto reply = service->call(bytes_of(value), {.deadline = deadline_in(10s)});
        std::uint64_t got = 0;
        if (reply && reply->payload().size() == sizeof got) {
          std::memcpy(&got, reply->payload().data(), sizeof got);
        }
        if (!reply || got != value + 1) wrong.fetch_add(1);
      }
    });
  }
  for (auto& c : callers) c.join();
  server->stop();
  serving.join();
  EXPECT_EQ(wrong.load(), 0);
  const ServerCounters counters = server->counters();
  EXPECT_EQ(counters.calls, static_cast<std::uint64_t>(4 * calls));
  EXPECT_EQ(counters.replies, static_cast<std::uint64_t>(4 * calls));
  std::uint64_t sampled = 0;
  for (const auto n : counters.latency) sampled += n;
  EXPECT_EQ(sampled, counters.calls / 8) << "one handler time in 8 is sampled";
  EXPECT_GT(latency_quantile(counters, 0.5).count(), 0);
  EXPECT_LE(latency_quantile(counters, 0.5), latency_quantile(counters, 0.99));
}

TEST(CallThreads, CastsAreAllHandled) {
  auto bus = test::ScopedBus::create();
  auto server = Server::start(bus.bus(), "inc", {});
  ASSERT_TRUE(server) << server.error().message();
  Incrementer handler;
  std::thread serving([&] { (void)server->serve(handler); });
  auto service = bus->service("inc");
  ASSERT_TRUE(service);
  const long casts = test::scaled(5000);
  for (long i = 0; i < casts; ++i) {
    const std::uint64_t value = static_cast<std::uint64_t>(i);
    ASSERT_TRUE(service->cast(bytes_of(value), {.deadline = deadline_in(10s)}));
  }
  const auto until = deadline_in(10s);
  while (handler.casts.load() < static_cast<std::uint64_t>(casts) && Clock::now() < until) {
    std::this_thread::yield();
  }
  server->stop();
  serving.join();
  EXPECT_EQ(handler.casts.load(), static_cast<std::uint64_t>(casts));
}

}  // namespace
}  // namespace shmbus

namespace shmbus {
namespace {

// Checks that each key's casts arrive in the order sent, one at a time.
struct KeyOrder : Handler {
  explicit KeyOrder(std::vector<std::atomic<std::uint64_t>>& next) : next_(next) {}
  void handle_call(const Request&, ReplyWriter&) override {}
  void handle_cast(const Request& request) override {
    std::uint64_t word = 0;
    std::memcpy(&word, request.payload().data(), sizeof word);
    const std::uint64_t key = word >> 32, seq = word & 0xffffffff;
    std::uint64_t expected = seq;
    if (!next_[key].compare_exchange_strong(expected, seq + 1)) out_of_order.fetch_add(1);
    handled.fetch_add(1);
  }
  std::vector<std::atomic<std::uint64_t>>& next_;
  std::atomic<std::uint64_t> out_of_order{0};
  std::atomic<std::uint64_t> handled{0};
};

TEST(CallThreads, KeyedCastsKeepPerKeyOrderAcrossServersJoiningAndLeaving) {
  auto bus = test::ScopedBus::create();
  const ServiceOptions options{.mailbox_capacity = 256, .partitions = 8};
  constexpr std::uint64_t kKeys = 64;
  std::vector<std::atomic<std::uint64_t>> next(kKeys);
  KeyOrder handler(next);
  auto run_server = [&](std::atomic<bool>& stop) {
    auto server = Server::start(bus.bus(), "keyed", options);
    if (!server) return;
    while (!stop.load()) (void)server->serve_one(handler, deadline_in(5ms));
  };
  std::atomic<bool> stop_all{false}, stop_one{false};
  std::thread steady([&] { run_server(stop_all); });
  std::thread leaver([&] { run_server(stop_one); });
  ASSERT_TRUE(bus->register_service("keyed", options));
  auto service = bus->service("keyed");
  ASSERT_TRUE(service) << service.error().message();
  const long rounds = test::scaled(200);
  std::thread joiner;
  for (long seq = 0; seq < rounds; ++seq) {
    if (seq == rounds / 3) stop_one.store(true);
    if (seq == rounds / 2) joiner = std::thread([&] { run_server(stop_all); });
    for (std::uint64_t key = 0; key < kKeys; ++key) {
      const std::uint64_t word = key << 32 | static_cast<std::uint64_t>(seq);
      ASSERT_TRUE(service->cast(bytes_of(word), {.deadline = deadline_in(10s), .key = key}));
    }
  }
  const auto total = static_cast<std::uint64_t>(rounds) * kKeys;
  const auto until = deadline_in(20s);
  while (handler.handled.load() < total && Clock::now() < until) std::this_thread::yield();
  stop_all.store(true);
  steady.join();
  leaver.join();
  joiner.join();
  EXPECT_EQ(handler.handled.load(), total);
  EXPECT_EQ(handler.out_of_order.load(), 0u);
}

}  // namespace
}  // namespace shmbus

namespace shmbus {
namespace {

// Waits for `fd` to become readable, up to `timeout`.
bool readable_within(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

TEST(CallThreads, AClosedServiceRefusesNewMessagesWhileItsServerDrainsTheQueue) {
  auto bus = test::ScopedBus::create();
  auto server = Server::start(bus.bus(), "inc", {});
  ASSERT_TRUE(server) << server.error().message();
  auto service = bus->service("inc");
  ASSERT_TRUE(service) << service.error().message();
  const std::uint64_t value = 1;
  constexpr int kQueued = 10;
  for (int i = 0; i < kQueued; ++i) ASSERT_TRUE(service->cast(bytes_of(value)));
  ASSERT_TRUE(bus->close_service("inc"));
  ASSERT_TRUE(bus->close_service("inc")) << "closing twice is a no-op";
  EXPECT_EQ(bus->close_service("nope").error().code, Errc::no_such_service);
  // Refused before anything is sent: the queue holds only what came before.
  EXPECT_EQ(service->cast(bytes_of(value)).error(), Errc::stopped);
  EXPECT_EQ(service->call(bytes_of(value), {.deadline = deadline_in(1s)}).error(), Errc::stopped);
  auto infos = bus->services();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_TRUE(infos[0].closed);
  EXPECT_EQ(infos[0].depth, static_cast<std::uint64_t>(kQueued));
  EXPECT_EQ(infos[0].outcomes[static_cast<std::size_t>(Errc::stopped)], 2u);
  // The server still takes what was queued before the close.
  Incrementer handler;
  while (server->serve_one(handler, deadline_in(100ms))) {
  }
  EXPECT_EQ(handler.casts.load(), static_cast<std::uint64_t>(kQueued));
  EXPECT_EQ(bus->services()[0].depth, 0u);
}

TEST(ReadinessThreads, ACallsDeadlineMakesTheDescriptorReadableWithNoServer) {
  auto bus = test::ScopedBus::create();
  ASSERT_TRUE(bus->register_service("nobody", {}));
  auto service = bus->service("nobody");
  ASSERT_TRUE(service);
  auto ready = Readiness::create(bus.bus(), nullptr);
  ASSERT_TRUE(ready) << ready.error().message();
  const std::uint64_t value = 1;
  auto pending = service->send_request(bytes_of(value), {.deadline = deadline_in(100ms)});
  ASSERT_TRUE(pending);
  ASSERT_TRUE(readable_within(ready->fd(), 5s)) << "the deadline was never signalled";
  ready->drain();
  auto outcome = pending->poll();
  if (!outcome && outcome.error() == Errc::empty) {  // signalled just before the deadline
    ASSERT_TRUE(readable_within(ready->fd(), 5s));
    outcome = pending->poll();
  }
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error(), Errc::timeout_not_started);
}

// An event loop on one thread serves a keyed service and calls it, woken
// only by the Readiness descriptor; producers on other threads cast to it.
TEST(ReadinessThreads, AKeyedServerServesAndCallsFromItsLoop) {
  auto bus = test::ScopedBus::create();
  const ServiceOptions options{.partitions = 4};
  auto server = Server::start(bus.bus(), "keyed", options);
  ASSERT_TRUE(server) << server.error().message();
  auto service = bus->service("keyed");
  ASSERT_TRUE(service);
  auto ready = Readiness::create(bus.bus(), &*server);
  ASSERT_TRUE(ready) << ready.error().message();
  Incrementer handler;
  const long casts = test::scaled(2000);
  std::thread producer([&] {
    for (long i = 0; i < casts; ++i) {
      const std::uint64_t v = static_cast<std::uint64_t>(i);
      (void)service->cast(bytes_of(v), {.deadline = deadline_in(10s), .key = v % 16});
    }
  });
  std::vector<PendingCall> calls;
  for (std::uint64_t i = 0; i < 16; ++i) {
    auto pending = service->send_request(bytes_of(i), {.deadline = deadline_in(10s), .key = i});
    ASSERT_TRUE(pending);
    calls.push_back(std::move(*pending));
  }
  std::size_t replied = 0;
  const auto until = deadline_in(20s);
  while ((replied < calls.size() || handler.casts.load() < static_cast<std::uint64_t>(casts)) &&
         Clock::now() < until) {
    if (!readable_within(ready->fd(), 1s)) continue;
    ready->drain();
    while (server->serve_one(handler, Clock::now())) {
    }
    for (auto& call : calls) {
      auto reply = call.poll();
      if (reply) ++replied;
    }
  }
  producer.join();
  EXPECT_EQ(replied, calls.size());
  EXPECT_EQ(handler.casts.load(), static_cast<std::uint64_t>(casts));
}

}  // namespace
}  // namespace shmbus
