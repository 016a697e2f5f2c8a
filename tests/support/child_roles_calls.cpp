// child_roles_calls.cpp — roles of shmbus_test_child for the calls tests.
//
// Both roles speak the example mailer service: a request is a SendEmail whose
// subject is the call's id (decimal), whose body is how long the handler
// works (µs, decimal; empty = 0) and whose template_key "stall" makes the
// handler block until the test releases it; a reply is an EmailSent with
// message_id = the id and handled_by_pid = the server's pid (template_key
// "wrong_reply": a SendEmail instead, a reply of the wrong type).
//
//   call_server  serves --service; SIGUSR1 opens its gate (--hold 1: it waits
//                for the gate before serving; a "stall" call waits for it in
//                its handler); SIGTERM stops it. Then it prints the ids it
//                ran ("ran <id>…", "cast <id>…"), "counters k=v…", "done".
//   call_load    --threads × --calls calls with up to --window in flight per
//                thread, deadlines and handler times uniform in the given
//                ranges; prints its ledger "o <id> <outcome> <µs past the
//                deadline when the outcome came>", then "done <n>"; with
//                --linger 1 it stays attached until SIGUSR1 or SIGTERM.
//   Both take --cpu N (pin to a CPU) and --idle 1 (SCHED_IDLE).
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/schemas/mailer_generated.h"
#include "shmbus/schemas/mailer_reply_generated.h"
#include "shmbus/server.hpp"
#include "support/child_roles.hpp"

namespace shmbus::test {

namespace {

using namespace std::chrono_literals;
namespace mailer = shmbus::examples::mailer;

Bus attach_or_die(const ChildArgs& args, const char* label) {
  auto bus = Bus::attach(arg_text(args, "bus"), {.ready_timeout = 5s, .label = label});
  if (!bus) die(bus.error().message());
  return std::move(*bus);
}

// Every server of a service must register it with the same options.
ServiceOptions mailer_options(const ChildArgs& args) {
  ServiceOptions options;
  options.schema = ServiceSchema::of<mailer::SendEmail, mailer::EmailSent>("MAIL", "MALR");
  options.mailbox_capacity = static_cast<std::uint32_t>(arg_number(args, "capacity", 1024));
  return options;
}

std::uint64_t number_of(const flatbuffers::String* text) {
  return text == nullptr || text->size() == 0 ? 0 : std::stoull(text->str());
}

// Writes `lines` to stdout in blocks of a few KiB (few system calls).
void say_lines(const std::vector<std::string>& lines) {
  std::string block;
  for (const auto& line : lines) {
    if (!block.empty() && block.size() + line.size() > 4000) {
      say(block);
      block.clear();
    }
    if (!block.empty()) block += '\n';
    block += line;
  }
  if (!block.empty()) say(block);
}

// "<prefix> id id …" lines, 100 ids each.
void say_ids(const std::string& prefix, const std::vector<std::uint64_t>& ids) {
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < ids.size(); at += 100) {
    std::string line = prefix;
    for (std::size_t i = at; i < std::min(ids.size(), at + 100); ++i)
      line += " " + std::to_string(ids[i]);
    lines.push_back(std::move(line));
  }
  say_lines(lines);
}

// Opened once, by SIGUSR1 or SIGTERM.
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    opened_.notify_all();
  }
  bool wait(std::chrono::seconds limit) {
    std::unique_lock lock(mutex_);
    return opened_.wait_for(lock, limit, [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  bool open_ = false;
};

// Runs the handler work the request asks for and logs every id it runs.
class LoggingMailer : public Handler {
 public:
  explicit LoggingMailer(Gate& gate) : gate_(gate) { ran_.reserve(1 << 14); }

  void handle_call(const Request& request, ReplyWriter& reply) override {
    const auto* email = request.root<mailer::SendEmail>();
    const std::uint64_t id = number_of(email->subject());
    ran_.push_back(id);  // first: entering the handler is what "ran" means
    if (email->template_key() != nullptr && email->template_key()->str() == "stall") {
      say("stalled " + std::to_string(id));
      if (!gate_.wait(30s)) say("stall not released");
    }
    // The handler's work (the 1–20 ms handlers), not a wait for anything.
    std::this_thread::sleep_for(std::chrono::microseconds(number_of(email->body())));
    builder_.Clear();
    if (email->template_key() != nullptr && email->template_key()->str() == "wrong_reply") {
      // A well-formed message of the service's request type, not its reply type.
      builder_.Finish(mailer::CreateSendEmailDirect(builder_, "x@example.com"),
                      mailer::SendEmailIdentifier());
    } else {
      builder_.Finish(mailer::CreateEmailSent(builder_, id, mailer::Delivery::Sent, 0, ::getpid()),
                      mailer::EmailSentIdentifier());
    }
    (void)reply.assign(std::as_bytes(std::span(builder_.GetBufferPointer(), builder_.GetSize())));
  }

  void handle_cast(const Request& request) override {
    casts_.push_back(number_of(request.root<mailer::SendEmail>()->subject()));
  }

  [[nodiscard]] const std::vector<std::uint64_t>& ran() const { return ran_; }
  [[nodiscard]] const std::vector<std::uint64_t>& casts() const { return casts_; }

 private:
  Gate& gate_;
  flatbuffers::FlatBufferBuilder builder_{256};
  std::vector<std::uint64_t> ran_;
  std::vector<std::uint64_t> casts_;
};

// --cpu N pins this process to CPU N; --idle 1 makes it SCHED_IDLE (it runs
// only when nothing else on its CPU wants to). Before any thread exists, so
// every thread of the role inherits both.
void apply_placement(const ChildArgs& args) {
  if (const long cpu = arg_number(args, "cpu", -1); cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<int>(cpu), &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity failed");
  }
  if (arg_number(args, "idle", 0) != 0) {
    const sched_param param{};
    if (::sched_setscheduler(0, SCHED_IDLE, &param) != 0) die("SCHED_IDLE refused");
  }
}

sigset_t control_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  return set;
}

int role_call_server(const ChildArgs& args) {
  // Blocked before any thread exists, so only the signal thread takes them.
  const sigset_t signals = control_signals();
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  apply_placement(args);
  Bus bus = attach_or_die(args, "call-server");
  auto server = Server::start(bus, arg_text(args, "service", "mailer"), mailer_options(args));
  if (!server) die(server.error().message());
  Gate gate;
  std::thread signal_thread([&] {
    for (;;) {
      int signal = 0;
      if (::sigwait(&signals, &signal) != 0) continue;
      gate.open();
      if (signal == SIGTERM) return server->stop();
    }
  });
  LoggingMailer handler(gate);
  say("ready " + std::to_string(bus.self().value) + " " + std::to_string(::getpid()));
  if (arg_number(args, "hold", 0) != 0 && !gate.wait(30s)) die("never released");
  (void)server->serve(handler);
  signal_thread.join();
  say_ids("ran", handler.ran());
  say_ids("cast", handler.casts());
  const ServerCounters c = server->counters();
  say("counters calls=" + std::to_string(c.calls) + " casts=" + std::to_string(c.casts) +
      " replies=" + std::to_string(c.replies) + " expired_skipped=" +
      std::to_string(c.expired_skipped) + " late_replies=" + std::to_string(c.late_replies) +
      " caller_gone=" + std::to_string(c.caller_gone) +
      " bad_messages=" + std::to_string(c.bad_messages));
  say("done " + std::to_string(handler.ran().size()) + " " +
      std::to_string(handler.casts().size()));
  return 0;
}

struct LoadSpec {
  long process = 0, threads = 1, calls = 1, window = 1;
  long deadline_min_us = 0, deadline_max_us = 0, work_min_us = 0, work_max_us = 0;
};

struct InFlight {
  std::uint64_t id;
  PendingCall call;
};

// One caller thread: its calls, in flight up to spec.window at a time; the
// one whose deadline comes first is waited for first, so every wait() ends
// by that call's deadline. Appends its ledger lines to `ledger`.
void run_caller_thread(Service service, const LoadSpec& spec, long thread,
                       std::vector<std::string>& ledger) {
  std::mt19937_64 random(static_cast<std::uint64_t>(spec.process * 1000 + thread + 1));
  std::uniform_int_distribution<long> deadline_us(spec.deadline_min_us, spec.deadline_max_us);
  std::uniform_int_distribution<long> work_us(spec.work_min_us, spec.work_max_us);
  flatbuffers::FlatBufferBuilder builder(256);
  MessageBuffer scratch;
  std::vector<InFlight> window;
  auto finish_first = [&] {
    auto first = std::min_element(window.begin(), window.end(), [](const auto& a, const auto& b) {
      return a.call.deadline() < b.call.deadline();
    });
    auto outcome = first->call.wait();
    const auto late = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() -
                                                                            first->call.deadline());
    std::string result;
    if (!outcome) {
      result = to_string(outcome.error());
    } else {
      auto sent = outcome->read<mailer::EmailSent>("MALR", scratch);
      result = !sent ? "bad_reply" : (*sent)->message_id() != first->id ? "wrong_reply" : "reply";
    }
    ledger.push_back("o " + std::to_string(first->id) + " " + result + " " +
                     std::to_string(std::max<std::int64_t>(0, late.count())));
    window.erase(first);
  };
  for (long i = 0; i < spec.calls; ++i) {
    const auto id = static_cast<std::uint64_t>(spec.process * 1'000'000 + thread * 10'000 + i);
    builder.Clear();
    builder.Finish(mailer::CreateSendEmailDirect(builder, "load@example.com", "load",
                                                 std::to_string(id).c_str(),
                                                 std::to_string(work_us(random)).c_str(), ""),
                   mailer::SendEmailIdentifier());
    const auto bytes = std::as_bytes(std::span(builder.GetBufferPointer(), builder.GetSize()));
    CallOptions options;
    options.deadline = deadline_in(std::chrono::microseconds(deadline_us(random)));
    auto pending = service.send_request(bytes, options);
    if (!pending) {
      ledger.push_back("o " + std::to_string(id) + " " + to_string(pending.error()) + " 0");
    } else {
      window.push_back({id, std::move(*pending)});
    }
    while (static_cast<long>(window.size()) >= spec.window) finish_first();
  }
  while (!window.empty()) finish_first();
}

int role_call_load(const ChildArgs& args) {
  const sigset_t release = control_signals();
  ::pthread_sigmask(SIG_BLOCK, &release, nullptr);
  apply_placement(args);
  Bus bus = attach_or_die(args, "call-load");
  auto service = bus.service(arg_text(args, "service", "mailer"));
  if (!service) die(service.error().message());
  LoadSpec spec;
  spec.process = arg_number(args, "process", 0);
  spec.threads = arg_number(args, "threads", 1);
  spec.calls = arg_number(args, "calls", 1);
  spec.window = std::max(1L, arg_number(args, "window", 1));
  spec.deadline_min_us = arg_number(args, "deadline-min-us", 200'000);
  spec.deadline_max_us = arg_number(args, "deadline-max-us", spec.deadline_min_us);
  spec.work_min_us = arg_number(args, "work-min-us", 0);
  spec.work_max_us = arg_number(args, "work-max-us", spec.work_min_us);
  if (spec.threads > 100 || spec.calls > 10'000) die("ids need threads <= 100, calls <= 10000");
  say("ready " + std::to_string(bus.self().value));
  std::vector<std::vector<std::string>> ledgers(static_cast<std::size_t>(spec.threads));
  if (spec.threads == 1) {
    // No thread hand-off: the reply's wake-up runs this process to its exit.
    run_caller_thread(*service, spec, 0, ledgers[0]);
  } else {
    std::vector<std::thread> threads;
    for (long t = 0; t < spec.threads; ++t) {
      threads.emplace_back(run_caller_thread, *service, std::cref(spec), t,
                           std::ref(ledgers[static_cast<std::size_t>(t)]));
    }
    for (auto& thread : threads) thread.join();
  }
  std::size_t total = 0;
  for (const auto& ledger : ledgers) {
    say_lines(ledger);
    total += ledger.size();
  }
  say("done " + std::to_string(total));
  if (arg_number(args, "linger", 0) != 0) {
    // Stay attached until told to go: a caller that exits is something
    // servers see and count (caller_gone), which the test may not want.
    const timespec limit{60, 0};
    if (::sigtimedwait(&release, nullptr, &limit) < 0) die("never released");
  }
  return 0;
}

}  // namespace

int run_call_role(const std::string& role, const ChildArgs& args) {
  if (role == "call_server") return role_call_server(args);
  if (role == "call_load") return role_call_load(args);
  return -1;
}

}  // namespace shmbus::test
