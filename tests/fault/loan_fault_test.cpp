// Loans with a real process killed (SIGKILL) at one step of the block state
// machine (layout/blobs.hpp, "Crash"), and what a user relies on asserted:
//
//   loan_before_commit            sender: the block is the record's, the cell only
//                                 claimed. reclaim_dead() frees the block; a server
//                                 started later skips the claim (sender_aborted) and
//                                 serves the next cast.
//   ring_after_claim / holding    sender with an unsent Loan: the block goes back.
//   server_in_cast                a server reading a loaned cast: a sibling gets the
//                                 same block, whole, marked redelivered; then it is free.
//   receiver_before_loan_free     cell released, block not freed: the dead process
//                                 freed nothing, reclaim_dead() does; handled once.
//   max_deliveries deaths         the cast moves to the dead letters with its block,
//                                 readable there; done() frees the block.
//   loan_dead_letter_before_commit  block moved to the copy, copy not committed (a
//                                 second death in one cast's life): no block lost, no
//                                 garbage read, the cast counted dead_letters_dropped.
//   caller holding a loaned reply  the slot holds the block; once the caller is
//                                 reaped, the block goes back with the slot.
//
// The test process is the sender where the sender does not die, and the
// sibling server (in-process) where the payload's address can be compared
// with the one written: the very block, not a copy.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "shmbus/server.hpp"
#include "support/child.hpp"
#include "support/loan_pattern.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::Child;

constexpr const char* kService = "blobs";
constexpr std::uint32_t kCapacity = 64;
constexpr std::size_t kSmall = 3000;   // class 0 (4 KiB)
constexpr std::size_t kLarge = 40000;  // class 1 (64 KiB)

CreateOptions loan_bus() {
  CreateOptions options;
  options.max_processes = 32;
  options.state_capacity = 1u << 20;
  options.blob_classes = {{4096, 4}, {65536, 2}};
  return options;
}

ServiceOptions loan_service(std::uint32_t max_deliveries = 3) {
  ServiceOptions options;
  options.mailbox_capacity = kCapacity;
  options.max_deliveries = max_deliveries;
  return options;
}

// The flags a child server needs to register the very same options.
std::vector<std::string> server_args(test::ScopedBus& bus, std::uint32_t max_deliveries,
                                     const char* stop_at) {
  std::vector<std::string> args{"--bus", bus.name(), "--service", kService, "--capacity",
                                std::to_string(kCapacity), "--max-deliveries",
                                std::to_string(max_deliveries)};
  if (stop_at != nullptr) args.insert(args.end(), {"--stop-at", stop_at});
  return args;
}

Child spawn_server(test::ScopedBus& bus, std::uint32_t max_deliveries, const char* stop_at) {
  Child child = Child::spawn("loan_server", server_args(bus, max_deliveries, stop_at));
  EXPECT_TRUE(test::wait_until(10s, [&] { return child.printed("ready"); })) << child.output();
  return child;
}

bool reached(Child& child, const char* point) {
  return test::wait_until(10s, [&] { return child.reached(point); });
}

std::vector<BlobClassInfo> pool(Bus& bus) { return bus.blob_pool().value(); }

bool all_free(Bus& bus) {
  for (const auto& c : pool(bus)) {
    if (c.free != c.count) return false;
  }
  return true;
}

std::uint64_t reclaimed(Bus& bus) {
  std::uint64_t n = 0;
  for (const auto& c : pool(bus)) n += c.reclaimed;
  return n;
}

std::string pool_text(Bus& bus) {
  std::string text;
  for (const auto& c : pool(bus)) {
    text += std::to_string(c.block_size) + ": free " + std::to_string(c.free) + "/" +
            std::to_string(c.count) + " loaned " + std::to_string(c.loaned) + " in flight " +
            std::to_string(c.in_flight) + " reclaimed " + std::to_string(c.reclaimed) + "; ";
  }
  return text;
}

ServiceInfo service_info(Bus& bus) {
  for (auto& s : bus.services()) {
    if (s.name == kService) return s;
  }
  ADD_FAILURE() << "service " << kService << " not listed";
  return {};
}

std::size_t count_lines(const std::string& output, const std::string& line) {
  std::size_t n = 0;
  std::istringstream lines(output);
  for (std::string l; std::getline(lines, l);) n += l == line ? 1 : 0;
  return n;
}

// A loan of `size` bytes holding id's pattern; `written` gets its address.
Loan loan_of(Bus& bus, std::size_t size, std::uint64_t id, const std::byte** written = nullptr) {
  auto loan = bus.loan(size);
  EXPECT_TRUE(loan) << to_string(loan.error());
  test::fill_loan_payload(loan->payload(), id);
  if (written != nullptr) *written = loan->payload().data();
  return std::move(*loan);
}

void cast_loan(Bus& bus, std::size_t size, std::uint64_t id, const std::byte** written = nullptr) {
  auto service = bus.service(kService);
  ASSERT_TRUE(service) << service.error().message();
  auto accepted = service->cast(loan_of(bus, size, id, written));
  ASSERT_TRUE(accepted) << to_string(accepted.error());
}

// What an in-process server saw of each cast.
struct Seen {
  std::optional<std::uint64_t> id;  // nullopt: not whole
  const std::byte* data = nullptr;
  std::size_t size = 0;
  RecordInfo info;
};

struct Checker : Handler {
  std::vector<Seen> casts;
  void handle_call(const Request&, ReplyWriter&) override { ADD_FAILURE() << "a call"; }
  void handle_cast(const Request& request) override {
    casts.push_back({test::check_loan_payload(request.payload()), request.payload().data(),
                     request.payload().size(), request.info()});
  }
};

// Kills `child`, which holds one block of class `cls` (as a loan or in a
// record it never committed), and checks the reaper gives exactly that back.
void kill_and_expect_its_block_back(test::ScopedBus& bus, Child& child, std::size_t cls) {
  child.kill_9();
  EXPECT_EQ(child.wait(), 128 + SIGKILL);
  (void)bus->reclaim_dead();
  EXPECT_TRUE(all_free(bus.bus())) << pool_text(bus.bus());
  EXPECT_EQ(pool(bus.bus())[cls].reclaimed, 1u) << pool_text(bus.bus());
}

// A server started after the sender died skips the dead claim and serves the
// next cast: only that one (id 2) reaches its handler, whole.
void expect_a_later_server_skips_the_claim_and_serves(test::ScopedBus& bus) {
  auto server = Server::start(bus.bus(), kService, loan_service());
  ASSERT_TRUE(server) << server.error().message();
  const std::byte* written = nullptr;
  cast_loan(bus.bus(), kLarge, 2, &written);
  Checker checker;
  ASSERT_TRUE(server->serve_one(checker, deadline_in(5s)));
  ASSERT_EQ(checker.casts.size(), 1u);
  EXPECT_EQ(checker.casts[0].id, 2u) << "the dead sender's record was delivered";
  EXPECT_EQ(checker.casts[0].data, written);
  EXPECT_TRUE(checker.casts[0].info.loaned);
  EXPECT_FALSE(checker.casts[0].info.redelivered);
  const ServiceInfo info = service_info(bus.bus());
  EXPECT_GE(info.mailboxes.sender_aborted, 1u) << "the dead sender's claim was not skipped";
  EXPECT_EQ(info.depth, 0u);
  EXPECT_EQ(server->counters().casts, 1u);
  EXPECT_TRUE(all_free(bus.bus())) << "done() did not free the block: " << pool_text(bus.bus());
}

TEST(LoanFault, SenderKilledBeforeCommitLosesNoBlockAndItsClaimIsSkipped) {
  auto bus = test::ScopedBus::create(loan_bus());
  ASSERT_TRUE(bus->register_service(kService, loan_service()));
  Child sender = Child::spawn("loan_one", {"--bus", bus.name(), "--id", "1", "--size",
                                           std::to_string(kSmall), "--stop-at", "loan_before_commit"});
  ASSERT_TRUE(reached(sender, "loan_before_commit")) << sender.output();
  // The block is the record's now, the record's cell only claimed by a live
  // sender: the reaper leaves it alone.
  (void)bus->reclaim_dead();
  EXPECT_EQ(pool(bus.bus())[0].in_flight, 1u) << pool_text(bus.bus());
  kill_and_expect_its_block_back(bus, sender, 0);
  expect_a_later_server_skips_the_claim_and_serves(bus);
}

TEST(LoanFault, SenderKilledAfterClaimingACellWithItsLoanUnsentLosesNoBlock) {
  auto bus = test::ScopedBus::create(loan_bus());
  ASSERT_TRUE(bus->register_service(kService, loan_service()));
  Child sender = Child::spawn("loan_one", {"--bus", bus.name(), "--id", "1", "--size",
                                           std::to_string(kSmall), "--stop-at", "ring_after_claim"});
  ASSERT_TRUE(reached(sender, "ring_after_claim")) << sender.output();
  ASSERT_TRUE(sender.printed("loaned ")) << sender.output();
  (void)bus->reclaim_dead();
  EXPECT_EQ(pool(bus.bus())[0].loaned, 1u) << "a live sender's loan was taken: " << pool_text(bus.bus());
  kill_and_expect_its_block_back(bus, sender, 0);
  expect_a_later_server_skips_the_claim_and_serves(bus);
}

TEST(LoanFault, ProcessKilledHoldingALoanItNeverSentLosesNoBlock) {
  auto bus = test::ScopedBus::create(loan_bus());
  ASSERT_TRUE(bus->register_service(kService, loan_service()));
  Child holder = Child::spawn("loan_one", {"--bus", bus.name(), "--id", "1", "--size",
                                           std::to_string(kLarge), "--hold", "1"});
  ASSERT_TRUE(test::wait_until(10s, [&] { return holder.printed("holding "); })) << holder.output();
  (void)bus->reclaim_dead();
  EXPECT_EQ(pool(bus.bus())[1].loaned, 1u) << "a live holder's loan was taken: " << pool_text(bus.bus());
  holder.kill_9();
  EXPECT_EQ(holder.wait(), 128 + SIGKILL);
  EXPECT_EQ(pool(bus.bus())[1].loaned, 1u) << "freed before any reaper ran?";

  (void)bus->reclaim_dead();
  EXPECT_TRUE(all_free(bus.bus())) << pool_text(bus.bus());
  EXPECT_EQ(pool(bus.bus())[1].reclaimed, 1u) << pool_text(bus.bus());
  // And the block is loanable again: both 64 KiB blocks at once.
  auto a = bus->loan(kLarge);
  auto b = bus->loan(kLarge);
  EXPECT_TRUE(a && b);
}

TEST(LoanFault, ServerKilledReadingALoanedCastLeavesTheSameBlockWholeToASibling) {
  auto bus = test::ScopedBus::create(loan_bus());
  ASSERT_TRUE(bus->register_service(kService, loan_service()));
  Child doomed = spawn_server(bus, 3, "server_in_cast");
  ASSERT_FALSE(HasFailure());
  const std::byte* written = nullptr;
  cast_loan(bus.bus(), kLarge, 7, &written);
  ASSERT_TRUE(reached(doomed, "server_in_cast")) << doomed.output();
  doomed.kill_9();
  EXPECT_EQ(doomed.wait(), 128 + SIGKILL);
  // The record, taken by a dead server, still holds its block: the reaper
  // must not free what will be redelivered.
  (void)bus->reclaim_dead();
  EXPECT_EQ(pool(bus.bus())[1].in_flight, 1u) << pool_text(bus.bus());

  auto sibling = Server::start(bus.bus(), kService, loan_service());
  ASSERT_TRUE(sibling) << sibling.error().message();
  Checker checker;
  ASSERT_TRUE(sibling->serve_one(checker, deadline_in(5s)));
  ASSERT_EQ(checker.casts.size(), 1u);
  const Seen& seen = checker.casts[0];
  EXPECT_EQ(seen.id, 7u) << "not the payload sent, whole";
  EXPECT_EQ(seen.data, written) << "not the very block written";
  EXPECT_EQ(seen.size, kLarge);
  EXPECT_TRUE(seen.info.loaned);
  EXPECT_EQ(seen.info.ref_error, Errc{});
  EXPECT_TRUE(seen.info.redelivered);
  EXPECT_EQ(seen.info.deliveries, 2u);
  EXPECT_FALSE(doomed.printed("got ")) << "the dead server ran its handler";
  // done() freed it; no reaper needed.
  EXPECT_TRUE(all_free(bus.bus())) << pool_text(bus.bus());
  EXPECT_EQ(reclaimed(bus.bus()), 0u) << pool_text(bus.bus());
  EXPECT_EQ(sibling->counters().redelivered, 1u);
}

TEST(LoanFault, ReceiverKilledBetweenReleaseAndFreeLeavesTheBlockToTheReaperAndRanOnce) {
  auto bus = test::ScopedBus::create(loan_bus());
  ASSERT_TRUE(bus->register_service(kService, loan_service()));
  Child doomed = spawn_server(bus, 3, "receiver_before_loan_free");
  ASSERT_FALSE(HasFailure());
  cast_loan(bus.bus(), kSmall, 9);
  ASSERT_TRUE(reached(doomed, "receiver_before_loan_free")) << doomed.output();
  doomed.kill_9();
  EXPECT_EQ(doomed.wait(), 128 + SIGKILL);
  EXPECT_EQ(count_lines(doomed.output(), "got 9"), 1u) << doomed.output();
  // The dead receiver freed nothing: the block is still in a record's name.
  EXPECT_EQ(pool(bus.bus())[0].in_flight, 1u) << pool_text(bus.bus());
  EXPECT_EQ(reclaimed(bus.bus()), 0u);

  (void)bus->reclaim_dead();
  EXPECT_TRUE(all_free(bus.bus())) << pool_text(bus.bus());
  EXPECT_EQ(pool(bus.bus())[0].reclaimed, 1u) << pool_text(bus.bus());

  // Handled once: the cell was released, so nothing is redelivered; the next
  // server's first cast is the next one sent.
  auto sibling = Server::start(bus.bus(), kService, loan_service());
  ASSERT_TRUE(sibling) << sibling.error().message();
  cast_loan(bus.bus(), kSmall, 10);
  Checker checker;
  ASSERT_TRUE(sibling->serve_one(checker, deadline_in(5s)));
  ASSERT_EQ(checker.casts.size(), 1u);
  EXPECT_EQ(checker.casts[0].id, 10u);
  EXPECT_FALSE(checker.casts[0].info.redelivered);
  const ServiceInfo info = service_info(bus.bus());
  EXPECT_EQ(info.depth, 0u);
  EXPECT_EQ(info.mailboxes.redelivered, 0u);
  EXPECT_TRUE(all_free(bus.bus())) << pool_text(bus.bus());
}

// Drains the dead letters of the service: each one's payload id (nullopt
// when not whole), its ref_error, and whether it was loaned.
struct DeadLetter {
  std::optional<std::uint64_t> id;
  Errc ref_error = Errc{};
  bool loaned = false;
  std::size_t size = 0;
  const std::byte* data = nullptr;
  std::uint64_t deliveries = 0;
};

TEST(LoanFault, LoanedCastThatKilledMaxDeliveriesServersIsDeadLetteredWithItsBlock) {
  constexpr std::uint32_t kMaxDeliveries = 2;
  auto bus = test::ScopedBus::create(loan_bus());
  ASSERT_TRUE(bus->register_service(kService, loan_service(kMaxDeliveries)));
  const std::byte* written = nullptr;
  cast_loan(bus.bus(), kLarge, 11, &written);
  for (std::uint32_t death = 1; death <= kMaxDeliveries; ++death) {
    Child doomed = spawn_server(bus, kMaxDeliveries, "server_in_cast");
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(reached(doomed, "server_in_cast")) << "death " << death << ": " << doomed.output();
    doomed.kill_9();
    EXPECT_EQ(doomed.wait(), 128 + SIGKILL);
  }
  auto sibling = Server::start(bus.bus(), kService, loan_service(kMaxDeliveries));
  ASSERT_TRUE(sibling) << sibling.error().message();
  Checker checker;
  ASSERT_TRUE(sibling->serve_one(checker, deadline_in(5s)));
  EXPECT_TRUE(checker.casts.empty()) << "a cast past max_deliveries was run";
  EXPECT_EQ(sibling->counters().dead_lettered, 1u);
  EXPECT_EQ(sibling->counters().dead_letters_dropped, 0u);
  // The dead letter holds the block now: neither done() of the original nor
  // the reaper frees it.
  (void)bus->reclaim_dead();
  EXPECT_EQ(pool(bus.bus())[1].in_flight, 1u) << pool_text(bus.bus());

  auto dead = bus->dead_letters(kService);
  ASSERT_TRUE(dead) << dead.error().message();
  auto letter = dead->receive(deadline_in(2s));
  ASSERT_TRUE(letter) << to_string(letter.error());
  EXPECT_TRUE(letter->info().loaned);
  EXPECT_EQ(letter->info().ref_error, Errc{});
  EXPECT_EQ(test::check_loan_payload(letter->payload()), 11u) << "the dead letter is not whole";
  EXPECT_EQ(letter->payload().data(), written) << "the dead letter is not the very block";
  EXPECT_EQ(letter->info().correlation, kMaxDeliveries + 1) << "delivery count";
  EXPECT_EQ(pool(bus.bus())[1].in_flight, 1u);
  letter->done();
  EXPECT_TRUE(all_free(bus.bus())) << pool_text(bus.bus());
  EXPECT_EQ(reclaimed(bus.bus()), 0u) << pool_text(bus.bus());
  EXPECT_FALSE(dead->try_receive()) << "a second dead letter";
}

TEST(LoanFault, ServerKilledMidDeadLetterMoveLosesNoBlockAndCountsTheCast) {
  auto bus = test::ScopedBus::create(loan_bus());
  ASSERT_TRUE(bus->register_service(kService, loan_service(1)));
  cast_loan(bus.bus(), kLarge, 12);
  {
    Child first = spawn_server(bus, 1, "server_in_cast");  // delivery 1: dies running it
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(reached(first, "server_in_cast")) << first.output();
    first.kill_9();
    EXPECT_EQ(first.wait(), 128 + SIGKILL);
  }
  {
    // Delivery 2 > max_deliveries: the block is moved to the dead-letter
    // copy, which is claimed but not committed when the mover dies.
    Child mover = spawn_server(bus, 1, "loan_dead_letter_before_commit");
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(reached(mover, "loan_dead_letter_before_commit")) << mover.output();
    mover.kill_9();
    EXPECT_EQ(mover.wait(), 128 + SIGKILL);
  }
  // The copy was never committed: its block is an orphan, given back.
  (void)bus->reclaim_dead();
  EXPECT_TRUE(all_free(bus.bus())) << pool_text(bus.bus());

  // A third server gets the original again: its ref is stale now, so the
  // cast is counted as a dead letter dropped — never run, never garbage.
  auto sibling = Server::start(bus.bus(), kService, loan_service(1));
  ASSERT_TRUE(sibling) << sibling.error().message();
  Checker checker;
  ASSERT_TRUE(sibling->serve_one(checker, deadline_in(5s)));
  EXPECT_TRUE(checker.casts.empty()) << "a cast past max_deliveries was run";
  EXPECT_EQ(sibling->counters().dead_letters_dropped, 1u);
  EXPECT_EQ(sibling->counters().dead_lettered, 0u);

  auto dead = bus->dead_letters(kService);
  ASSERT_TRUE(dead) << dead.error().message();
  EXPECT_EQ(dead->try_receive().error(), Errc::empty) << "the uncommitted copy was delivered";
  (void)bus->reclaim_dead();
  EXPECT_TRUE(all_free(bus.bus())) << pool_text(bus.bus());
}

// A caller killed while it holds a loaned reply: the reply's block is held
// by the caller's call slot; once the caller is reaped, its slot is recycled
// and the block goes back with it.
TEST(LoanFault, CallerKilledHoldingALoanedReplyLosesNoBlock) {
  auto bus = test::ScopedBus::create(loan_bus());
  auto server = Server::start(bus.bus(), kService, loan_service());
  ASSERT_TRUE(server) << server.error().message();
  struct LoanReplier : Handler {
    Bus& bus;
    explicit LoanReplier(Bus& b) : bus(b) {}
    void handle_call(const Request&, ReplyWriter& reply) override {
      auto loan = bus.loan(kLarge);
      ASSERT_TRUE(loan);
      test::fill_loan_payload(loan->payload(), 11);
      reply.assign(std::move(*loan));
    }
    void handle_cast(const Request&) override {}
  } handler(bus.bus());
  Child caller = Child::spawn("loan_caller", {"--bus", bus.name(), "--service", kService});
  ASSERT_TRUE(server->serve_one(handler, deadline_in(10s)));
  ASSERT_TRUE(test::wait_until(10s, [&] { return caller.printed("holding " + std::to_string(kLarge)); }))
      << caller.output();
  (void)bus->reclaim_dead();
  EXPECT_EQ(pool(bus.bus())[1].in_flight, 1u) << "a live caller's reply keeps its block";
  caller.kill_9();
  (void)caller.wait();
  EXPECT_TRUE(test::wait_until(10s, [&] {
    (void)bus->reclaim_dead();
    return all_free(bus.bus());
  })) << pool_text(bus.bus());
  EXPECT_EQ(reclaimed(bus.bus()), 1u);
}

}  // namespace
}  // namespace shmbus
