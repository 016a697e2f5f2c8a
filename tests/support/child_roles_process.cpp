// Roles for tests/process (segments, process table, rings, wake-ups).
//
// Every role attaches on its own, reports "ready …" once it holds what the
// test waits for, and bounds every wait: a stuck role dies with "error: …"
// rather than hang the test.
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "process/stress_record.hpp"
#include "shmbus/bus.hpp"
#include "support/child_roles.hpp"

namespace shmbus::test {

namespace {

using namespace std::chrono_literals;

Bus attach_or_die(const ChildArgs& args) {
  auto bus = Bus::attach(arg_text(args, "bus"), {.ready_timeout = 5s, .label = "test-child"});
  if (!bus) die(bus.error().message());
  return std::move(*bus);
}

Mailbox open_or_die(Bus& bus, const ChildArgs& args) {
  auto mailbox = bus.open_mailbox(arg_text(args, "mailbox", "m"));
  if (!mailbox) die(mailbox.error().message());
  return std::move(*mailbox);
}

WaitMode wait_mode(const ChildArgs& args) {
  const std::string mode = arg_text(args, "wait", "park");
  if (mode == "busy_poll") return WaitMode::busy_poll;
  if (mode == "spin_then_park") return WaitMode::spin_then_park;
  return WaitMode::park;
}

// "attach": attach, say "ready <ref>", then stay until killed.
int role_attach(const ChildArgs& args) {
  Bus bus = attach_or_die(args);
  say("ready " + std::to_string(bus.self().value));
  for (;;) ::pause();
}

// "attach_as_nobody": drop to uid/gid 65534, try to attach, report
// "result <errc or ok> <detail>".
int role_attach_as_nobody(const ChildArgs& args) {
  if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) {
    die(std::string("cannot drop privileges: ") + std::strerror(errno));
  }
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a credential change cleared it
  auto bus = Bus::attach(arg_text(args, "bus"), {.ready_timeout = 1s, .label = "nobody"});
  if (bus) {
    say("result ok");
  } else {
    say(std::string("result ") + to_string(bus.error().code) + " " + bus.error().detail);
  }
  return 0;
}

// "reclaim": attach, say "ready", wait until the process --victim is dead,
// then reclaim dead slots and report "reclaimed <n>".
int role_reclaim(const ChildArgs& args) {
  Bus bus = attach_or_die(args);
  const ProcessRef victim{static_cast<std::uint32_t>(arg_number(args, "victim", 0))};
  say("ready " + std::to_string(bus.self().value));
  const Deadline give_up = deadline_in(30s);
  while (bus.is_alive(victim)) {
    if (Clock::now() >= give_up) die("the victim never died");
  }
  say("reclaimed " + std::to_string(bus.reclaim_dead()));
  return 0;
}

// "produce": send --count stress records as producer --producer, blocking
// while the mailbox is full; report "done <count>".
int role_produce(const ChildArgs& args) {
  Bus bus = attach_or_die(args);
  Mailbox mailbox = open_or_die(bus, args);
  const auto producer = static_cast<std::uint32_t>(arg_number(args, "producer", 0));
  const long count = arg_number(args, "count", 0);
  const WaitMode mode = wait_mode(args);
  say("ready " + std::to_string(bus.self().value));
  std::vector<std::byte> record;
  for (long i = 0; i < count; ++i) {
    stress::make_record(producer, static_cast<std::uint64_t>(i), record);
    auto sent = mailbox.send(record, deadline_in(60s), {}, mode);
    if (!sent) die("send " + std::to_string(i) + ": " + to_string(sent.error()));
  }
  say("done " + std::to_string(count));
  return 0;
}

// "consume_stats": receive stress records until a stop record; check each
// is intact and that every producer's sequences rise; report per producer
// "stats <producer> <count> <sum> <sum of squares>", then "done <total>".
int role_consume_stats(const ChildArgs& args) {
  Bus bus = attach_or_die(args);
  Mailbox mailbox = open_or_die(bus, args);
  auto receiver = mailbox.receiver();
  if (!receiver) die(receiver.error().message());
  const WaitMode mode = wait_mode(args);
  say("ready " + std::to_string(bus.self().value));
  std::map<std::uint32_t, stress::Totals> totals;
  std::map<std::uint32_t, std::uint64_t> next_at_least;
  std::map<std::uint32_t, std::uint32_t> sender_of;
  std::uint64_t total = 0;
  for (;;) {
    auto delivery = receiver->receive(deadline_in(60s), mode);
    if (!delivery) die("receive after " + std::to_string(total) + ": " + to_string(delivery.error()));
    if (delivery->info().type == stress::kStopType) break;
    stress::RecordHead head{};
    if (!stress::verify(delivery->payload(), head)) die("torn record after " + std::to_string(total));
    if (delivery->info().redelivered) die("unexpected redelivery");
    if (head.sequence != delivery->info().sequence) die("ring sequence differs from the record's");
    auto [sender, fresh] = sender_of.try_emplace(head.producer, delivery->info().sender.value);
    if (!fresh && sender->second != delivery->info().sender.value) die("sender changed");
    auto& floor = next_at_least[head.producer];
    if (head.sequence < floor) {
      die("producer " + std::to_string(head.producer) + ": sequence " +
          std::to_string(head.sequence) + " after " + std::to_string(floor - 1));
    }
    floor = head.sequence + 1;
    totals[head.producer].add(head.sequence);
    ++total;
  }
  for (const auto& [producer, t] : totals) {
    say("stats " + std::to_string(producer) + " " + std::to_string(t.count) + " " +
        std::to_string(t.sum) + " " + std::to_string(t.sum_squares));
  }
  say("done " + std::to_string(total));
  return 0;
}

// "receive": receive --count records whose payload is their index as a
// uint64; say "got <index>" for each when --echo 1; then "done <count>".
int role_receive(const ChildArgs& args) {
  Bus bus = attach_or_die(args);
  Mailbox mailbox = open_or_die(bus, args);
  auto receiver = mailbox.receiver();
  if (!receiver) die(receiver.error().message());
  const long count = arg_number(args, "count", 1);
  const bool echo = arg_number(args, "echo", 0) != 0;
  const WaitMode mode = wait_mode(args);
  say("ready " + std::to_string(bus.self().value));
  for (long i = 0; i < count; ++i) {
    auto delivery = receiver->receive(deadline_in(30s), mode);
    if (!delivery) die("receive " + std::to_string(i) + ": " + to_string(delivery.error()));
    std::uint64_t index = 0;
    if (delivery->payload().size() != sizeof index) die("bad payload size");
    std::memcpy(&index, delivery->payload().data(), sizeof index);
    if (index != static_cast<std::uint64_t>(i)) die("got " + std::to_string(index) + " at " + std::to_string(i));
    delivery->done();
    if (echo) say("got " + std::to_string(index));
  }
  say("done " + std::to_string(count));
  return 0;
}

std::int64_t cpu_microseconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto us = [](const timeval& tv) {
    return std::int64_t{tv.tv_sec} * 1'000'000 + std::int64_t{tv.tv_usec};
  };
  return us(usage.ru_utime) + us(usage.ru_stime);
}

// "idle_cpu": park in receive() for --ms on an empty mailbox and report the
// CPU time it cost: "idle <result> cpu_us <n> wall_ms <n>".
int role_idle_cpu(const ChildArgs& args) {
  Bus bus = attach_or_die(args);
  Mailbox mailbox = open_or_die(bus, args);
  auto receiver = mailbox.receiver();
  if (!receiver) die(receiver.error().message());
  const auto wait_for = std::chrono::milliseconds(arg_number(args, "ms", 2000));
  say("ready " + std::to_string(bus.self().value));
  const auto started = Clock::now();
  const std::int64_t cpu_before = cpu_microseconds();
  auto delivery = receiver->receive(started + wait_for, wait_mode(args));
  const std::int64_t cpu_after = cpu_microseconds();
  const auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  say(std::string("idle ") + (delivery ? "delivered" : to_string(delivery.error())) + " cpu_us " +
      std::to_string(cpu_after - cpu_before) + " wall_ms " + std::to_string(wall.count()));
  return 0;
}

}  // namespace

int run_process_role(const std::string& role, const ChildArgs& args) {
  if (role == "attach") return role_attach(args);
  if (role == "attach_as_nobody") return role_attach_as_nobody(args);
  if (role == "reclaim") return role_reclaim(args);
  if (role == "produce") return role_produce(args);
  if (role == "consume_stats") return role_consume_stats(args);
  if (role == "receive") return role_receive(args);
  if (role == "idle_cpu") return role_idle_cpu(args);
  return -1;
}

}  // namespace shmbus::test
