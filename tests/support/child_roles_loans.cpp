// Roles of the loan tests: servers that read loaned casts in place, senders
// that loan blocks of many sizes and cast them, and a sender of one loan
// (loan_one) for the kill points of the loan path.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "shmbus/server.hpp"
#include "support/child_roles.hpp"
#include "support/loan_pattern.hpp"

namespace shmbus::test {

namespace {

using namespace std::chrono_literals;

// A loaned payload: id and size at the front, id ^ kTrailer at the back, so a
// reader sees whether the block it got is the one that was sent, whole.
constexpr std::uint64_t kTrailer = 0x6c6f616e5f656e64ULL;  // "loan_end"

Server* g_server = nullptr;
void stop_on_signal(int) {
  if (g_server != nullptr) g_server->stop();  // async-signal-safe
}

Bus attach_or_die(const ChildArgs& args, const char* label) {
  auto bus = Bus::attach(arg_text(args, "bus"), {.ready_timeout = 5s, .label = label});
  if (!bus) die(bus.error().message());
  return std::move(*bus);
}

ServiceOptions loan_options(const ChildArgs& args) {
  ServiceOptions options;
  options.mailbox_capacity = static_cast<std::uint32_t>(arg_number(args, "capacity", 256));
  options.max_deliveries = static_cast<std::uint32_t>(arg_number(args, "max-deliveries", 3));
  return options;
}

void say_ids(const std::string& prefix, const std::vector<std::uint64_t>& ids) {
  for (std::size_t at = 0; at < ids.size(); at += 200) {
    std::string line = prefix;
    for (std::size_t i = at; i < std::min(ids.size(), at + 200); ++i) line += " " + std::to_string(ids[i]);
    say(line);
  }
}

struct LoanReader : Handler {
  std::vector<std::uint64_t> got;
  std::uint64_t torn = 0;
  void handle_call(const Request&, ReplyWriter&) override {}
  void handle_cast(const Request& request) override {
    const auto payload = request.payload();
    std::uint64_t id = 0, size = 0, trailer = 0;
    if (payload.size() < 24) {
      ++torn;
      return;
    }
    std::memcpy(&id, payload.data(), 8);
    std::memcpy(&size, payload.data() + 8, 8);
    std::memcpy(&trailer, payload.data() + payload.size() - 8, 8);
    if (size != payload.size() || trailer != (id ^ kTrailer)) {
      ++torn;
      return;
    }
    got.push_back(id);
    // At once: a server killed later has still reported what it ran (a cast
    // killed between here and done() is redelivered: reported twice).
    say("got " + std::to_string(id));
  }
};

// --service NAME [--capacity N] [--max-deliveries N]: serves loaned casts until SIGTERM, printing "got <id>" for
// each; then "torn N" and "done N".
int role_loan_server(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "loan-server");
  auto server = Server::start(bus, arg_text(args, "service", "blobs"), loan_options(args));
  if (!server) die(server.error().message());
  g_server = &*server;
  ::signal(SIGTERM, stop_on_signal);
  LoanReader reader;
  reader.got.reserve(1 << 15);
  say("ready");
  (void)server->serve(reader);
  say("torn " + std::to_string(reader.torn));
  say("done " + std::to_string(reader.got.size()));
  return 0;
}

// --count N --seed S --big K: N loans of log-uniform sizes in 64 B … 1 MiB,
// K of them 64 MiB, each cast once accepted. Prints "sent id…" every 100
// accepted casts (and at the end), then "done N".
int role_loan_sender(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "loan-sender");
  auto service = bus.service(arg_text(args, "service", "blobs"));
  if (!service) die(service.error().message());
  const long count = arg_number(args, "count", 1000);
  const long seed = arg_number(args, "seed", 1);
  const long big = arg_number(args, "big", 0);
  std::mt19937_64 random(static_cast<std::uint64_t>(seed));
  std::uniform_real_distribution<double> log_size(std::log(64.0), std::log(double(1 << 20)));
  std::vector<std::uint64_t> sent;
  say("ready");
  for (long i = 0; i < count; ++i) {
    const auto id = static_cast<std::uint64_t>(seed * 1'000'000 + i);
    const bool large = big > 0 && i % (count / big) == 0 && i / (count / big) < big;
    const std::size_t size = large ? std::size_t{64} << 20
                                   : std::max<std::size_t>(24, static_cast<std::size_t>(std::exp(log_size(random))));
    auto loan = bus.loan(size, {.deadline = deadline_in(60s)});
    if (!loan) die("loan of " + std::to_string(size) + ": " + to_string(loan.error()));
    const std::uint64_t length = size;
    const std::uint64_t trailer = id ^ kTrailer;
    std::memcpy(loan->bytes().data(), &id, 8);
    std::memcpy(loan->bytes().data() + 8, &length, 8);
    std::memcpy(loan->bytes().data() + size - 8, &trailer, 8);
    auto accepted = service->cast(std::move(*loan), {.deadline = deadline_in(60s)});
    if (!accepted) die("cast: " + std::string(to_string(accepted.error())));
    sent.push_back(id);
    if (sent.size() == 100) {
      say_ids("sent", sent);
      sent.clear();
    }
  }
  say_ids("sent", sent);
  say("done " + std::to_string(count));
  return 0;
}

// --id I --size S [--hold 1]: one loan of S bytes (loan_pattern.hpp's
// payload of id I), cast once: "loaned <block>", then "sent <id>", "done 1".
// With --hold 1 it never casts: "holding <block>", then it blocks until killed.
// Kill points of the send (--stop-at loan_before_commit, ring_after_claim)
// stop it midway.
int role_loan_one(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "loan-one");
  auto service = bus.service(arg_text(args, "service", "blobs"));
  if (!service) die(service.error().message());
  const auto id = static_cast<std::uint64_t>(arg_number(args, "id", 1));
  const auto size = static_cast<std::size_t>(arg_number(args, "size", 1000));
  say("ready");
  auto loan = bus.loan(size, {.deadline = deadline_in(10s)});
  if (!loan) die("loan of " + std::to_string(size) + ": " + to_string(loan.error()));
  fill_loan_payload(loan->payload(), id);
  if (arg_number(args, "hold", 0) != 0) {
    say("holding " + std::to_string(loan->block()));
    for (;;) ::pause();
  }
  say("loaned " + std::to_string(loan->block()));
  auto accepted = service->cast(std::move(*loan), {.deadline = deadline_in(10s)});
  if (!accepted) die("cast: " + std::string(to_string(accepted.error())));
  say("sent " + std::to_string(id));
  say("done 1");
  return 0;
}

// Calls the service once and holds the (loaned) reply until killed:
// "holding <bytes>" once the reply is in hand.
int role_loan_caller(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "loan-caller");
  auto service = bus.service(arg_text(args, "service", "blobs"));
  if (!service) die(service.error().message());
  say("ready");
  const std::uint64_t request = 1;
  auto reply = service->call(std::as_bytes(std::span(&request, 1)), {.deadline = deadline_in(10s)});
  if (!reply) die("call: " + std::string(to_string(reply.error())));
  say(std::string(reply->loaned() ? "holding " : "copied ") + std::to_string(reply->payload().size()));
  for (;;) ::pause();
}

}  // namespace

int run_loan_role(const std::string& role, const ChildArgs& args) {
  if (role == "loan_caller") return role_loan_caller(args);
  if (role == "loan_server") return role_loan_server(args);
  if (role == "loan_sender") return role_loan_sender(args);
  if (role == "loan_one") return role_loan_one(args);
  return -1;
}

}  // namespace shmbus::test
