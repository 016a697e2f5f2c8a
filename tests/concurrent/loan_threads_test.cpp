// Loans between threads of one process: two sender threads loan blocks of
// 64 B … 64 KiB (from a pool large enough that no loan waits, and from one so
// small that loans wait for blocks freed by the servers), two server threads (two Servers of one service, each
// serve() in its own thread) read them in place. Every payload is checked
// byte for byte, every cast arrives once, and afterwards every block is free.
// The ThreadSanitizer workhorse for loans.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "shmbus/server.hpp"
#include "support/loan_pattern.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

constexpr const char* kService = "frames";

struct CheckingHandler : Handler {
  std::vector<std::uint64_t> ids;
  std::uint64_t torn = 0, not_loaned = 0, redelivered = 0;
  std::atomic<std::uint64_t>* progress = nullptr;
  void handle_call(const Request&, ReplyWriter&) override { ++torn; }
  void handle_cast(const Request& request) override {
    if (!request.info().loaned) ++not_loaned;
    if (request.info().redelivered) ++redelivered;
    if (auto id = test::check_loan_payload(request.payload())) {
      ids.push_back(*id);
    } else {
      ++torn;
    }
    progress->fetch_add(1, std::memory_order_relaxed);
  }
};

// `blocks` per class (4, 16, 64 KiB); with 8, the senders outrun the servers
// and loans wait for blocks; with 24 (mailbox 16 + 2 being read + 2 being
// written, whatever the sizes) no loan ever waits.
void two_senders_two_servers(std::uint32_t blocks, bool loans_wait) {
  CreateOptions options;
  options.max_processes = 8;
  options.state_capacity = 1u << 20;
  options.blob_classes = {{4096, blocks}, {16384, blocks}, {65536, blocks}};
  auto bus = test::ScopedBus::create(options);
  ServiceOptions service_options;
  service_options.mailbox_capacity = 16;
  ASSERT_TRUE(bus->register_service(kService, service_options));

  const long per_sender = test::scaled(10000);
  std::atomic<std::uint64_t> progress{0};
  std::atomic<int> started{0};
  std::atomic<bool> stop{false};
  CheckingHandler handlers[2];
  std::thread servers[2];
  for (int s = 0; s < 2; ++s) {
    handlers[s].progress = &progress;
    servers[s] = std::thread([&, s] {
      auto server = Server::start(bus.bus(), kService, service_options);
      if (!server) {
        ADD_FAILURE() << "server " << s << ": " << server.error().message();
        started.fetch_add(1);
        return;
      }
      started.fetch_add(1);
      // serve() returns after stop(); stop() comes from this thread so the
      // Server is never touched by another thread after it is gone.
      std::thread stopper([&] {
        stop.wait(false);  // blocks until the main thread flips it (no polling)
        server->stop();
      });
      (void)server->serve(handlers[s]);
      stopper.join();
    });
  }
  ASSERT_TRUE(test::wait_until(10s, [&] { return started.load() == 2; }));

  std::atomic<std::uint64_t> send_failures{0};
  std::thread senders[2];
  for (int t = 0; t < 2; ++t) {
    senders[t] = std::thread([&, t] {
      auto service = bus->service(kService);
      if (!service) {
        send_failures.fetch_add(1);
        return;
      }
      std::mt19937_64 random(static_cast<std::uint64_t>(t + 1));
      std::uniform_real_distribution<double> log_size(std::log(64.0), std::log(65536.0));
      for (long i = 0; i < per_sender; ++i) {
        const auto id = static_cast<std::uint64_t>(t) * 1'000'000 + static_cast<std::uint64_t>(i);
        const auto size = std::clamp<std::size_t>(
            static_cast<std::size_t>(std::exp(log_size(random))), 64, 65536);
        auto loan = bus->loan(size, {.deadline = deadline_in(10s)});
        if (!loan) {
          send_failures.fetch_add(1);
          return;
        }
        test::fill_loan_payload(loan->payload(), id);
        if (!service->cast(std::move(*loan), {.deadline = deadline_in(10s)})) {
          send_failures.fetch_add(1);
          return;
        }
      }
    });
  }
  for (auto& t : senders) t.join();
  EXPECT_EQ(send_failures.load(), 0u);
  const auto expected = static_cast<std::uint64_t>(2 * per_sender);
  EXPECT_TRUE(test::wait_until(20s, [&] { return progress.load() >= expected; }))
      << progress.load() << " of " << expected << " casts handled";
  stop.store(true);
  stop.notify_all();
  for (auto& t : servers) t.join();

  std::vector<std::uint64_t> all;
  for (auto& h : handlers) {
    EXPECT_EQ(h.torn, 0u) << "payloads not whole";
    EXPECT_EQ(h.not_loaned, 0u);
    EXPECT_EQ(h.redelivered, 0u);
    all.insert(all.end(), h.ids.begin(), h.ids.end());
  }
  EXPECT_GT(handlers[0].ids.size() + handlers[1].ids.size(), 0u);
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "a cast handled twice";
  EXPECT_EQ(all.size(), expected);

  // Every block is back, none of them lost. (`reclaimed` may be non-zero
  // although nobody died: a server thread preempted between its cell's
  // release and its block's free leaves a record that is gone, and a reaper
  // of another thread — a parked loaner, the other server — frees the block
  // first; the receiver's own free then finds another word and does nothing.)
  const auto pool = bus->blob_pool().value();
  std::uint64_t exhausted = 0;
  for (const auto& c : pool) {
    EXPECT_EQ(c.free, c.count) << c.block_size << ": loaned " << c.loaned << " in flight "
                               << c.in_flight << " reclaimed " << c.reclaimed;
    exhausted += c.exhausted;
  }
  if (!loans_wait) {
    EXPECT_EQ(exhausted, 0u) << "a loan waited: the pool is smaller than the test assumes";
  }
}

TEST(LoanThreads, TwoSendersAndTwoServerThreadsEveryPayloadWholeOnceThenEveryBlockFree) {
  two_senders_two_servers(24, false);
}

// The same with loans waiting for blocks the servers free (the pool's futex).
// Not under ThreadSanitizer: a loaner that parked runs the reaper, which
// reads ring cells through its own mapping of the mailbox (BlobPool::
// service_mailbox); a server thread preempted between its cell's release and
// its block's free then has its block freed by that reaper and loaned again,
// and TSan, blind to the release/acquire on the aliased cell word, reports
// the next writer of the block as racing with the server's earlier reads.
TEST(LoanThreads, LoansThatWaitForBlocksFreedByServerThreadsEveryPayloadWholeOnce) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the reaper's aliased mapping of the ring is invisible to TSan";
#endif
  two_senders_two_servers(8, true);
}

}  // namespace
}  // namespace shmbus
