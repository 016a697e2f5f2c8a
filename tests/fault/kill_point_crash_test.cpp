// "The process stops for ever between step k and k+1": a child is stopped at
// a named kill point (--stop-at) of the server or the registry, killed there
// with SIGKILL, and the documented answer is asserted:
//
//   server_after_take    layout/calls.hpp "Crash: server, between its TAKEN CAS
//   server_before_reply  and the REPLIED CAS": the caller gets server_crashed
//                        (at its liveness re-check, not at the deadline); the
//                        record, redelivered to a sibling, is skipped: the
//                        call runs at most once.
//   ring_after_take      calls.hpp "server, before its TAKEN CAS" (the server
//   (in a server)        holds the request's record, the slot is still
//                        PENDING): a sibling takes the record over, marked
//                        redelivered, and runs the call; its caller gets the reply
//                        (with max_deliveries 1 it fails the call server_crashed
//                        instead: the record has killed as many servers as allowed).
//   server_in_cast       server.hpp: the cast is redelivered to a sibling,
//                        marked redelivered with deliveries == 2, and runs once.
//   registry_before_live registry.hpp "Crash": the `creating` entry is freed
//                        by the next locker; the next registration of the
//                        name succeeds and replaces the half-made mailboxes.
#include <gtest/gtest.h>

#include <csignal>
#include <string>

#include "fault/crash_support.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::CrashAction;
using test::CrashKind;
using test::CrashReply;
using test::CrashRequest;
using test::kCrashService;
using test::kRunLog;
using test::read_wire;
using test::RunLog;
using test::wire_bytes;

// A server that stops at `point` in its first message.
Child spawn_stopping_server(test::ScopedBus& bus, const char* point) {
  return test::spawn_crash_server(bus, {"--log", kRunLog, "--stop-at", point});
}

bool reached(Child& child, const char* point) {
  return test::wait_until(10s, [&] { return child.reached(point); });
}

// Call #7 is taken by a server that is killed at `point`; a sibling is alive.
// `handler_ran`: whether the point lies after the handler (which logs its run).
void expect_call_ends_in_server_crashed_and_runs_at_most_once(const char* point, bool handler_ran) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options()));
  auto service = bus->service(kCrashService).value();
  RunLog log(bus);
  Child doomed = spawn_stopping_server(bus, point);
  ASSERT_FALSE(::testing::Test::HasFailure());

  const Deadline deadline = deadline_in(20s);
  auto pending = service.send_request(wire_bytes(CrashRequest{7, CrashAction::reply}), test::call_until(deadline));
  ASSERT_TRUE(pending) << to_string(pending.error());
  ASSERT_TRUE(reached(doomed, point)) << doomed.output();
  Child sibling = test::spawn_crash_server(bus, {"--log", kRunLog});
  ASSERT_FALSE(::testing::Test::HasFailure());
  const Clock::time_point killed_at = Clock::now();
  doomed.kill_9();

  auto outcome = pending->wait();
  const Clock::time_point ended = Clock::now();
  ASSERT_FALSE(outcome) << "call #7 got a reply from a server killed at " << point;
  EXPECT_EQ(outcome.error(), Errc::server_crashed) << to_string(outcome.error());
  EXPECT_LT(ended - killed_at, 3s) << "server_crashed came long after the kill, not at once";
  EXPECT_LT(ended, deadline);
  EXPECT_EQ(doomed.wait(), 128 + SIGKILL);

  // The sibling takes the dead server's record over and skips it, counted
  // as redelivered only (the caller's server_crashed is the call's outcome).
  ServiceInfo info;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.redelivered == 1;
  })) << test::totals_text(info.totals);
  // The pool still serves: the next call is the sibling's.
  auto reply = service.call(wire_bytes(CrashRequest{8, CrashAction::reply}), test::call_until(deadline_in(10s)));
  ASSERT_TRUE(reply) << to_string(reply.error());
  const auto body = read_wire<CrashReply>(reply->payload());
  ASSERT_TRUE(body);
  EXPECT_EQ(body->index, 9u);
  EXPECT_EQ(body->pid, sibling.pid());

  ASSERT_TRUE(log.wait_for(handler_ran ? 2 : 1)) << log.drain() << " runs logged";
  const auto runs_of_7 = log.runs_of(7, CrashKind::call);
  ASSERT_EQ(runs_of_7.size(), handler_ran ? 1u : 0u) << "call #7 ran again";
  if (handler_ran) {
    EXPECT_EQ(runs_of_7[0].pid, doomed.pid());
  }
  // Only call #8 ran to its reply (the killed server counts nothing).
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.replies == 1;
  })) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.calls, 1u) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.expired_skipped, 0u);
  EXPECT_EQ(test::outcome_count(info, Errc::server_crashed), 1u) << test::outcomes_text(info);
}

TEST(CrashPoint, ServerKilledAfterTakingACallGivesServerCrashedAndNoSiblingRunsIt) {
  expect_call_ends_in_server_crashed_and_runs_at_most_once("server_after_take", false);
}

TEST(CrashPoint, ServerKilledBeforeReplyingGivesServerCrashedAndTheCallRanOnlyOnce) {
  expect_call_ends_in_server_crashed_and_runs_at_most_once("server_before_reply", true);
}

TEST(CrashPoint, ServerKilledHoldingACallRecordBeforeItsTakeLeavesTheCallToASiblingThatRunsIt) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options()));
  auto service = bus->service(kCrashService).value();
  RunLog log(bus);
  Child doomed = spawn_stopping_server(bus, "ring_after_take");
  ASSERT_FALSE(HasFailure());
  auto pending = service.send_request(wire_bytes(CrashRequest{7, CrashAction::reply}),
                                      test::call_until(deadline_in(20s)));
  ASSERT_TRUE(pending) << to_string(pending.error());
  ASSERT_TRUE(reached(doomed, "ring_after_take")) << doomed.output();
  Child sibling = test::spawn_crash_server(bus, {"--log", kRunLog});
  ASSERT_FALSE(HasFailure());
  doomed.kill_9();
  EXPECT_EQ(doomed.wait(), 128 + SIGKILL);

  auto reply = pending->wait();
  ASSERT_TRUE(reply) << "no server had taken the call, yet it ended in " << to_string(reply.error());
  const auto body = read_wire<CrashReply>(reply->payload());
  ASSERT_TRUE(body);
  EXPECT_EQ(body->index, 8u);
  EXPECT_EQ(body->pid, sibling.pid());
  ASSERT_TRUE(log.wait_for(1));
  const auto runs = log.runs_of(7, CrashKind::call);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].redelivered, 1u);
  EXPECT_EQ(runs[0].deliveries, 2u);
  ServiceInfo info;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.replies == 1;
  })) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.calls, 1u) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.redelivered, 1u);
  EXPECT_EQ(info.totals.expired_skipped, 0u);
  EXPECT_EQ(test::outcomes_text(info), "none");
}

// The same point with max_deliveries 1: the record has now killed as many
// servers as the service allows, before any of them took the call. The
// sibling that takes it over fails it (server_crashed) instead of running it.
TEST(CrashPoint, CallWhoseRecordKilledMaxDeliveriesServersBeforeItsTakeFailsServerCrashed) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options(1024, 1)));
  auto service = bus->service(kCrashService).value();
  RunLog log(bus);
  Child doomed = test::spawn_crash_server(
      bus, {"--log", kRunLog, "--max-deliveries", "1", "--stop-at", "ring_after_take"});
  ASSERT_FALSE(HasFailure());
  const Deadline deadline = deadline_in(20s);
  auto pending = service.send_request(wire_bytes(CrashRequest{7, CrashAction::reply}), test::call_until(deadline));
  ASSERT_TRUE(pending) << to_string(pending.error());
  ASSERT_TRUE(reached(doomed, "ring_after_take")) << doomed.output();
  Child sibling = test::spawn_crash_server(bus, {"--log", kRunLog, "--max-deliveries", "1"});
  ASSERT_FALSE(HasFailure());
  doomed.kill_9();
  EXPECT_EQ(doomed.wait(), 128 + SIGKILL);

  auto outcome = pending->wait();
  ASSERT_FALSE(outcome) << "a call past max_deliveries was run";
  EXPECT_EQ(outcome.error(), Errc::server_crashed) << to_string(outcome.error());
  EXPECT_LT(Clock::now(), deadline);
  EXPECT_EQ(log.drain(), 0u) << "a call past max_deliveries was run";
  ServiceInfo info;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.redelivered == 1;
  })) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.calls, 0u);
  EXPECT_EQ(test::outcome_count(info, Errc::server_crashed), 1u) << test::outcomes_text(info);
  // And the pool still serves.
  auto reply = service.call(wire_bytes(CrashRequest{8, CrashAction::reply}), test::call_until(deadline_in(10s)));
  ASSERT_TRUE(reply) << to_string(reply.error());
}

// The same point, but the caller gives up (timeout_not_started) while the
// dead server still holds the record: the sibling that takes the record over
// skips it, and must count the skip (expired_skipped), as it would for a
// record delivered once — the server ledger must agree with the callers'.
//
// (Server::count_skipped classifies by the FREE word's reason first, so a
// redelivered record whose caller gave up still counts expired_skipped.)
TEST(CrashPoint, ServerKilledHoldingACallWhoseCallerGaveUpLeavesTheSiblingsSkipCounted) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options()));
  auto service = bus->service(kCrashService).value();
  RunLog log(bus);
  Child doomed = spawn_stopping_server(bus, "ring_after_take");
  ASSERT_FALSE(HasFailure());
  auto pending = service.send_request(wire_bytes(CrashRequest{7, CrashAction::reply}),
                                      test::call_until(deadline_in(200ms)));
  ASSERT_TRUE(pending) << to_string(pending.error());
  ASSERT_TRUE(reached(doomed, "ring_after_take")) << doomed.output();
  auto outcome = pending->wait();  // returns at its deadline: nobody took the call
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error(), Errc::timeout_not_started) << to_string(outcome.error());
  Child sibling = test::spawn_crash_server(bus, {"--log", kRunLog});
  ASSERT_FALSE(HasFailure());
  doomed.kill_9();
  EXPECT_EQ(doomed.wait(), 128 + SIGKILL);

  ServiceInfo info;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.redelivered == 1;
  })) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.calls, 0u) << "a call its caller gave up on ran";
  EXPECT_EQ(log.drain(), 0u) << "a call its caller gave up on ran";
  EXPECT_EQ(test::outcome_count(info, Errc::timeout_not_started), 1u) << test::outcomes_text(info);
  EXPECT_EQ(info.totals.expired_skipped, 1u)
      << "the caller's timeout_not_started has no skip in the server ledger: " << test::totals_text(info.totals);
}

TEST(CrashPoint, ServerKilledInACastLeavesItToASiblingMarkedRedelivered) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  ASSERT_TRUE(bus->register_service(kCrashService, test::crash_service_options()));
  auto service = bus->service(kCrashService).value();
  RunLog log(bus);
  Child doomed = spawn_stopping_server(bus, "server_in_cast");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(service.cast(wire_bytes(CrashRequest{7, CrashAction::reply})));
  ASSERT_TRUE(reached(doomed, "server_in_cast")) << doomed.output();
  Child sibling = test::spawn_crash_server(bus, {"--log", kRunLog});
  ASSERT_FALSE(HasFailure());
  doomed.kill_9();
  EXPECT_EQ(doomed.wait(), 128 + SIGKILL);

  ASSERT_TRUE(log.wait_for(1)) << sibling.output();
  ASSERT_EQ(log.runs().size(), 1u);
  const auto run = log.runs()[0];
  EXPECT_EQ(run.index, 7u);
  EXPECT_EQ(run.kind, CrashKind::cast);
  EXPECT_EQ(run.pid, sibling.pid());
  EXPECT_EQ(run.redelivered, 1u);
  EXPECT_EQ(run.deliveries, 2u);
  ServiceInfo info;
  EXPECT_TRUE(test::wait_until(10s, [&] {
    info = test::crash_service_info(bus.bus());
    return info.totals.casts == 1;
  })) << test::totals_text(info.totals);
  EXPECT_EQ(info.totals.redelivered, 1u);
  EXPECT_EQ(info.totals.dead_lettered, 0u);
  EXPECT_EQ(log.drain(), 1u) << "the cast ran twice";
}

TEST(CrashPoint, RegistrarKilledBeforeLiveLeavesTheNameFreeForTheNextRegistration) {
  auto bus = test::ScopedBus::create(test::crash_bus_options());
  Child registrar = Child::spawn("crash_register", {"--bus", bus.name(), "--service", kCrashService,
                                                    "--capacity", "1024", "--stop-at",
                                                    "registry_before_live"});
  ASSERT_TRUE(reached(registrar, "registry_before_live")) << registrar.output();
  auto half_made = bus->service(kCrashService);
  ASSERT_FALSE(half_made) << "a service that is not live yet can be called";
  EXPECT_EQ(half_made.error().code, Errc::no_such_service);
  registrar.kill_9();
  ASSERT_EQ(registrar.wait(), 128 + SIGKILL);
  EXPECT_EQ(test::crash_service_info(bus.bus()).name, "") << "the dead registration is listed";

  // The registrar died holding the registry's robust mutex, in the middle of
  // a registration with other options: the next one succeeds with its own.
  constexpr std::uint32_t kCapacity = 4;
  auto registered = bus->register_service(kCrashService, test::crash_service_options(kCapacity));
  ASSERT_TRUE(registered) << registered.error().message();
  const ServiceInfo info = test::crash_service_info(bus.bus());
  EXPECT_EQ(info.name, kCrashService);
  EXPECT_EQ(info.options.mailbox_capacity, kCapacity);
  EXPECT_EQ(info.servers.size(), 0u);

  // Its pool mailbox is the new one (4 records), not the dead registrar's (1024).
  auto service = bus->service(kCrashService);
  ASSERT_TRUE(service) << service.error().message();
  for (std::uint64_t i = 0; i < kCapacity; ++i) {
    ASSERT_TRUE(service->cast(wire_bytes(CrashRequest{i, CrashAction::reply}))) << "cast " << i;
  }
  auto refused = service->cast(wire_bytes(CrashRequest{kCapacity, CrashAction::reply}));
  ASSERT_FALSE(refused) << "the pool holds more than the new registration's 4 records";
  EXPECT_EQ(refused.error(), Errc::mailbox_full);

  // And it serves: a server joins with the same options and runs everything.
  RunLog log(bus);
  Child server = test::spawn_crash_server(bus, {"--log", kRunLog, "--capacity", std::to_string(kCapacity)});
  ASSERT_FALSE(HasFailure());
  auto reply = service->call(wire_bytes(CrashRequest{9, CrashAction::reply}), test::call_until(deadline_in(10s)));
  ASSERT_TRUE(reply) << to_string(reply.error());
  EXPECT_TRUE(log.wait_for(kCapacity + 1)) << log.drain() << " runs logged";
}

}  // namespace
}  // namespace shmbus
