// Roles for tests/fault (kill -9 at named and random points).
//
//   fault_produce      --bus B --mailbox M --id P --count N [--max-size S]
//                  [--kill-at-record K --kill-point NAME]
//       sends records 0…N-1 of producer P (stamped_record.hpp), saying
//       "sent <i>" after each send returned, then "done <N>". With
//       --kill-point, the first K records go out unarmed and NAME is armed
//       for record K, so a test can kill the producer after K commits.
//   take_and_hold  --bus B --mailbox M [--release 1]
//       receives one record and says "holding <position> <producer> <index>";
//       with --release 1 it calls done() first and says "released <position>".
//       Then it blocks until killed.
//   join_and_hold  --bus B
//       attaches, says "ready <slot> <generation>" and blocks until killed.
#include <unistd.h>

#include <chrono>
#include <vector>

#include "fault/stamped_record.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/detail/test_hook.hpp"
#include "support/child_roles.hpp"

namespace shmbus::test {

namespace {

using namespace std::chrono_literals;

[[noreturn]] void block_until_killed() {
  for (;;) ::pause();
}

Bus attach_or_die(const ChildArgs& args, const char* label) {
  auto bus = Bus::attach(arg_text(args, "bus"), {.label = label});
  if (!bus) die(bus.error().message());
  return std::move(*bus);
}

Mailbox open_or_die(Bus& bus, const ChildArgs& args) {
  auto mailbox = bus.open_mailbox(arg_text(args, "mailbox"));
  if (!mailbox) die(mailbox.error().message());
  return std::move(*mailbox);
}

int role_produce(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "produce");
  Mailbox mailbox = open_or_die(bus, args);
  const auto producer = static_cast<std::uint32_t>(arg_number(args, "id", 1));
  const long count = arg_number(args, "count", 1);
  const auto max_size =
      static_cast<std::size_t>(arg_number(args, "max-size", mailbox.max_record()));
  const long kill_at = arg_number(args, "kill-at-record", -1);
  const std::string kill_point = arg_text(args, "kill-point");
  if (max_size < kStampBytes || max_size > mailbox.max_record()) die("bad --max-size");
  say("ready");
  std::vector<std::byte> payload(max_size);
  for (long i = 0; i < count; ++i) {
    if (i == kill_at && !kill_point.empty()) {
      detail::arm_test_hook(kill_point.c_str(), 0, STDOUT_FILENO);
    }
    const Stamp stamp{producer, static_cast<std::uint32_t>(i)};
    const std::span<std::byte> record(payload.data(), stamped_size(stamp, max_size));
    write_stamp(record, stamp);
    auto sent = mailbox.send(record, deadline_in(30s), {}, WaitMode::park);
    if (!sent) die("send " + std::to_string(i) + ": " + std::string(to_string(sent.error())));
    say("sent " + std::to_string(i));
  }
  say("done " + std::to_string(count));
  return 0;
}

int role_take_and_hold(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "take-and-hold");
  Mailbox mailbox = open_or_die(bus, args);
  auto receiver = mailbox.receiver();
  if (!receiver) die(receiver.error().message());
  say("ready");
  auto delivery = receiver->receive(deadline_in(30s), WaitMode::park);
  if (!delivery) die("receive: " + std::string(to_string(delivery.error())));
  const std::uint64_t position = delivery->info().position;
  const auto stamp = read_stamp(delivery->payload());
  say("holding " + std::to_string(position) + " " +
      (stamp ? std::to_string(stamp->producer) + " " + std::to_string(stamp->index) : "torn"));
  if (arg_number(args, "release", 0) == 1) {
    delivery->done();
    say("released " + std::to_string(position));
  }
  block_until_killed();
}

int role_join_and_hold(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "join-and-hold");
  for (const ProcessInfo& row : bus.processes()) {
    if (row.ref == bus.self()) {
      say("ready " + std::to_string(row.slot) + " " + std::to_string(row.generation));
    }
  }
  block_until_killed();
}

}  // namespace

int run_fault_role(const std::string& role, const ChildArgs& args) {
  if (role == "fault_produce") return role_produce(args);
  if (role == "take_and_hold") return role_take_and_hold(args);
  if (role == "join_and_hold") return role_join_and_hold(args);
  return -1;
}

}  // namespace shmbus::test
