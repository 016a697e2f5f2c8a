// restart_bench — how long a launched service is a server short after one of
// its workers is killed (kill -9): from the SIGKILL to the replacement's
// server live in the registry. That is the launcher's restart path: the
// Supervisor's pidfd wakes, it reaps, forks and execs; the new worker
// attaches the bus and joins the pool (Server::join).
//
//   BM_RestartToLive   a service of `servers` workers under a Supervisor (as
//                      `shmbus launch` runs them, in this process); each
//                      iteration kills one live worker and polls
//                      Bus::services() until the service again has `servers`
//                      live servers, one of them joined after the kill.
//                      Manual time; p50/p99 in the counters (ns).
//
// The worker is this program run again as `restart_bench --worker` (with
// SHMBUS_BUS and SHMBUS_SERVICE, as the launcher sets them).
#include <benchmark/benchmark.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shmbus/bus.hpp"
#include "shmbus/server.hpp"
#include "shmbus/supervisor.hpp"
#include "support/percentiles.hpp"

namespace shmbus::bench {
namespace {

using namespace std::chrono_literals;

std::atomic<Server*> g_server{nullptr};

class Idle : public Handler {
 public:
  void handle_call(const Request&, ReplyWriter&) override {}
  void handle_cast(const Request&) override {}
};

// The worker: joins the service the supervisor named and serves until SIGTERM.
int run_worker() {
  const char* bus_name = std::getenv("SHMBUS_BUS");
  const char* service = std::getenv("SHMBUS_SERVICE");
  if (bus_name == nullptr || service == nullptr) return 2;
  auto bus = Bus::attach(bus_name, {.ready_timeout = 5s, .label = "restart_bench worker"});
  if (!bus) return 3;
  auto server = Server::join(*bus, service, ServiceSchema{});
  if (!server) return 4;
  g_server.store(&*server);
  struct sigaction action {};
  action.sa_handler = [](int) {
    if (Server* s = g_server.load()) s->stop();
  };
  ::sigaction(SIGTERM, &action, nullptr);
  Idle idle;
  (void)server->serve(idle);
  g_server.store(nullptr);
  return 0;
}

std::uint64_t unix_ns_now() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Live servers, and how many joined at or after `since_unix_ns`.
struct Pool {
  std::vector<int> pids;
  std::size_t joined_since = 0;
};

// A dead server's row can read alive for a moment while a new process takes
// over its process slot (with that process's pid), so a replacement is told
// apart by its join time, not by its pid.
Pool live_pool(const Bus& bus, std::uint64_t since_unix_ns) {
  Pool pool;
  for (const auto& info : bus.services()) {
    for (const auto& server : info.servers) {
      if (!server.alive || server.leaving) continue;
      pool.pids.push_back(server.pid);
      if (server.joined_unix_ns >= since_unix_ns) ++pool.joined_since;
    }
  }
  return pool;
}

// Polls until `servers` live servers, at least one joined since
// `since_unix_ns`; false after 10 s.
bool wait_replaced(const Bus& bus, std::size_t servers, std::uint64_t since_unix_ns) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    const Pool pool = live_pool(bus, since_unix_ns);
    if (pool.pids.size() >= servers && pool.joined_since > 0) return true;
    std::this_thread::yield();
  }
  return false;
}

// Polls until at least one live server; false after 10 s.
bool wait_until_serving(const Bus& bus, std::vector<int>& pids) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((pids = live_pool(bus, 0).pids).empty()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

void BM_RestartToLive(benchmark::State& state) {
  const auto servers = static_cast<std::size_t>(state.range(0));
  const std::string name = "bench_restart_" + std::to_string(::getpid());
  (void)Bus::remove(name);
  auto bus = Bus::create(name, {.label = "restart_bench"});
  if (!bus) return state.SkipWithError(bus.error().message().c_str());
  if (auto registered = bus->register_service("work", {}); !registered) {
    (void)Bus::remove(name);
    return state.SkipWithError(registered.error().message().c_str());
  }
  std::vector<ChildSpec> specs;
  for (std::size_t i = 0; i < servers; ++i) {
    ChildSpec spec;
    spec.name = "work." + std::to_string(i);
    spec.argv = {"/proc/self/exe", "--worker"};
    spec.env = {{"SHMBUS_BUS", name}, {"SHMBUS_SERVICE", "work"}};
    spec.max_restarts = 1000000;
    spec.within = 1000ms;
    specs.push_back(std::move(spec));
  }
  auto supervisor = Supervisor::start(std::move(specs));
  if (!supervisor || !wait_replaced(*bus, servers, 0)) {  // every worker joined
    (void)Bus::remove(name);
    return state.SkipWithError("the workers did not join");
  }
  std::vector<double> samples;
  for (auto _ : state) {
    std::vector<int> pids;
    if (!wait_until_serving(*bus, pids)) {
      state.SkipWithError("no live server to kill within 10 s");
      break;
    }
    const int victim = pids.front();
    const std::uint64_t killed_at = unix_ns_now();
    const auto start = std::chrono::steady_clock::now();
    ::kill(victim, SIGKILL);
    if (!wait_replaced(*bus, servers, killed_at)) {
      state.SkipWithError("no replacement within 10 s");
      break;
    }
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    state.SetIterationTime(took.count());
    samples.push_back(took.count() * 1e9);
  }
  report_latency(state, samples);
  supervisor->stop();
  (void)Bus::remove(name);
}
BENCHMARK(BM_RestartToLive)
    ->ArgName("servers")
    ->Arg(1)
    ->Arg(4)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(50);

}  // namespace
}  // namespace shmbus::bench

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--worker") == 0) return shmbus::bench::run_worker();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
