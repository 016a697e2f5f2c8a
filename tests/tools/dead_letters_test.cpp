// shmbus dead-letters: list, show, requeue and drop the casts that killed a
// service's servers — real servers dying on a poison cast, the real tool.
#include <gtest/gtest.h>

#include <signal.h>

#include <shmbus/schemas/echo_generated.h>

#include <string>

#include "fault/crash_wire.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"
#include "tools/tool_run.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

#define SKIP_WITHOUT_TOOL() \
  if (std::string(SHMBUS_CLI).empty()) GTEST_SKIP() << "built without the shmbus tool"

constexpr int kKilled = 128 + SIGKILL;

ServiceInfo info_of(test::ScopedBus& bus, const std::string& service) {
  for (auto& info : bus->services()) {
    if (info.name == service) return info;
  }
  return {};
}

std::uint64_t dead_letters(test::ScopedBus& bus, const std::string& service) {
  return info_of(bus, service).dead_letters;
}

// A crash server of `service` (max_deliveries 1): dies on every poison cast.
test::Child crash_server(test::ScopedBus& bus, const std::string& service) {
  const std::string capacity = std::to_string(info_of(bus, service).options.mailbox_capacity);
  return test::Child::spawn("crash_server", {"--bus", bus.name(), "--service", service,
                                             "--max-deliveries", "1", "--capacity", capacity});
}

void cast_poison(Service& service, std::uint64_t index) {
  const test::CrashRequest poison{index, test::CrashAction::poison};
  ASSERT_TRUE(service.cast(test::wire_bytes(poison)));
}

// Runs servers until the oldest poison cast in the mailbox is dead-lettered:
// one dies on it, the next one (deliveries 2 > 1) moves it to the list.
// Returns the server left running.
test::Child dead_letter_one(test::ScopedBus& bus, const std::string& service, std::uint64_t before) {
  test::Child victim = crash_server(bus, service);
  EXPECT_EQ(victim.wait(30s), kKilled) << victim.output();
  test::Child mover = crash_server(bus, service);
  EXPECT_TRUE(test::wait_until(30s, [&] { return dead_letters(bus, service) == before + 1; }))
      << "dead letters: " << dead_letters(bus, service);
  return mover;
}

TEST(DeadLettersCommand, ListsShowsRequeuesAndDropsPoisonCasts) {
  SKIP_WITHOUT_TOOL();
  auto bus = test::ScopedBus::create();
  const std::string svc = "poisoned";
  ASSERT_TRUE(bus->register_service(svc, test::crash_service_options(1024, 1, 64)));
  auto service = bus->service(svc).value();
  cast_poison(service, 1);
  test::Child mover = dead_letter_one(bus, svc, 0);

  // Listing takes nothing: the letter is still there afterwards.
  const auto list = test::run_tool({"dead-letters", bus.name(), svc});
  ASSERT_EQ(list.status, 0) << list.out;
  EXPECT_NE(list.out.find("ID  DELIVERIES"), std::string::npos) << list.out;
  // ID 0, 2 deliveries (one server died, the second dead-lettered it), 16 bytes, hex.
  EXPECT_NE(list.out.find("       0           2        16  hex 01 00 00 00"), std::string::npos) << list.out;
  EXPECT_EQ(dead_letters(bus, svc), 1u);

  const auto show = test::run_tool({"dead-letters", "show", bus.name(), svc, "0"});
  ASSERT_EQ(show.status, 0) << show.out;
  EXPECT_NE(show.out.find("dead letter 0: 2 deliveries, 16 bytes"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("00000000  01 00 00 00 00 00 00 00 02 00 00 00 48 53 52 43"), std::string::npos)
      << show.out;
  const auto no_such = test::run_tool({"dead-letters", "show", bus.name(), svc, "5"});
  EXPECT_EQ(no_such.status, static_cast<int>(Errc::empty)) << no_such.out;

  // Requeue: the cast goes back to the service and is delivered again (it
  // kills the running server, on its first delivery as a new cast).
  const auto requeue = test::run_tool({"dead-letters", "requeue", bus.name(), svc, "--all"});
  ASSERT_EQ(requeue.status, 0) << requeue.out;
  EXPECT_NE(requeue.out.find("requeued 0 (16 bytes, 2 deliveries)"), std::string::npos) << requeue.out;
  EXPECT_EQ(dead_letters(bus, svc), 0u);
  EXPECT_EQ(mover.wait(30s), kKilled) << mover.output();
  EXPECT_TRUE(mover.printed("poisoned 1 1")) << mover.output();

  // It comes back to the list (ID 1); a second poison joins it (ID 2).
  test::Child next = crash_server(bus, svc);
  ASSERT_TRUE(test::wait_until(30s, [&] { return dead_letters(bus, svc) == 1; }));
  cast_poison(service, 2);
  EXPECT_EQ(next.wait(30s), kKilled) << next.output();
  test::Child last = crash_server(bus, svc);
  ASSERT_TRUE(test::wait_until(30s, [&] { return dead_letters(bus, svc) == 2; }));

  const auto drop_one = test::run_tool({"dead-letters", "drop", bus.name(), svc, "--upto", "1"});
  ASSERT_EQ(drop_one.status, 0) << drop_one.out;
  EXPECT_NE(drop_one.out.find("dropped 1 (16 bytes, 2 deliveries)"), std::string::npos) << drop_one.out;
  EXPECT_NE(drop_one.out.find("dropped 1 dead letter of poisoned"), std::string::npos) << drop_one.out;
  const auto one_left = test::run_tool({"dead-letters", bus.name(), svc});
  EXPECT_NE(one_left.out.find("       2           2        16  hex 02 00"), std::string::npos) << one_left.out;

  const auto drop_all = test::run_tool({"dead-letters", "drop", bus.name(), svc, "--all"});
  ASSERT_EQ(drop_all.status, 0) << drop_all.out;
  const auto empty = test::run_tool({"dead-letters", bus.name(), svc});
  EXPECT_EQ(empty.status, 0) << empty.out;
  EXPECT_NE(empty.out.find("no dead letters for poisoned"), std::string::npos) << empty.out;
  EXPECT_EQ(dead_letters(bus, svc), 0u);
  EXPECT_EQ(info_of(bus, svc).depth, 0u);
  EXPECT_TRUE(last.printed("ready")) << last.output();  // nothing reached the last server
  EXPECT_EQ(info_of(bus, svc).totals.dead_lettered, 3u);
}

TEST(DeadLettersCommand, ARequeueTheServiceCannotTakeLeavesTheLetterInTheList) {
  SKIP_WITHOUT_TOOL();
  auto bus = test::ScopedBus::create();
  const std::string svc = "tight";
  ASSERT_TRUE(bus->register_service(svc, test::crash_service_options(2, 1, 64)));
  auto service = bus->service(svc).value();
  cast_poison(service, 1);
  test::Child mover = dead_letter_one(bus, svc, 0);
  mover.kill_9();
  ASSERT_NE(mover.wait(30s), -1);
  // No server runs: two casts fill the mailbox (capacity 2).
  for (std::uint64_t i = 10; i < 12; ++i) {
    ASSERT_TRUE(service.cast(test::wire_bytes(test::CrashRequest{i, test::CrashAction::reply})));
  }
  // A wait past a day is a usage error (it would overflow into an instant deadline).
  const auto too_long = test::run_tool(
      {"dead-letters", "requeue", bus.name(), svc, "--all", "--wait-ms", "9223372036854775"});
  EXPECT_EQ(too_long.status, 64) << too_long.out;
  EXPECT_EQ(dead_letters(bus, svc), 1u);
  const auto refused = test::run_tool({"dead-letters", "requeue", bus.name(), svc, "--all", "--wait-ms", "50"});
  EXPECT_EQ(refused.status, static_cast<int>(Errc::mailbox_full)) << refused.out;
  EXPECT_NE(refused.out.find("cannot cast dead letter 0 back to tight (it stays in the list)"), std::string::npos)
      << refused.out;
  EXPECT_EQ(dead_letters(bus, svc), 1u);
  const auto list = test::run_tool({"dead-letters", bus.name(), svc});
  EXPECT_NE(list.out.find("       0           2        16  hex 01 00"), std::string::npos) << list.out;

  // Once a server made room, the same command requeues it.
  test::Child server = crash_server(bus, svc);
  ASSERT_TRUE(test::wait_until(30s, [&] { return info_of(bus, svc).depth == 0; }));
  const auto requeued = test::run_tool({"dead-letters", "requeue", bus.name(), svc, "--all"});
  EXPECT_EQ(requeued.status, 0) << requeued.out;
  EXPECT_NE(requeued.out.find("requeued 0 (16 bytes, 2 deliveries)"), std::string::npos) << requeued.out;
  EXPECT_EQ(server.wait(30s), kKilled) << server.output();  // delivered again: the poison
  EXPECT_EQ(dead_letters(bus, svc), 0u);
}

TEST(DeadLettersCommand, ShowsTheLetterOfATypedServiceAsJson) {
  SKIP_WITHOUT_TOOL();
  auto bus = test::ScopedBus::create();
  const std::string svc = "echo";
  test::Child victim = test::Child::spawn("tools_echo_poison", {"--bus", bus.name(), "--service", svc});
  ASSERT_TRUE(test::wait_until(30s, [&] { return victim.printed("ready"); })) << victim.output();
  auto service = bus->service(svc).value();
  flatbuffers::FlatBufferBuilder builder;
  builder.Finish(examples::echo::CreateEchoDirect(builder, "poison", 3), examples::echo::EchoIdentifier());
  ASSERT_TRUE(service.cast({reinterpret_cast<const std::byte*>(builder.GetBufferPointer()), builder.GetSize()}));
  EXPECT_EQ(victim.wait(30s), kKilled) << victim.output();
  test::Child mover = test::Child::spawn("tools_echo_poison", {"--bus", bus.name(), "--service", svc});
  ASSERT_TRUE(test::wait_until(30s, [&] { return dead_letters(bus, svc) == 1; }));

  const auto list = test::run_tool({"dead-letters", bus.name(), svc});
  ASSERT_EQ(list.status, 0) << list.out;
  EXPECT_NE(list.out.find(R"({"text": "poison","count": 3})"), std::string::npos) << list.out;
  const auto show = test::run_tool({"dead-letters", "show", bus.name(), svc, "0"});
  ASSERT_EQ(show.status, 0) << show.out;
  EXPECT_NE(show.out.find("\"text\": \"poison\""), std::string::npos) << show.out;
}

}  // namespace
}  // namespace shmbus
