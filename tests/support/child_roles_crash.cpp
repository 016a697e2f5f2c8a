// Roles for the crash tests (tests/fault/*crash*_test.cpp); the wire is
// fault/crash_wire.hpp.
//
//   crash_server    --bus B --service S [--capacity C] [--max-deliveries D]
//                   [--dead-letters E] [--log L] [--gate G]
//       starts a server of S (options: crash_service_options(C, D, E)), says
//       "ready" and serves until killed. Its handler does the CrashAction of
//       each request: replies (calls), blocks, dies of poison, or waits for a
//       record in mailbox G. With --log, every run that ends is logged to L.
//   crash_caller    --bus B --service S --count N [--gate-at K [--gate-count G]]
//                   [--work 1|--slow 1] [--deadline-ms D] [--wait 1]
//       sends calls 0…N-1 with send_request (calls K…K+G-1 with action gate,
//       the others reply, or work / slow), says
//       "sent <N>", then holds them until killed; with --wait 1 it waits for
//       every outcome, says "done replied=<r> failed=<f>" and exits (with
//       --hold 1 it stays attached until killed).
//   crash_register  --bus B --service S [--capacity C]
//       registers S (crash_service_options(C)), says "registered" and exits.
//       With --stop-at registry_before_live it stops before the entry is live.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <vector>

#include "fault/crash_wire.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/server.hpp"
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

ServiceOptions options_from(const ChildArgs& args) {
  return crash_service_options(static_cast<std::uint32_t>(arg_number(args, "capacity", 1024)),
                               static_cast<std::uint32_t>(arg_number(args, "max-deliveries", 3)),
                               static_cast<std::uint32_t>(arg_number(args, "dead-letters", 64)));
}

class CrashHandler : public Handler {
 public:
  CrashHandler(std::optional<Mailbox> log, std::optional<Receiver> gate)
      : log_(std::move(log)), gate_(std::move(gate)) {}

  void handle_call(const Request& request, ReplyWriter& reply) override {
    const CrashRequest got = act(request, CrashKind::call);
    if (!reply.assign(wire_bytes(CrashReply{got.index + 1, ::getpid()}))) die("reply too large");
  }
  void handle_cast(const Request& request) override { (void)act(request, CrashKind::cast); }

 private:
  // Does what the request asks before the handler ends; logs the run.
  CrashRequest act(const Request& request, CrashKind kind) {
    const auto got = read_wire<CrashRequest>(request.payload());
    if (!got) die("a request that is not a CrashRequest");
    const RecordInfo& info = request.info();
    const std::string what = (kind == CrashKind::call ? "call " : "cast ") + std::to_string(got->index);
    switch (got->action) {
      case CrashAction::reply: break;
      case CrashAction::work:
      case CrashAction::slow: {
        const Deadline until = Clock::now() + (got->action == CrashAction::work ? kWorkTime : kSlowTime);
        while (Clock::now() < until) {
        }
        break;
      }
      case CrashAction::block:
        if (info.deliveries == 1) {
          say("blocking " + what);
          block_until_killed();
        }
        break;
      case CrashAction::poison:
        say("poisoned " + std::to_string(got->index) + " " + std::to_string(info.deliveries));
        ::kill(::getpid(), SIGKILL);
        block_until_killed();
      case CrashAction::gate: {
        say("gated " + std::to_string(got->index));
        if (!gate_) die("gate request without --gate");
        auto opened = gate_->receive(deadline_in(60s), WaitMode::park);
        if (!opened) die("the gate never opened");
        break;
      }
    }
    if (log_) {
      const CrashLog entry{got->index, kind, ::getpid(), info.deliveries, info.redelivered ? 1u : 0u};
      auto sent = log_->send(wire_bytes(entry), deadline_in(30s));
      if (!sent) die("log: " + std::string(to_string(sent.error())));
    }
    return *got;
  }

  std::optional<Mailbox> log_;
  std::optional<Receiver> gate_;
};

int role_server(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "crash-server");
  std::optional<Mailbox> log;
  if (auto name = arg_text(args, "log"); !name.empty()) {
    auto opened = bus.open_mailbox(name);
    if (!opened) die(opened.error().message());
    log.emplace(std::move(*opened));
  }
  std::optional<Mailbox> gate_mailbox;
  std::optional<Receiver> gate;
  if (auto name = arg_text(args, "gate"); !name.empty()) {
    auto opened = bus.open_mailbox(name);
    if (!opened) die(opened.error().message());
    gate_mailbox.emplace(std::move(*opened));
    auto receiver = gate_mailbox->receiver();
    if (!receiver) die(receiver.error().message());
    gate.emplace(std::move(*receiver));
  }
  auto server = Server::start(bus, arg_text(args, "service"), options_from(args));
  if (!server) die(server.error().message());
  CrashHandler handler(std::move(log), std::move(gate));
  say("ready");
  (void)server->serve(handler);
  return 0;
}

int role_caller(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "crash-caller");
  auto service = bus.service(arg_text(args, "service"));
  if (!service) die(service.error().message());
  const long count = arg_number(args, "count", 1);
  const long gate_at = arg_number(args, "gate-at", -1);
  const long gate_end = gate_at < 0 ? -1 : gate_at + arg_number(args, "gate-count", 1);
  const CrashAction plain = arg_number(args, "work", 0) == 1   ? CrashAction::work
                            : arg_number(args, "slow", 0) == 1 ? CrashAction::slow
                                                               : CrashAction::reply;
  const Deadline deadline = deadline_in(std::chrono::milliseconds(arg_number(args, "deadline-ms", 20000)));
  std::vector<PendingCall> pending;  // held: destroying one would cancel it
  for (long i = 0; i < count; ++i) {
    const CrashRequest request{static_cast<std::uint64_t>(i),
                               i >= gate_at && i < gate_end ? CrashAction::gate : plain};
    auto sent = service->send_request(wire_bytes(request), call_until(deadline));
    if (!sent) die("send_request " + std::to_string(i) + ": " + to_string(sent.error()));
    pending.push_back(std::move(*sent));
  }
  say("sent " + std::to_string(count));
  if (arg_number(args, "wait", 0) != 1) block_until_killed();
  long replied = 0;
  long failed = 0;
  for (std::size_t i = 0; i < pending.size(); ++i) {
    auto outcome = pending[i].wait();
    const auto reply = outcome ? read_wire<CrashReply>(outcome->payload()) : std::nullopt;
    if (reply && reply->index == i + 1) {
      ++replied;
    } else {
      ++failed;
      say("call " + std::to_string(i) + ": " + (outcome ? "wrong reply" : to_string(outcome.error())));
    }
  }
  say("done replied=" + std::to_string(replied) + " failed=" + std::to_string(failed));
  if (arg_number(args, "hold", 0) == 1) block_until_killed();
  return 0;
}

int role_register(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "crash-register");
  auto registered = bus.register_service(arg_text(args, "service"), options_from(args));
  if (!registered) die(registered.error().message());
  say("registered");
  return 0;
}

}  // namespace

int run_crash_role(const std::string& role, const ChildArgs& args) {
  if (role == "crash_server") return role_server(args);
  if (role == "crash_caller") return role_caller(args);
  if (role == "crash_register") return role_register(args);
  return -1;
}

}  // namespace shmbus::test
