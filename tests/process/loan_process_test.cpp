// Loans between real processes, with servers and senders killed midway:
// every accepted cast is read whole, and afterwards every block is back in
// the pool (layout/blobs.hpp: a holder that dies gives back what it held).
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

std::set<std::uint64_t> ids_after(const std::string& output, const std::string& prefix) {
  std::set<std::uint64_t> ids;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix + " ", 0) != 0) continue;
    std::istringstream words(line.substr(prefix.size()));
    for (std::uint64_t id = 0; words >> id;) ids.insert(id);
  }
  return ids;
}

bool every_block_free(Bus& bus) {
  (void)bus.reclaim_dead();
  auto pool = bus.blob_pool();
  if (!pool) return false;
  for (const auto& c : *pool) {
    if (c.free != c.count) return false;
  }
  return true;
}

std::string pool_text(Bus& bus) {
  std::string text;
  const auto pool = bus.blob_pool().value();
  for (const auto& c : pool) {
    text += std::to_string(c.block_size) + ": free " + std::to_string(c.free) + "/" +
            std::to_string(c.count) + " loaned " + std::to_string(c.loaned) + " in flight " +
            std::to_string(c.in_flight) + " reclaimed " + std::to_string(c.reclaimed) + "; ";
  }
  return text;
}

TEST(LoanProcess, TenThousandLoansThroughAPoolWithKillsLeaveEveryBlockFree) {
  CreateOptions options;
  // 64 MiB of payload needs a little more than 64 MiB: classes are whole pages.
  options.blob_classes = {{64u << 10, 64}, {1u << 20, 24}, {(64u << 20) + 4096, 2}};
  auto bus = test::ScopedBus::create(options);
  const std::string name = bus.name();
  const long per_sender = test::scaled(2500);
  const long big = test::scaled(2500) >= 2500 ? 3 : 1;

  std::vector<test::Child> servers;
  for (int i = 0; i < 3; ++i) {
    servers.push_back(test::Child::spawn("loan_server", {"--bus", name}));
    ASSERT_TRUE(test::wait_until(10s, [&] { return servers.back().printed("ready"); }))
        << servers.back().output();
  }
  std::vector<test::Child> senders;
  for (int s = 1; s <= 4; ++s) {
    senders.push_back(test::Child::spawn(
        "loan_sender", {"--bus", name, "--count", std::to_string(per_sender), "--seed",
                        std::to_string(s), "--big", std::to_string(big)}));
  }
  // Midway: kill -9 a server (its record is redelivered to a sibling) and a
  // sender (its loans, written or in flight, go back), and add a server.
  ASSERT_TRUE(test::wait_until(60s, [&] {
    return ids_after(senders[0].output(), "sent").size() >= static_cast<std::size_t>(per_sender / 3);
  })) << senders[0].output();
  servers[0].kill_9();
  senders[3].kill_9();
  servers.push_back(test::Child::spawn("loan_server", {"--bus", name}));
  ASSERT_TRUE(test::wait_until(60s, [&] {
    return ids_after(senders[1].output(), "sent").size() >= static_cast<std::size_t>(per_sender / 2);
  })) << senders[1].output();
  servers[1].kill_9();
  senders[2].kill_9();
  servers.push_back(test::Child::spawn("loan_server", {"--bus", name}));

  // Keep reading every child's output while we wait: a server blocked on a
  // full pipe would stall the run.
  auto drain = [&] {
    for (auto& server : servers) (void)server.output();
  };
  for (int s = 0; s < 2; ++s) {
    EXPECT_TRUE(test::wait_until(120s, [&] {
      drain();
      return senders[s].printed("done") || senders[s].printed("error");
    })) << senders[s].output();
    EXPECT_EQ(senders[s].wait(10s), 0) << senders[s].output();
  }
  for (auto& sender : senders) (void)sender.wait(10s);
  auto service = bus->service("blobs").value();
  ASSERT_TRUE(test::wait_until(60s, [&] {
    drain();
    return service.depth() == 0;
  })) << "depth " << service.depth();
  std::set<std::uint64_t> got;
  for (std::size_t i = 0; i < servers.size(); ++i) {
    if (i >= 2) {
      ::kill(servers[i].pid(), SIGTERM);
      EXPECT_EQ(servers[i].wait(30s), 0) << servers[i].output();
      EXPECT_TRUE(servers[i].printed("torn 0")) << servers[i].output();
    }
    for (auto id : ids_after(servers[i].output(), "got")) got.insert(id);
  }
  // Every cast a sender was told was accepted was read whole by some server
  // (the killed ones reported theirs before they died).
  std::size_t accepted = 0;
  std::vector<std::uint64_t> missing;
  for (auto& sender : senders) {
    for (auto id : ids_after(sender.output(), "sent")) {
      ++accepted;
      if (!got.contains(id)) missing.push_back(id);
    }
  }
  EXPECT_GE(accepted, static_cast<std::size_t>(2 * per_sender));
  EXPECT_TRUE(missing.empty()) << missing.size() << " accepted casts never handled, e.g. "
                               << (missing.empty() ? 0 : missing.front());
  EXPECT_TRUE(test::wait_until(10s, [&] { return every_block_free(bus.bus()); })) << pool_text(bus.bus());
}

}  // namespace
}  // namespace shmbus
