// Roles for the keyed-routing process test (tests/process/keyed_process_test.cpp);
// the wire and the handling log are process/keyed_wire.hpp.
//
//   keyed_server    --bus B --log L --id I [--victim 1] [--stop-in-hand 1]
//       serves the keyed service (keyed_service_options()), parked when idle,
//       logging every run in L as server I; says "ready". SIGTERM stops it:
//       it finishes the message in hand, leaves the pool, says
//       "done handled=<n>" and exits 0. With --stop-in-hand 1, SIGTERM
//       instead makes the handler of the next message call Server::stop(),
//       say "stopping in hand <key> <seq>" and keep that message in hand for
//       2 ms more before it ends: the bus must not hand the partition over
//       before. With --victim 1, SIGUSR1 (SIGUSR2) makes it hold the next
//       cast (call) it takes on first delivery: it logs the run's start,
//       says "holding <key> <seq>" and blocks until killed.
//   keyed_producer  --bus B --log L --producer p --producers P --keys K
//                   [--burst N] [--call-every M] [--max-rounds R]
//       sends rounds: in round r, for every key k < K with k mod P = p, the
//       messages {k, s} for s = rN … rN+N-1 back to back (so a partition's
//       ring holds runs of one key, which two consumers at once would
//       reorder), with key k, each as a call when keyed_is_call(k, s, M),
//       else as a cast (waiting for room). Stops after the round in which the
//       log's stop_producers is set (or after R rounds), says
//       "done rounds=<r> casts=<c> calls=<q>" and exits 0. A call that ends
//       in server_crashed is reported as "crashed <key> <seq>"; any other
//       failure, or a reply that is not the call's echo, is an error.
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "process/keyed_wire.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/server.hpp"
#include "support/child_roles.hpp"

namespace shmbus::test {

namespace {

using namespace std::chrono_literals;

std::atomic<Server*> g_server{nullptr};
std::atomic<int> g_hold{-1};  // the KeyedKind to hold, -1: none
bool g_stop_in_hand = false;  // set before the handlers are installed
std::atomic<bool> g_stop_asked{false};

void on_sigterm(int) {
  if (g_stop_in_hand) {
    g_stop_asked.store(true);
  } else if (Server* server = g_server.load()) {
    server->stop();
  }
}
void on_sigusr1(int) { g_hold.store(static_cast<int>(KeyedKind::cast)); }
void on_sigusr2(int) { g_hold.store(static_cast<int>(KeyedKind::call)); }

void install(int signal, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (::sigaction(signal, &action, nullptr) != 0) die("sigaction");
}

Bus attach_or_die(const ChildArgs& args, const char* label) {
  auto bus_result = Bus::attach(arg_text(args, "bus"), {.ready_timeout = 5s, .label = label});
  if (!bus_result) die(bus_result.error().message());
  return std::move(*bus_result);
}

KeyedLog open_log_or_die(const ChildArgs& args) {
  auto log = KeyedLog::open(arg_text(args, "log"));
  if (!log.ok()) die("cannot map the log " + arg_text(args, "log"));
  return log;
}

class KeyedHandler : public Handler {
 public:
  KeyedHandler(const KeyedLog& log, std::uint16_t id, bool victim)
      : log_(log), id_(id), victim_(victim) {}

  void handle_call(const Request& request, ReplyWriter& reply) override {
    const KeyedMessage message = run(request, KeyedKind::call);
    if (!reply.assign(keyed_bytes(message))) die("reply too large");
  }
  void handle_cast(const Request& request) override { (void)run(request, KeyedKind::cast); }

  [[nodiscard]] std::uint64_t handled() const noexcept { return handled_; }

 private:
  KeyedMessage run(const Request& request, KeyedKind kind) {
    const auto maybe_message = read_keyed(request.payload());
    if (!maybe_message) die("a message that is not a KeyedMessage");
    const KeyedMessage& message = *maybe_message;
    if (message.kind != kind) die("a message run as the wrong kind");
    const RecordInfo& info = request.info();
    const std::uint64_t slot = log_.header().slots.fetch_add(1);
    if (slot >= log_.header().capacity) die("the log is full");
    KeyedLogEntry& entry = log_.entry(slot);
    entry.key = message.key;
    entry.seq = message.seq;
    entry.server = id_;
    entry.flags = static_cast<std::uint8_t>((info.redelivered ? kEntryRedelivered : 0) |
                                            (kind == KeyedKind::call ? kEntryCall : 0));
    entry.deliveries = info.deliveries;
    store_word(entry.start, log_.next_ticket());
    if (victim_ && !info.redelivered && g_hold.load() == static_cast<int>(kind)) {
      say("holding " + std::to_string(message.key) + " " + std::to_string(message.seq));
      for (;;) ::pause();  // until kill -9: a cast is redelivered to a sibling, a call crashes
    }
    if (g_stop_asked.exchange(false)) {
      g_server.load()->stop();
      say("stopping in hand " + std::to_string(message.key) + " " + std::to_string(message.seq));
      // Still in hand: a sibling that took the partition now would run the
      // key's next message at once, and the log would show the overlap.
      const auto until = std::chrono::steady_clock::now() + 2ms;
      while (std::chrono::steady_clock::now() < until) sched_yield();
    }
    store_word(entry.end, log_.next_ticket());
    log_.header().finished.fetch_add(1);
    ++handled_;
    return message;
  }

  const KeyedLog& log_;
  std::uint16_t id_;
  bool victim_;
  std::uint64_t handled_ = 0;
};

int role_server(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "keyed-server");
  const KeyedLog log = open_log_or_die(args);
  const bool victim = arg_number(args, "victim", 0) == 1;
  g_stop_in_hand = arg_number(args, "stop-in-hand", 0) == 1;
  KeyedHandler handler(log, static_cast<std::uint16_t>(arg_number(args, "id", 0)), victim);
  {
    auto server_result = Server::start(bus, kKeyedService, keyed_service_options());
    if (!server_result) die(server_result.error().message());
    Server& server = *server_result;
    g_server.store(&server);
    install(SIGTERM, on_sigterm);
    if (victim) {
      install(SIGUSR1, on_sigusr1);
      install(SIGUSR2, on_sigusr2);
    }
    say("ready");
    (void)server.serve(handler, {.mode = WaitMode::park});
    g_server.store(nullptr);
  }  // ~Server: leaves the pool, its partitions go to the others
  say("done handled=" + std::to_string(handler.handled()));
  return 0;
}

int role_producer(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "keyed-producer");
  const KeyedLog log = open_log_or_die(args);
  auto service_result = bus.service(kKeyedService);
  if (!service_result) die(service_result.error().message());
  Service& service = *service_result;
  const auto producer = static_cast<std::uint64_t>(arg_number(args, "producer", 0));
  const auto producers = static_cast<std::uint64_t>(arg_number(args, "producers", 1));
  const auto keys = static_cast<std::uint64_t>(arg_number(args, "keys", 1000));
  const auto burst = static_cast<std::uint32_t>(arg_number(args, "burst", 1));
  const long call_every = arg_number(args, "call-every", 0);
  const long max_rounds = arg_number(args, "max-rounds", 1000);
  say("ready");
  std::uint64_t casts = 0;
  std::uint64_t calls = 0;
  auto send = [&](std::uint64_t key, std::uint32_t seq) {
    const bool call = keyed_is_call(key, seq, call_every);
    const KeyedMessage message{key, seq, call ? KeyedKind::call : KeyedKind::cast};
    const std::string what = std::to_string(key) + " " + std::to_string(seq);
    if (!call) {
      auto sent = service.cast(keyed_bytes(message), {.deadline = deadline_in(30s), .key = key});
      if (!sent) die("cast " + what + ": " + to_string(sent.error()));
      ++casts;
      return;
    }
    ++calls;
    auto reply = service.call(keyed_bytes(message), {.deadline = deadline_in(30s), .key = key});
    if (!reply && reply.error() == Errc::server_crashed) {
      say("crashed " + what);  // its server was killed running it: not run again
      return;
    }
    if (!reply) die("call " + what + ": " + to_string(reply.error()));
    const auto maybe_echo = read_keyed(reply->payload());
    if (!maybe_echo || maybe_echo->key != key || maybe_echo->seq != seq) {
      die("call " + what + ": wrong reply");
    }
  };
  long rounds = 0;
  while (rounds < max_rounds) {
    for (std::uint64_t key = producer; key < keys; key += producers) {
      for (std::uint32_t b = 0; b < burst; ++b)
        send(key, static_cast<std::uint32_t>(rounds) * burst + b);
    }
    ++rounds;
    if (log.header().stop_producers.load() != 0) break;
  }
  say("done rounds=" + std::to_string(rounds) + " casts=" + std::to_string(casts) +
      " calls=" + std::to_string(calls));
  return 0;
}

}  // namespace

int run_keyed_role(const std::string& role, const ChildArgs& args) {
  if (role == "keyed_server") return role_server(args);
  if (role == "keyed_producer") return role_producer(args);
  return -1;
}

}  // namespace shmbus::test
