// A service embedded in its own epoll loop, built only against the installed
// package: it serves "mailer" and, from the same loop, calls it with many
// calls in flight, learning of replies through Readiness's descriptor. Then
// it checks that idle, the loop uses (almost) no CPU. Exit 0: every step worked.
#include <shmbus/schemas/mailer_generated.h>
#include <shmbus/schemas/mailer_reply_generated.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <cstdio>
#include <ctime>
#include <optional>
#include <shmbus/shmbus.hpp>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace mailer = shmbus::examples::mailer;
using namespace std::chrono_literals;

int fail(const char* step, const std::string& why) {
  std::fprintf(stderr, "shmbus_embedded_service: %s: %s\n", step, why.c_str());
  return 1;
}

struct RemoveBus {
  std::string name;
  ~RemoveBus() { (void)shmbus::Bus::remove(name); }
};

std::span<const std::byte> bytes_of(const flatbuffers::FlatBufferBuilder& builder) {
  return {reinterpret_cast<const std::byte*>(builder.GetBufferPointer()), builder.GetSize()};
}

// Replies EmailSent{accepted, message_id = the subject's length}.
struct Mailer : shmbus::Handler {
  flatbuffers::FlatBufferBuilder builder;
  void handle_call(const shmbus::Request& request, shmbus::ReplyWriter& reply) override {
    const auto* email = request.root<mailer::SendEmail>();
    builder.Clear();
    const auto subject_size = email->subject() == nullptr ? 0u : email->subject()->size();
    mailer::FinishEmailSentBuffer(builder, mailer::CreateEmailSent(builder, subject_size, mailer::Delivery::Sent));
    (void)reply.assign(bytes_of(builder));
  }
  void handle_cast(const shmbus::Request&) override {}
};

// Voluntary context switches of the Readiness waiter threads (named
// "shmbus-…"; a sanitizer's own background thread is not ours to judge): a
// waiter that sleeps in the kernel for the whole idle window adds none, one
// woken by a timer adds one per wake-up.
long waiter_switches(int* threads = nullptr) {
  long total = 0;
  int found = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind("shmbus-", 0) != 0) continue;
    ++found;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) total += std::stol(line.substr(24));
    }
  }
  if (threads != nullptr) *threads = found;
  return total;
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

int run() {
  const std::string name = "embedded_" + std::to_string(::getpid());
  auto bus = shmbus::Bus::create(name, {.label = "embedded"});
  if (!bus) return fail("Bus::create", bus.error().message());
  RemoveBus remove_at_exit{name};
  const shmbus::ServiceOptions options{
      .schema = shmbus::ServiceSchema::of<mailer::SendEmail, mailer::EmailSent>("MAIL", "MALR")};
  auto server = shmbus::Server::start(*bus, "mailer", options);
  if (!server) return fail("Server::start", server.error().message());
  auto service = bus->service("mailer");
  if (!service) return fail("Bus::service", service.error().message());
  auto readiness = shmbus::Readiness::create(*bus, &*server);
  if (!readiness) return fail("Readiness::create", readiness.error().message());

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event event{};
  event.events = EPOLLIN;
  epoll_ctl(ep, EPOLL_CTL_ADD, readiness->fd(), &event);

  constexpr int kCalls = 48;
  std::vector<std::optional<shmbus::PendingCall>> calls;
  for (int i = 0; i < kCalls; ++i) {
    flatbuffers::FlatBufferBuilder builder;
    const std::string subject(static_cast<std::size_t>(i), 's');
    mailer::FinishSendEmailBuffer(
        builder, mailer::CreateSendEmailDirect(builder, "ada@example.org", "Ada", subject.c_str(), "", ""));
    auto pending = service->send_request(bytes_of(builder), {.deadline = shmbus::deadline_in(10s)});
    if (!pending) return fail("send_request", shmbus::to_string(pending.error()));
    calls.emplace_back(std::move(*pending));
  }
  Mailer handler;
  shmbus::MessageBuffer scratch;
  int replied = 0;
  while (replied < kCalls) {
    epoll_event ready{};
    if (epoll_wait(ep, &ready, 1, 10000) != 1) return fail("epoll_wait", "no readiness in 10 s");
    readiness->drain();
    while (server->serve_one(handler, shmbus::Clock::now())) {
    }
    for (int i = 0; i < kCalls; ++i) {
      if (!calls[i]) continue;
      auto reply = calls[i]->poll();
      if (!reply && reply.error() == shmbus::Errc::empty) continue;
      if (!reply) return fail("poll", shmbus::to_string(reply.error()));
      auto sent = reply->read<mailer::EmailSent>("MALR", scratch);
      if (!sent || (*sent)->message_id() != static_cast<std::uint64_t>(i)) {
        return fail("reply", "call " + std::to_string(i) + " got another call's reply");
      }
      calls[i].reset();
      ++replied;
    }
  }
  std::printf("served and collected %d calls from one epoll loop\n", replied);

  // Idle: the waiter threads sleep in the kernel and nothing becomes
  // readable. A signal raised just before the last look may still be
  // pending (readiness can be spurious, never missing): drain it, once.
  // Both waiter threads have started (named themselves): on a busy machine
  // the call waiter may not have run yet, since this loop collects its own
  // replies right after serving them.
  int waiters = 0;
  const auto named_by = std::chrono::steady_clock::now() + 10s;
  while ((void)waiter_switches(&waiters), waiters != 2 && std::chrono::steady_clock::now() < named_by) {
    std::this_thread::yield();
  }
  if (waiters != 2) return fail("idle", "expected 2 Readiness waiter threads, found " + std::to_string(waiters));
  double used = 0;
  int quiet_windows = 0;
  for (int spurious = 0;; ++spurious) {
    if (spurious > 2) return fail("idle", "the descriptor kept becoming readable with no work");
    const double before = cpu_seconds();
    const long switches_before = waiter_switches();
    epoll_event idle{};
    const int woken = epoll_wait(ep, &idle, 1, 300);
    used = cpu_seconds() - before;
    if (woken == 0) {
      // Only after the first quiet window: the waiters' last wake-ups of the
      // busy phase (after the final drain; the call waiter's last liveness
      // check, at most 50 ms on) may fall into it. Then: none at all.
      const long wakeups = waiter_switches() - switches_before;
      if (quiet_windows++ == 0) continue;
      if (wakeups != 0) {
        return fail("idle", "the waiter threads woke " + std::to_string(wakeups) + " times in 0.3 s");
      }
      break;
    }
    readiness->drain();
    if (server->serve_one(handler, shmbus::Clock::now())) return fail("idle", "work appeared");
  }
  ::close(ep);
  if (used > 0.03) return fail("idle", "used " + std::to_string(used) + " s of CPU in 0.3 s idle");
  std::printf("idle 0.3 s: %.4f s of CPU\n", used);
  return 0;
}

}  // namespace

int main() {
  const int status = run();
  if (status == 0) std::printf("shmbus_embedded_service: ok\n");
  return status;
}
