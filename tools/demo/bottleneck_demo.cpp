// shmbus_bottleneck_demo — `./tools/dev demo --bottleneck`: the GenServer's two traps,
// and how shmbus removes them.
//
// A mailer service whose send_mail takes 5 ms:
//   1. one server, 100 callers (300 calls), 200 ms deadlines: the bottleneck. Many calls
//      time out, and every one is accounted for: a call the server never
//      began is `timeout_not_started` (and it never will run it), one it was
//      running is `timeout_in_progress`; the server's own counters agree.
//   2. a pool of 8 worker processes behind the same name, 2 s deadlines:
//      every call is answered.
//   3. a worker dies (kill -9) while running a call: its caller gets
//      `server_crashed` at once, not at the deadline; a cast it was running
//      goes to a sibling, marked redelivered. Nothing is lost silently.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <shmbus/schemas/mailer_generated.h>
#include <shmbus/schemas/mailer_reply_generated.h>

#include "shmbus/shmbus.hpp"
#include "spawn.hpp"

namespace mailer = shmbus::examples::mailer;
using namespace std::chrono_literals;

namespace {

std::vector<std::byte> encode(const char* to, const char* subject) {
  flatbuffers::FlatBufferBuilder builder(256);
  mailer::FinishSendEmailBuffer(
      builder, mailer::CreateSendEmailDirect(builder, to, "Ada", subject, "Hello from shmbus.", ""));
  const auto* data = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
  return {data, data + builder.GetSize()};
}

std::vector<pid_t> start_workers(const shmbus::Bus& bus, int count) {
  const std::string worker = shmbus::demo::own_directory() + "/shmbus_mailer_worker";
  std::vector<pid_t> pids;
  for (int i = 0; i < count; ++i) pids.push_back(shmbus::demo::spawn(worker, {"--bus", bus.name()}));
  return pids;
}

void stop_workers(std::vector<pid_t>& pids) {
  for (pid_t pid : pids) ::kill(pid, SIGTERM);
  for (pid_t pid : pids) (void)shmbus::demo::reap(pid);
  pids.clear();
}

bool wait_for_servers(shmbus::Bus& bus, std::size_t count) {
  const auto until = shmbus::deadline_in(10s);
  while (shmbus::Clock::now() < until) {
    for (const auto& s : bus.services()) {
      if (s.name == "mailer" && s.servers.size() == count) return true;
    }
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

// 300 calls from 100 threads; returns the count of each outcome.
std::map<std::string, int> call_storm(shmbus::Service& mailer_service, std::chrono::milliseconds deadline) {
  std::map<std::string, int> outcomes;
  std::mutex lock;
  std::vector<std::thread> callers;
  const auto email = encode("grace@example.org", "Invoice");
  for (int t = 0; t < 100; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 3; ++i) {
        auto reply = mailer_service.call(email, {.deadline = shmbus::deadline_in(deadline)});
        const std::string outcome = reply ? "reply" : shmbus::to_string(reply.error());
        const std::lock_guard guard(lock);
        ++outcomes[outcome];
      }
    });
  }
  for (auto& c : callers) c.join();
  return outcomes;
}

void print_outcomes(const std::map<std::string, int>& outcomes) {
  int total = 0;
  for (const auto& [name, count] : outcomes) {
    std::printf("    %-20s %d\n", name.c_str(), count);
    total += count;
  }
  std::printf("    %-20s %d (every call has exactly one outcome)\n", "total", total);
}

// The mailer's row (services() is a snapshot: keep the vector alive).
shmbus::ServiceInfo find_mailer(shmbus::Bus& bus) {
  for (auto& s : bus.services()) {
    if (s.name == "mailer") return s;
  }
  return {};  // registered by the first worker before we look: cannot happen
}

int run(shmbus::Bus& bus) {
  std::vector<pid_t> workers = start_workers(bus, 1);
  if (!wait_for_servers(bus, 1)) return std::fprintf(stderr, "the worker did not start\n"), 1;
  auto service = bus.service("mailer");
  if (!service) return std::fprintf(stderr, "%s\n", service.error().message().c_str()), 1;

  std::printf("1. one mailer server (5 ms per email), 100 callers, 300 calls, 200 ms deadlines:\n");
  print_outcomes(call_storm(*service, 200ms));
  // The server is still skipping the requests whose callers gave up: let it
  // reach the end of the queue, so both ledgers cover the same 300 calls.
  const auto settled = shmbus::deadline_in(10s);
  auto before = find_mailer(bus).totals;
  while (before.calls + before.expired_skipped < 300 && shmbus::Clock::now() < settled) {
    std::this_thread::sleep_for(1ms);
    before = find_mailer(bus).totals;
  }
  std::printf("    server side: ran %llu calls, skipped %llu whose callers had given up "
              "(expired_skipped), %llu late replies\n\n",
              static_cast<unsigned long long>(before.calls),
              static_cast<unsigned long long>(before.expired_skipped),
              static_cast<unsigned long long>(before.late_replies));

  auto more = start_workers(bus, 7);
  workers.insert(workers.end(), more.begin(), more.end());
  if (!wait_for_servers(bus, 8)) return std::fprintf(stderr, "the pool did not start\n"), 1;
  std::printf("2. a pool of 8 mailer processes behind the same name, 2 s deadlines:\n");
  print_outcomes(call_storm(*service, 2s));

  std::printf("\n3. a worker dies (kill -9) while running a call, then while running a cast:\n");
  const auto start = shmbus::Clock::now();
  auto crashed = service->call(encode("ken@example.org", "crash"), {.deadline = shmbus::deadline_in(30s)});
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(shmbus::Clock::now() - start);
  std::printf("    call: %s after %lld ms (deadline was 30 s)\n",
              crashed ? "reply" : shmbus::to_string(crashed.error()), static_cast<long long>(took.count()));
  (void)service->cast(encode("linus@example.org", "crash"), {.deadline = shmbus::deadline_in(1s)});
  const auto until = shmbus::deadline_in(10s);
  while (find_mailer(bus).totals.casts == 0 && shmbus::Clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }

  for (pid_t& pid : workers) {
    if (auto ended = shmbus::demo::reap_if_ended(pid)) {
      std::printf("    worker %d %s\n", pid, ended->c_str());
      pid = -1;
    }
  }
  std::erase(workers, -1);
  stop_workers(workers);
  (void)bus.reclaim_dead();
  const shmbus::ServiceInfo s = find_mailer(bus);
  const auto& t = s.totals;
  std::printf("\nservice 'mailer': calls %llu, casts %llu, replies %llu, expired_skipped %llu, "
              "late_replies %llu, redelivered %llu, dead_lettered %llu, bad_messages %llu, "
              "server_crashed %llu, queued %llu\n",
              static_cast<unsigned long long>(t.calls), static_cast<unsigned long long>(t.casts),
              static_cast<unsigned long long>(t.replies),
              static_cast<unsigned long long>(t.expired_skipped),
              static_cast<unsigned long long>(t.late_replies),
              static_cast<unsigned long long>(t.redelivered),
              static_cast<unsigned long long>(t.dead_lettered),
              static_cast<unsigned long long>(t.bad_messages),
              static_cast<unsigned long long>(
                  s.outcomes[static_cast<std::size_t>(shmbus::Errc::server_crashed)]),
              static_cast<unsigned long long>(s.depth));
  const bool ok = !crashed && crashed.error() == shmbus::Errc::server_crashed && t.redelivered >= 1;
  std::printf("%s\n", ok ? "nothing was lost silently." : "UNEXPECTED OUTCOME");
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  const std::string name = "demo-" + std::to_string(::getpid());
  auto bus = shmbus::Bus::create(name, {.label = "demo", .max_in_flight = 256});
  if (!bus) {
    std::fprintf(stderr, "shmbus_demo: %s\n", bus.error().message().c_str());
    return 1;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const int status = run(*bus);
  (void)shmbus::Bus::remove(name);
  return status;
}
