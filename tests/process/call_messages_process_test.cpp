// Refused and malformed messages across processes: a request that fails the
// server's verifier gets bad_message and the server stays up; a request of
// another type is refused by the caller's library before it is sent; casts
// to a full mailbox are refused as mailbox_full (at once, or when a wait for
// room reaches its deadline), wait for room when given a deadline, and every
// cast that was accepted is handled exactly once.
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "process/child_lines.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/schemas/mailer_generated.h"
#include "shmbus/schemas/mailer_reply_generated.h"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/service_row.hpp"
#include "support/wait_until.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::outcome_count;
using test::Child;
namespace mailer = shmbus::examples::mailer;

constexpr const char* kService = "mailer";

std::vector<std::byte> bytes_of(const flatbuffers::FlatBufferBuilder& builder) {
  const auto* bytes = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
  return {bytes, bytes + builder.GetSize()};
}

// A request the call_server role understands (child_roles_calls.cpp).
std::vector<std::byte> send_email(std::uint64_t id, const char* key = "") {
  flatbuffers::FlatBufferBuilder builder(256);
  builder.Finish(mailer::CreateSendEmailDirect(builder, "t@example.com", "t",
                                               std::to_string(id).c_str(), "0", key),
                 mailer::SendEmailIdentifier());
  return bytes_of(builder);
}

// A well-formed message of the service's *reply* type ("MALR").
std::vector<std::byte> email_sent(std::uint64_t id) {
  flatbuffers::FlatBufferBuilder builder(256);
  builder.Finish(mailer::CreateEmailSent(builder, id), mailer::EmailSentIdentifier());
  return bytes_of(builder);
}

// The request identifier "MAIL" in place, and a root offset far outside the buffer.
std::vector<std::byte> garbage_with_identifier() {
  std::vector<std::byte> bytes(64, std::byte{0xab});
  const std::uint32_t root = 0x00fffff0;
  std::memcpy(bytes.data(), &root, sizeof root);
  std::memcpy(bytes.data() + 4, "MAIL", 4);
  return bytes;
}

CallOptions within(Clock::duration d) {
  CallOptions options;
  options.deadline = deadline_in(d);
  return options;
}

CastOptions waiting(Clock::duration d) {
  CastOptions options;
  options.deadline = deadline_in(d);
  return options;
}

ServiceInfo service_info(test::ScopedBus& bus) { return test::service_row(bus.bus(), kService); }

// A call_server child that has joined the pool of kService.
Child start_server(test::ScopedBus& bus, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--bus", bus.name(), "--service", kService};
  args.insert(args.end(), extra.begin(), extra.end());
  Child server = Child::spawn("call_server", args);
  EXPECT_TRUE(test::wait_printed(server, "ready", 10s));
  return server;
}

// SIGTERM, then the server prints what it ran and exits 0.
::testing::AssertionResult stop_server(Child& server) {
  ::kill(server.pid(), SIGTERM);
  if (auto done = test::wait_printed(server, "done"); !done) return done;
  if (int status = server.wait(10s); status != 0) {
    return ::testing::AssertionFailure() << "server exited with " << status;
  }
  return ::testing::AssertionSuccess();
}

std::vector<std::uint64_t> ids_after(Child& child, const std::string& prefix) {
  std::vector<std::uint64_t> ids;
  for (const auto& line : test::lines_after(child, prefix)) {
    std::istringstream words(line);
    for (std::uint64_t id = 0; words >> id;) ids.push_back(id);
  }
  return ids;
}

std::uint64_t server_bad_messages(test::ScopedBus& bus) {
  return service_info(bus).totals.bad_messages;
}

TEST(CallProcess, MalformedRequestGetsBadMessageAndTheServerServesTheNextCall) {
  auto bus = test::ScopedBus::create();
  Child server = start_server(bus);
  auto service = bus->service(kService);
  ASSERT_TRUE(service) << service.error().message();

  // The right identifier, but a body the verifier refuses: the server says so.
  auto garbage = service->call(garbage_with_identifier(), within(5s));
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error(), Errc::bad_message);
  auto whole = send_email(7);
  const std::vector<std::byte> truncated(whole.begin(), whole.begin() + whole.size() / 2);
  auto cut = service->call(truncated, within(5s));
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error(), Errc::bad_message);
  EXPECT_EQ(server_bad_messages(bus), 2u);

  // A cast is accepted (only the server can verify it), then refused there.
  ASSERT_TRUE(service->cast(garbage_with_identifier(), waiting(5s)));
  ASSERT_TRUE(test::wait_until(10s, [&] { return server_bad_messages(bus) == 3; }))
      << "bad_messages " << server_bad_messages(bus);

  // The server is still up and serves the next good call.
  auto good = service->call(send_email(42), within(5s));
  ASSERT_TRUE(good) << to_string(good.error());
  MessageBuffer scratch;
  auto sent = good->read<mailer::EmailSent>("MALR", scratch);
  ASSERT_TRUE(sent);
  EXPECT_EQ((*sent)->message_id(), 42u);
  EXPECT_EQ((*sent)->handled_by_pid(), server.pid());
  EXPECT_EQ(outcome_count(service_info(bus), Errc::bad_message), 2u);

  ASSERT_TRUE(stop_server(server));
  EXPECT_EQ(ids_after(server, "ran"), std::vector<std::uint64_t>{42});
  EXPECT_TRUE(ids_after(server, "cast").empty());
  EXPECT_TRUE(server.printed("counters calls=1 casts=0 replies=1 ")) << server.output();
}

TEST(CallProcess, RequestOfAnotherTypeIsRefusedBeforeItIsSent) {
  auto bus = test::ScopedBus::create();
  Child server = start_server(bus);
  auto service = bus->service(kService);
  ASSERT_TRUE(service) << service.error().message();

  // An EmailSent ("MALR") to a service of SendEmail ("MAIL"): refused by the
  // caller's library, so no server ever sees it.
  auto call = service->call(email_sent(1), within(5s));
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error(), Errc::bad_message);
  auto pending = service->send_request(email_sent(2), within(5s));
  ASSERT_FALSE(pending);
  EXPECT_EQ(pending.error(), Errc::bad_message);
  auto cast = service->cast(email_sent(3), waiting(5s));
  ASSERT_FALSE(cast);
  EXPECT_EQ(cast.error(), Errc::bad_message);
  EXPECT_EQ(service->depth(), 0u);

  auto good = service->call(send_email(4), within(5s));
  ASSERT_TRUE(good) << to_string(good.error());
  const auto info = service_info(bus);
  EXPECT_EQ(outcome_count(info, Errc::bad_message), 3u);
  EXPECT_EQ(info.totals.bad_messages, 0u) << "a refused request reached the server";
  ASSERT_TRUE(stop_server(server));
  EXPECT_EQ(ids_after(server, "ran"), std::vector<std::uint64_t>{4});
}

// client.hpp: a call fails with bad_message when "the reply is not of the
// service's reply type"; registry.hpp: "servers check requests, callers
// replies". Here the handler replies with a SendEmail ("MAIL") to a service
// whose replies are EmailSent ("MALR").
//
// (PendingCall::step compares the reply's identifier with the service's.)
TEST(CallProcess, ReplyOfAnotherTypeGetsBadMessage) {
  auto bus = test::ScopedBus::create();
  Child server = start_server(bus);
  auto service = bus->service(kService);
  ASSERT_TRUE(service) << service.error().message();

  auto call = service->call(send_email(5, "wrong_reply"), within(5s));
  EXPECT_FALSE(call) << "a reply of another type was delivered as a Reply";
  if (!call) {
    EXPECT_EQ(call.error(), Errc::bad_message);
  }
  auto good = service->call(send_email(6), within(5s));
  EXPECT_TRUE(good) << to_string(good.error());
  ASSERT_TRUE(stop_server(server));
}

constexpr std::uint32_t kCapacity = 16;

// Fail-now casts from `next` on until the first refusal; returns the ids accepted.
std::vector<std::uint64_t> fill(Service& service, std::uint64_t& next) {
  std::vector<std::uint64_t> accepted;
  for (std::uint32_t i = 0; i <= 2 * kCapacity; ++i, ++next) {
    auto cast = service.cast(send_email(next));
    if (!cast) {
      EXPECT_EQ(cast.error(), Errc::mailbox_full);
      ++next;
      break;
    }
    accepted.push_back(next);
  }
  return accepted;
}

TEST(CallProcess, FailNowCastsToAFullMailboxAreEachRefusedAsMailboxFull) {
  auto bus = test::ScopedBus::create();
  // Holds off serving until SIGUSR1, so the mailbox stays full.
  Child server = start_server(bus, {"--capacity", std::to_string(kCapacity), "--hold", "1"});
  auto service = bus->service(kService);
  ASSERT_TRUE(service) << service.error().message();

  std::uint64_t next = 1;
  std::vector<std::uint64_t> accepted = fill(*service, next);
  EXPECT_EQ(accepted.size(), kCapacity);
  std::uint64_t refused = 1;
  for (int i = 0; i < 10; ++i, ++next, ++refused) {
    auto cast = service->cast(send_email(next));
    ASSERT_FALSE(cast) << "cast " << next << " accepted into a full mailbox";
    EXPECT_EQ(cast.error(), Errc::mailbox_full);
  }
  // A wait for room that reaches its deadline is mailbox_full too.
  const auto started = Clock::now();
  auto waited = service->cast(send_email(next++), waiting(50ms));
  ++refused;
  ASSERT_FALSE(waited);
  EXPECT_EQ(waited.error(), Errc::mailbox_full);
  EXPECT_GE(Clock::now() - started, 50ms) << "gave up before its deadline";
  EXPECT_EQ(outcome_count(service_info(bus), Errc::mailbox_full), refused);

  ::kill(server.pid(), SIGUSR1);
  ASSERT_TRUE(
      test::wait_until(10s, [&] { return service_info(bus).totals.casts == accepted.size(); }));
  auto more = fill(*service, next);  // room again (the server may take some meanwhile)
  EXPECT_GE(more.size(), kCapacity);
  accepted.insert(accepted.end(), more.begin(), more.end());
  ASSERT_TRUE(
      test::wait_until(10s, [&] { return service_info(bus).totals.casts == accepted.size(); }));

  ASSERT_TRUE(stop_server(server));
  EXPECT_EQ(ids_after(server, "cast"), accepted) << "handled casts differ from the accepted ones";
}

TEST(CallProcess, CastsWithADeadlineWaitForRoomAndNothingAcceptedIsLost) {
  auto bus = test::ScopedBus::create();
  Child server = start_server(bus, {"--capacity", std::to_string(kCapacity), "--hold", "1"});
  auto service = bus->service(kService);
  ASSERT_TRUE(service) << service.error().message();

  std::uint64_t next = 1;
  std::vector<std::uint64_t> accepted = fill(*service, next);
  ASSERT_EQ(accepted.size(), kCapacity);

  // A sender that waits up to 10 s for room, many mailboxes' worth of casts.
  const auto casts = static_cast<std::uint64_t>(test::scaled(2000));
  std::atomic<bool> sending{false};
  Deadline first_accepted{};
  std::vector<std::uint64_t> sent;
  std::vector<std::string> refusals;
  std::thread sender([&, first = next] {
    sending = true;
    for (std::uint64_t id = first; id < first + casts; ++id) {
      auto cast = service->cast(send_email(id), waiting(10s));
      if (!cast) {
        refusals.push_back(std::to_string(id) + ": " + to_string(cast.error()));
        continue;
      }
      if (sent.empty()) first_accepted = Clock::now();
      sent.push_back(id);
    }
  });
  ASSERT_TRUE(test::wait_until(10s, [&] { return sending.load(); }));
  // The mailbox is full until the server, released now, takes from it.
  const Deadline released = Clock::now();
  ::kill(server.pid(), SIGUSR1);
  sender.join();
  EXPECT_TRUE(refusals.empty()) << refusals.size() << " refused, first " << refusals.front();
  ASSERT_FALSE(sent.empty());
  EXPECT_GT(first_accepted, released) << "a cast entered a full mailbox";
  EXPECT_EQ(sent.size(), casts);
  accepted.insert(accepted.end(), sent.begin(), sent.end());

  ASSERT_TRUE(
      test::wait_until(30s, [&] { return service_info(bus).totals.casts == accepted.size(); }))
      << "handled " << service_info(bus).totals.casts << " of " << accepted.size();
  ASSERT_TRUE(stop_server(server));
  const auto handled = ids_after(server, "cast");
  EXPECT_EQ(handled.size(), accepted.size());
  EXPECT_EQ(std::set<std::uint64_t>(handled.begin(), handled.end()),
            std::set<std::uint64_t>(accepted.begin(), accepted.end()));
  EXPECT_EQ(outcome_count(service_info(bus), Errc::mailbox_full), 1u);  // fill()'s probe
}

}  // namespace
}  // namespace shmbus
