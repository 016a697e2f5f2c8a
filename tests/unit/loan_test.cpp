// Loans in one process: the block state machine (layout/blobs.hpp), refs that
// do not resolve, the FlatBuffers allocator, and zero copy end to end.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include <shmbus/schemas/mailer_generated.h>
#include <shmbus/schemas/mailer_reply_generated.h>

#include "blobs/blob_pool.hpp"
#include "shmbus/server.hpp"
#include "support/bus_probe.hpp"
#include "support/ring_access.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
namespace mailer = shmbus::examples::mailer;

CreateOptions small_pool() {
  CreateOptions options;
  options.blob_classes = {{4096, 2}, {64u << 10, 2}};
  return options;
}

std::uint32_t free_blocks(Bus& bus) {
  std::uint32_t free = 0;
  const auto pool = bus.blob_pool().value();
  for (const auto& c : pool) free += c.free;
  return free;
}

// Records what the handler saw: where the payload lies and what it says.
struct Recorder : Handler {
  const std::byte* seen = nullptr;
  std::size_t size = 0;
  bool loaned = false;
  std::uint8_t first = 0;
  void handle_call(const Request& request, ReplyWriter& reply) override {
    note(request);
    (void)reply.assign(request.payload().first(std::min<std::size_t>(8, request.payload().size())));
  }
  void handle_cast(const Request& request) override { note(request); }
  void note(const Request& request) {
    seen = request.payload().data();
    size = request.payload().size();
    loaned = request.info().loaned;
    first = size > 0 ? static_cast<std::uint8_t>(request.payload()[0]) : 0;
  }
};

TEST(Loan, TakesTheSmallestClassThatFitsAndGivesTheBlockBackWhenDropped) {
  auto bus = test::ScopedBus::create(small_pool());
  EXPECT_EQ(free_blocks(bus.bus()), 4u);
  {
    auto small = bus->loan(100);
    ASSERT_TRUE(small);
    EXPECT_EQ(small->bytes().size(), 4096u);
    EXPECT_EQ(small->payload().size(), 100u) << "the payload defaults to the size asked for";
    auto large = bus->loan(5000);
    ASSERT_TRUE(large);
    EXPECT_EQ(large->bytes().size(), 64u << 10);
    EXPECT_EQ(free_blocks(bus.bus()), 2u);
    const auto info = bus->blob_pool().value();
    EXPECT_EQ(info[0].loaned, 1u);
    EXPECT_EQ(info[1].loaned, 1u);
  }
  EXPECT_EQ(free_blocks(bus.bus()), 4u);
}

TEST(Loan, AFullClassSpillsIntoALargerOneThenTheEmptyPoolSaysSo) {
  auto bus = test::ScopedBus::create(small_pool());
  std::vector<Loan> held;
  for (int i = 0; i < 4; ++i) {
    auto loan = bus->loan(10);
    ASSERT_TRUE(loan) << i;
    held.push_back(std::move(*loan));
  }
  auto none = bus->loan(10);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), Errc::pool_exhausted);
  EXPECT_EQ(bus->loan(1u << 20).error(), Errc::record_too_large);
  EXPECT_GE(bus->blob_pool().value()[0].exhausted, 1u);
}

TEST(Loan, AWaitingLoanGetsTheBlockAnotherThreadFrees) {
  auto bus = test::ScopedBus::create(small_pool());
  std::vector<Loan> held;
  for (int i = 0; i < 4; ++i) held.push_back(std::move(*bus->loan(10)));
  std::atomic<bool> waiting{false};
  std::thread freer([&] {
    ASSERT_TRUE(test::wait_until(5s, [&] { return waiting.load(); }));
    held.pop_back();
  });
  waiting = true;
  auto loan = bus->loan(10, {.deadline = deadline_in(10s), .mode = WaitMode::park});
  freer.join();
  EXPECT_TRUE(loan) << to_string(loan.error());
  auto timed_out = bus->loan(10, {.deadline = deadline_in(20ms)});
  EXPECT_EQ(timed_out.error(), Errc::pool_exhausted);
}

TEST(Loan, SetPayloadStaysInsideTheBlock) {
  auto bus = test::ScopedBus::create(small_pool());
  auto loan = bus->loan(100).value();
  EXPECT_TRUE(loan.set_payload(4000, 96));
  EXPECT_EQ(loan.set_payload(4000, 97).error(), Errc::bad_options);
  EXPECT_EQ(loan.set_payload(5000, 0).error(), Errc::bad_options);
  EXPECT_EQ(loan.payload().size(), 96u) << "a refused set_payload changes nothing";
}

TEST(Loan, ACastIsReadInPlaceAndItsBlockReturnsWhenHandled) {
  auto bus = test::ScopedBus::create(small_pool());
  auto server = Server::start(bus.bus(), "frames", {});
  ASSERT_TRUE(server) << server.error().message();
  auto service = bus->service("frames").value();
  auto loan = bus->loan(3000).value();
  std::memset(loan.bytes().data(), 0x5a, 3000);
  const std::byte* written = loan.payload().data();
  ASSERT_TRUE(service.cast(std::move(loan)));
  EXPECT_TRUE(loan.empty()) << "the record holds the block now";
  EXPECT_EQ(bus->blob_pool().value()[0].in_flight, 1u);
  Recorder handler;
  ASSERT_TRUE(server->serve_one(handler, deadline_in(5s)));
  EXPECT_EQ(handler.seen, written) << "the server read the very bytes the sender wrote";
  EXPECT_EQ(handler.size, 3000u);
  EXPECT_TRUE(handler.loaned);
  EXPECT_EQ(handler.first, 0x5a);
  EXPECT_EQ(free_blocks(bus.bus()), 4u);
}

TEST(Loan, ACallWithALoanIsAnsweredAndAFailedSendKeepsTheLoan) {
  auto bus = test::ScopedBus::create(small_pool());
  ServiceOptions options;
  options.mailbox_capacity = 2;
  auto server = Server::start(bus.bus(), "frames", options);
  ASSERT_TRUE(server) << server.error().message();
  auto service = bus->service("frames").value();
  Recorder handler;
  std::thread serving([&] { (void)server->serve(handler); });
  auto loan = bus->loan(64).value();
  std::memset(loan.bytes().data(), 7, 64);
  auto reply = service.call(std::move(loan), {.deadline = deadline_in(10s)});
  ASSERT_TRUE(reply) << to_string(reply.error());
  EXPECT_EQ(static_cast<std::uint8_t>(reply->payload()[0]), 7);
  server->stop();
  serving.join();
  EXPECT_TRUE(test::wait_until(5s, [&] { return free_blocks(bus.bus()) == 4u; }));

  // Nobody serves now: fill the mailbox, then a cast that finds no room
  // leaves the loan with its sender.
  ASSERT_TRUE(service.cast(bus->loan(8).value()));
  ASSERT_TRUE(service.cast(bus->loan(8).value()));
  auto kept = bus->loan(8).value();
  EXPECT_EQ(service.cast(std::move(kept)).error(), Errc::mailbox_full);
  EXPECT_FALSE(kept.empty());
  EXPECT_EQ(service.cast(Loan(std::move(kept))).error(), Errc::mailbox_full);
}

TEST(Loan, AFlatBufferBuiltInALoanIsVerifiedInPlace) {
  auto bus = test::ScopedBus::create(small_pool());
  ServiceOptions options;
  options.schema = ServiceSchema::of<mailer::SendEmail, mailer::EmailSent>("MAIL", "MALR");
  auto server = Server::start(bus.bus(), "mailer", options);
  ASSERT_TRUE(server) << server.error().message();
  auto service = bus->service("mailer").value();

  auto loan = bus->loan(2000).value();
  const std::byte* block_end = loan.bytes().data() + loan.bytes().size();
  {
    flatbuffers::FlatBufferBuilder builder(256, &loan.allocator());
    auto email = mailer::CreateSendEmailDirect(builder, "ada@example.org", "Ada", "hello", "body");
    builder.Finish(email, "MAIL");
    const auto* start = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
    EXPECT_EQ(start + builder.GetSize(), block_end) << "the buffer ends at the block's end";
    ASSERT_TRUE(loan.set_payload(builder));
    ASSERT_TRUE(service.cast(std::move(loan)));
  }
  struct Check : Handler {
    std::string subject;
    const std::byte* where = nullptr;
    void handle_call(const Request&, ReplyWriter&) override {}
    void handle_cast(const Request& request) override {
      subject = request.root<mailer::SendEmail>()->subject()->str();
      where = request.payload().data() + request.payload().size();
    }
  } handler;
  ASSERT_TRUE(server->serve_one(handler, deadline_in(5s)));
  EXPECT_EQ(handler.subject, "hello");
  EXPECT_EQ(handler.where, block_end) << "verified where the sender built it: no copy";

  // A builder that outgrows its loan moves to the heap, and the loan refuses
  // the buffer with a typed error instead of sending half of it.
  {
    auto small = bus->loan(100).value();
    flatbuffers::FlatBufferBuilder builder(64, &small.allocator());
    const std::string body(6000, 'x');
    builder.Finish(mailer::CreateSendEmailDirect(builder, "a@b.c", "A", "big", body.c_str()), "MAIL");
    EXPECT_EQ(small.set_payload(builder).error(), Errc::record_too_large);
    flatbuffers::FlatBufferBuilder elsewhere(64);
    elsewhere.Finish(mailer::CreateSendEmailDirect(elsewhere, "a@b.c"), "MAIL");
    EXPECT_EQ(small.set_payload(elsewhere).error(), Errc::bad_options);
  }

  // A loan that is not a SendEmail is refused by the verifier, and counted.
  auto junk = bus->loan(64).value();
  std::memset(junk.bytes().data(), 0xff, 64);
  std::memcpy(junk.bytes().data() + 4, "MAIL", 4);
  ASSERT_TRUE(service.cast(std::move(junk)));
  ASSERT_TRUE(server->serve_one(handler, deadline_in(5s)));
  EXPECT_EQ(server->counters().bad_messages, 1u);
  EXPECT_EQ(free_blocks(bus.bus()), 4u);
}

TEST(Loan, RefsThatDoNotResolveAreStaleOrBadAndNeverRead) {
  auto bus = test::ScopedBus::create(small_pool());
  // Resolve through the pool of this process's attachment.
  auto service_server = Server::start(bus.bus(), "frames", {});
  ASSERT_TRUE(service_server);
  auto service = bus->service("frames").value();
  auto loan = bus->loan(64).value();
  const std::uint32_t block = loan.block();
  const std::uint64_t generation = loan.generation();
  ASSERT_TRUE(service.cast(std::move(loan)));

  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  auto* pool = probe.core().blobs().value();
  // The cast is the pool mailbox's first record: service 0, mailbox 0, position 0.
  const std::uint64_t where = layout::record_location(0, layout::kPoolMailbox, 0);
  auto ok = pool->resolve({block, 0, generation, 0, 64}, where);
  EXPECT_EQ(ok.error, Errc{});
  EXPECT_EQ(pool->resolve({block, 0, generation + 1, 0, 64}, where).error, Errc::bad_ref)
      << "a generation never issued";
  EXPECT_EQ(pool->resolve({block + 100, 0, generation, 0, 64}, where).error, Errc::bad_ref);
  EXPECT_EQ(pool->resolve({block, 0, generation, 4000, 97}, where).error, Errc::bad_ref);
  EXPECT_EQ(pool->resolve({block, 0, generation, ~0ull, 2}, where).error, Errc::bad_ref);
  EXPECT_EQ(pool->resolve({block, 0, generation, 0, 64}, layout::record_location(0, 0, 1)).error,
            Errc::stale_ref)
      << "a copy of the record elsewhere does not resolve";

  // Free the block under the record's feet (what a forged or buggy peer
  // could do): the server then gets stale_ref, counts it, reads nothing.
  ASSERT_TRUE(pool->release_word(block, ok.control));
  EXPECT_EQ(pool->resolve({block, 0, generation, 0, 64}, where).error, Errc::stale_ref);
  Recorder handler;
  ASSERT_TRUE(service_server->serve_one(handler, deadline_in(5s)));
  EXPECT_EQ(handler.seen, nullptr) << "the handler never ran";
  EXPECT_EQ(service_server->counters().bad_messages, 1u);

  // A call whose loan went stale gets stale_ref back.
  auto call_loan = bus->loan(64).value();
  const std::uint32_t call_block = call_loan.block();
  const std::uint64_t call_generation = call_loan.generation();
  auto pending = service.send_request(std::move(call_loan), {.deadline = deadline_in(10s)});
  ASSERT_TRUE(pending);
  const auto resolved = pool->resolve({call_block, 0, call_generation, 0, 64},
                                      layout::record_location(0, layout::kPoolMailbox, 1));
  ASSERT_EQ(resolved.error, Errc{});
  ASSERT_TRUE(pool->release_word(call_block, resolved.control));
  ASSERT_TRUE(service_server->serve_one(handler, deadline_in(5s)));
  EXPECT_EQ(pending->wait().error(), Errc::stale_ref);
}

TEST(Loan, TheReaperFreesABlockWhoseRecordWasConsumedWithoutFreeingIt) {
  auto bus = test::ScopedBus::create(small_pool());
  auto server = Server::start(bus.bus(), "frames", {});
  ASSERT_TRUE(server);
  auto service = bus->service("frames").value();
  ASSERT_TRUE(service.cast(bus->loan(64).value()));
  EXPECT_EQ(bus->reclaim_dead(), 0u);
  EXPECT_EQ(bus->blob_pool().value()[0].in_flight, 1u) << "a queued record holds its block";
  // Consume the record the way a receiver killed between its two steps
  // would leave it: the cell released, the block not freed.
  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  auto pool = probe.pool("frames").value();
  auto receiver = pool.receiver().value();
  auto delivery = receiver.try_receive();
  ASSERT_TRUE(delivery);
  EXPECT_TRUE(delivery->info().loaned);
  detail::MailboxAccess::forget_loan(*delivery);
  delivery->done();
  EXPECT_EQ(bus->blob_pool().value()[0].in_flight, 1u);
  bus->reclaim_dead();
  EXPECT_EQ(free_blocks(bus.bus()), 4u);
  EXPECT_EQ(bus->blob_pool().value()[0].reclaimed, 1u);
}

}  // namespace
}  // namespace shmbus

namespace shmbus {
namespace {

// Replies with a loan of `size` bytes filled with `fill`; optionally waits
// for a gate first (to make its caller give up).
struct LoanReplier : Handler {
  Bus& bus;
  std::size_t size;
  std::atomic<bool>* gate = nullptr;
  std::atomic<bool> entered{false};
  const std::byte* written = nullptr;
  explicit LoanReplier(Bus& b, std::size_t s) : bus(b), size(s) {}
  void handle_call(const Request&, ReplyWriter& reply) override {
    entered = true;
    if (gate != nullptr) (void)test::wait_until(10s, [&] { return gate->load(); });
    auto loan = bus.loan(size, {.deadline = deadline_in(5s)});
    if (!loan) return;
    std::memset(loan->bytes().data(), 0x3c, size);
    written = loan->payload().data();
    reply.assign(std::move(*loan));
  }
  void handle_cast(const Request&) override {}
};

TEST(LoanReply, AReplyLargerThanTheCallSlotComesBackAsALoanReadInPlace) {
  auto bus = test::ScopedBus::create(small_pool());
  auto server = Server::start(bus.bus(), "render", {});
  ASSERT_TRUE(server) << server.error().message();
  LoanReplier handler(bus.bus(), 60000);  // the call slot holds 1024 bytes
  std::thread serving([&] { (void)server->serve_one(handler, deadline_in(10s)); });
  auto service = bus->service("render").value();
  const std::uint64_t request = 1;
  {
    auto reply = service.call(std::as_bytes(std::span(&request, 1)), {.deadline = deadline_in(10s)});
    serving.join();
    ASSERT_TRUE(reply) << to_string(reply.error());
    EXPECT_TRUE(reply->loaned());
    ASSERT_EQ(reply->payload().size(), 60000u);
    EXPECT_EQ(reply->payload().data(), handler.written) << "the caller reads the server's block";
    EXPECT_EQ(static_cast<std::uint8_t>(reply->payload()[59999]), 0x3c);
    EXPECT_EQ(bus->blob_pool().value()[1].in_flight, 1u) << "the reply holds its block";
  }
  EXPECT_EQ(free_blocks(bus.bus()), 4u) << "destroying the Reply gives the block back";
}

TEST(LoanReply, ALoanedReplyToACallerThatGaveUpGoesBackToThePool) {
  auto bus = test::ScopedBus::create(small_pool());
  auto server = Server::start(bus.bus(), "render", {});
  ASSERT_TRUE(server) << server.error().message();
  std::atomic<bool> gate{false};
  LoanReplier handler(bus.bus(), 100);
  handler.gate = &gate;
  std::thread serving([&] { (void)server->serve_one(handler, deadline_in(10s)); });
  auto service = bus->service("render").value();
  const std::uint64_t request = 1;
  auto pending = service.send_request(std::as_bytes(std::span(&request, 1)), {.deadline = deadline_in(10s)});
  ASSERT_TRUE(pending);
  ASSERT_TRUE(test::wait_until(5s, [&] { return handler.entered.load(); }));
  EXPECT_EQ(pending->cancel().error(), Errc::timeout_in_progress);
  gate = true;
  serving.join();
  EXPECT_EQ(server->counters().late_replies, 1u);
  EXPECT_EQ(free_blocks(bus.bus()), 4u) << "the late reply's block was freed by its server";
}

}  // namespace
}  // namespace shmbus

// Races and misuse found in review, each pinned by a test.
namespace shmbus {
namespace {

struct FirstByte : Handler {
  int first = -1;
  void handle_call(const Request&, ReplyWriter&) override {}
  void handle_cast(const Request& request) override {
    if (!request.payload().empty()) first = static_cast<std::uint8_t>(request.payload()[0]);
  }
};

// A server hands its reply's block to the caller's slot before the CAS that
// says REPLIED: a reaper running in between must not call it an orphan.
TEST(LoanRace, AReaperDoesNotFreeALoanedReplyStagedBeforeItsReplyCas) {
  auto bus = test::ScopedBus::create(small_pool());
  auto server = Server::start(bus.bus(), "render", {});
  ASSERT_TRUE(server);
  auto service = bus->service("render").value();
  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  struct StageThenReap : Handler {
    Bus& bus;
    test::BusProbe& probe;
    std::uint32_t in_flight_after = 0;
    StageThenReap(Bus& b, test::BusProbe& p) : bus(b), probe(p) {}
    void handle_call(const Request& request, ReplyWriter&) override {
      // Loaned through the probe: its own mapping and process, as a server's.
      auto loan = probe.core().blobs().value()->loan(probe.shared_core(), 100, {}).value();
      const auto& info = request.info();
      const auto location = layout::reply_location(layout::ref_slot(info.sender.value),
                                                   layout::correlation_index(info.correlation),
                                                   layout::correlation_generation(info.correlation));
      // What finish_call does before its REPLIED CAS, then any reaper.
      ASSERT_TRUE(probe.core().blobs().value()->hand_over(loan, location));
      (void)probe.core().reclaim_dead();
      in_flight_after = bus.blob_pool().value()[0].in_flight;
    }
    void handle_cast(const Request&) override {}
  } handler(bus.bus(), probe);
  const std::uint64_t request = 1;
  auto pending = service.send_request(std::as_bytes(std::span(&request, 1)), {.deadline = deadline_in(10s)});
  ASSERT_TRUE(pending);
  ASSERT_TRUE(server->serve_one(handler, deadline_in(5s)));
  EXPECT_EQ(handler.in_flight_after, 1u) << "the reaper freed a reply its live server was publishing";
}

// A Loan of one bus sent through a service of another is refused, and stays
// its holder's.
TEST(LoanRace, ALoanOfAnotherBusIsRefused) {
  auto a = test::ScopedBus::create(small_pool());
  auto b = test::ScopedBus::create(small_pool());
  auto server = Server::start(b.bus(), "frames", {});
  ASSERT_TRUE(server);
  auto service = b->service("frames").value();
  auto loan_b = b->loan(64).value();
  auto loan_a = a->loan(64).value();
  ASSERT_EQ(loan_a.block(), loan_b.block());
  ASSERT_EQ(loan_a.generation(), loan_b.generation());
  EXPECT_EQ(service.cast(std::move(loan_a)).error(), Errc::bad_ref);
  EXPECT_FALSE(loan_a.empty()) << "a refused loan stays with its holder";
  FirstByte handler;
  (void)server->serve_one(handler, deadline_in(50ms));
  EXPECT_EQ(handler.first, -1) << "the refused claim was delivered";
}

// A reaper that cannot map a mailbox (no descriptors left) must not take the
// record's block for an orphan.
TEST(LoanRace, AReaperThatCannotMapAMailboxFreesNothing) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizer runtimes open files of their own (reports, symbols): with
  // every descriptor taken they fail before the code under test does.
  GTEST_SKIP() << "needs every file descriptor; sanitizer runtimes need some too";
#endif
  auto bus = test::ScopedBus::create(small_pool());
  auto server = Server::start(bus.bus(), "frames", {});
  ASSERT_TRUE(server);
  auto service = bus->service("frames").value();
  auto loan = bus->loan(64).value();
  std::memset(loan.bytes().data(), 0x5a, 64);
  ASSERT_TRUE(service.cast(std::move(loan)));
  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  ASSERT_TRUE(probe.core().blobs());
  std::vector<int> fds;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fds.push_back(fd);
  (void)probe.core().reclaim_dead();
  for (int fd : fds) ::close(fd);
  EXPECT_EQ(bus->blob_pool().value()[0].in_flight, 1u) << "a queued record's block was freed";
  FirstByte handler;
  ASSERT_TRUE(server->serve_one(handler, deadline_in(5s)));
  EXPECT_EQ(handler.first, 0x5a);
}

// A loaned cast moves to the dead letters once: a second move of the same
// delivery (a redelivery after its mover died) finds the block gone on.
TEST(LoanRace, ALoanedCastIsNeverInTwoDeadLettersAtOnce) {
  auto bus = test::ScopedBus::create(small_pool());
  auto server = Server::start(bus.bus(), "frames", {});
  ASSERT_TRUE(server);
  auto service = bus->service("frames").value();
  ASSERT_TRUE(service.cast(bus->loan(64).value()));
  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  auto* pool = probe.core().blobs().value();
  const std::uint32_t index = *probe.registry().find("frames");
  auto dead = probe.dead_letters("frames");
  ASSERT_TRUE(dead);
  auto original_mailbox = probe.pool("frames").value();
  auto original_receiver = original_mailbox.receiver().value();
  {
    auto original = original_receiver.try_receive();
    ASSERT_TRUE(original);
    ASSERT_TRUE(pool->move_to_dead_letters(*dead, *original, index));
    EXPECT_FALSE(pool->move_to_dead_letters(*dead, *original, index)) << "moved twice";
  }
  EXPECT_EQ(bus->blob_pool().value()[0].in_flight, 1u) << "the original's done() freed a moved block";
  auto r1 = bus->dead_letters("frames").value();
  auto r2 = bus->dead_letters("frames").value();
  auto d1 = r1.try_receive();
  ASSERT_TRUE(d1);
  EXPECT_EQ(d1->info().ref_error, Errc{});
  EXPECT_EQ(r2.try_receive().error(), Errc::empty) << "a second copy";
  d1->done();
  EXPECT_EQ(free_blocks(bus.bus()), 4u);
}

// A mover killed between writing the next location and its CAS leaves the
// word selecting the original's location: once the original is consumed the
// reaper frees the block (no pin for ever by a half-made move).
TEST(LoanRace, AHalfMadeMoveNeverPinsABlockWhoseRecordIsGone) {
  auto bus = test::ScopedBus::create(small_pool());
  auto server = Server::start(bus.bus(), "frames", {});
  ASSERT_TRUE(server);
  auto service = bus->service("frames").value();
  ASSERT_TRUE(service.cast(bus->loan(64).value()));
  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  auto original_mailbox = probe.pool("frames").value();
  auto receiver = original_mailbox.receiver().value();
  auto original = receiver.try_receive();
  ASSERT_TRUE(original);
  ASSERT_EQ(original->info().ref_error, Errc{});
  // The move's first store (the next word's location), then the mover dies:
  // written straight into the pool segment, as that store leaves it.
  {
    const std::string path = "/dev/shm/" + detail::blob_pool_shm_name(bus.name());
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    const std::size_t length = layout::kBlobDescriptorsOffset + sizeof(layout::BlockDescriptor);
    void* base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    ASSERT_NE(base, MAP_FAILED);
    auto* d = reinterpret_cast<layout::BlockDescriptor*>(static_cast<std::byte*>(base) +
                                                        layout::kBlobDescriptorsOffset);
    std::atomic_ref<std::uint64_t>(d->location[1]).store(
        layout::record_location(0, layout::kDeadLetterMailbox, 7));
    ::munmap(base, length);
  }
  // Consumed by a receiver killed between its release and its free:
  detail::MailboxAccess::forget_loan(*original);
  original->done();
  (void)bus->reclaim_dead();
  EXPECT_EQ(free_blocks(bus.bus()), 4u);
}

// A Loan inherited across fork() is its parent's: the child dropping it
// frees nothing, and the child cannot send it.
TEST(LoanRace, AForkedChildDroppingAnInheritedLoanFreesNothing) {
  auto bus = test::ScopedBus::create(small_pool());
  auto loan = bus->loan(64).value();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    { Loan dropped = std::move(loan); }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_EQ(bus->blob_pool().value()[0].loaned, 1u) << "the child freed the parent's block";
  auto other = bus->loan(64);
  ASSERT_TRUE(other);
  EXPECT_NE(other->block(), loan.block());
}

}  // namespace
}  // namespace shmbus
