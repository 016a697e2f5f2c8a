// call_bench — calls and casts of a service between processes on two cores,
// with 64-byte mailer records (SendEmail requests, EmailSent replies).
//
//   BM_CallBusyPoll       call round trip, caller CallOptions.mode and server
//                         serve_one mode busy_poll. Floor: cache-line round trip.
//                         Target: p50 within 5x (stretch 2.5x).
//   BM_CallPark           the same in WaitMode::park with both sides truly
//                         parked: the caller calls only once the server sleeps
//                         in the pool mailbox's futex wait (data.waiters and
//                         /proc/<pid>/wchan), and the handler replies only once
//                         the caller has announced itself in its call slot's
//                         waiters word (support/calls.hpp). Floor: futex round
//                         trip with the same protocol. Target: within 1.1x.
//   BM_CallSpinThenPark   back-to-back calls in the default spin_then_park.
//   BM_CastThroughput     casts/s from 1 or 4 producer processes (all on CPU 0,
//                         the parent among them) to one server on CPU 1
//                         (Server::serve and Service::cast, busy_poll both
//                         sides), payload built once. Target: 10 M/s from one
//                         producer. server_cpu_wait / parent_cpu_wait: the
//                         share of the run they waited for a CPU (a busy machine).
//   BM_CastOneSide        each side of a cast alone in one process (CPU time
//                         per cast): which side's cost limits BM_CastThroughput.
//   BM_PoolThroughput     calls/s of a service whose handler sleeps 1 ms, with
//                         a pool of 1 … 16 parked servers (spread over both
//                         CPUs) and 4 calls in flight per server (send_request);
//                         one_server_calls_per_s is a second service with one
//                         such server, timed in batches alternating with the
//                         pool's. Target: ratio_to_n_x_one >= 0.85.
//
// Latency benchmarks time whole round trips (ns; the counters are not halved,
// unlike ring_bench's one-way figures) from just before call() to the reply's
// read and release, with one floor round trip between the same two processes
// right before each call (support/floors.hpp). Argument trusted:0 is a
// verified bus (server verifies requests, caller verifies replies), trusted:1
// a trusted one. SHMBUS_BENCH_SCALE multiplies the iteration counts.
#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/server.hpp"
#include "support/calls.hpp"
#include "support/floors.hpp"
#include "support/payload.hpp"
#include "support/percentiles.hpp"
#include "support/pin.hpp"
#include "support/ring_peek.hpp"
#include "support/scale.hpp"
#include "support/two_process.hpp"

namespace shmbus::bench {
namespace {

namespace mailer = shmbus::examples::mailer;

constexpr std::uint32_t kPingPongCapacity = 64;
constexpr std::uint32_t kStreamCapacity = 4096;
constexpr std::int64_t kCastBatch = 1 << 15;  // casts per producer per iteration
constexpr int kMaxProducers = 4;
constexpr int kMaxPool = 16;
constexpr int kInFlightPerServer = 4;
constexpr int kFloorRounds = 64;

// ---- call round trip -----------------------------------------------------------------------

struct Floors {
  CacheLinePair line;  // busy modes
  FutexPair futex;     // parking: both sides truly parked
};

struct EchoSpec {
  std::string bus;
  CreateOptions options;
  WaitMode mode;
  bool parked;
  Payload reply;
};

// Alternates one floor round trip and one call, until the stop ping.
int serve_echo(const EchoSpec& spec, Floors& floors, Control& control) {
  std::optional<Bus> bus;
  auto server = join_pool(bus, spec.bus, kPingPongCapacity, control);
  if (!server) return 1;
  std::optional<CallPeek> peek;
  if (spec.parked) {
    peek.emplace(spec.bus, spec.options);
    if (!peek->ok()) return child_failed(control, "cannot map the call slots");
  }
  Mailer handler(spec.reply, peek ? &*peek : nullptr, {}, nullptr);
  std::uint64_t line_last = 0;
  std::uint32_t futex_last = 0;
  control.set_ready();
  for (;;) {
    const bool floor_answered = spec.parked ? answer_futex(floors.futex, futex_last, control)
                                            : answer_cache_line(floors.line, line_last);
    if (!floor_answered) break;
    if (!server->serve_one(handler, BenchClock::now() + 10s, spec.mode)) return 1;
  }
  return handler.failed ? 2 : 0;
}

enum class Waiting { back_to_back, for_parked_peer };

void call_ping_pong(benchmark::State& state, WaitMode mode, Waiting waiting) {
  const bool trusted = state.range(0) != 0;
  const bool parked = waiting == Waiting::for_parked_peer;
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin the parent to CPU 0");
  const auto request = make_send_email();
  const auto reply_payload = make_email_sent();
  if (!request || !reply_payload) return state.SkipWithError("no 64-byte mailer records");

  const std::string name = unique_bus_name();
  RemoveBusAtExit remover(name);
  const CreateOptions options = bus_options(trusted);
  auto bus = Bus::create(name, options);
  if (!bus) return state.SkipWithError(bus.error().message().c_str());
  if (auto r = bus->register_service(kMailerService, mailer_service(kPingPongCapacity)); !r) {
    return state.SkipWithError(r.error().message().c_str());
  }
  auto service = bus->service(kMailerService);
  if (!service) return state.SkipWithError(service.error().message().c_str());

  SharedBlock<Control> control;
  SharedBlock<Floors> floors;
  ChildProcess child = ChildProcess::start(
      kChildCpu, [spec = EchoSpec{name, options, mode, parked, *reply_payload},
                  &floors_ref = *floors, &control_ref = *control] {
        return serve_echo(spec, floors_ref, control_ref);
      });
  if (auto why = wait_ready(*control, child); !why.empty()) return state.SkipWithError(why.c_str());
  std::optional<RingPeek> pool_peek;
  std::optional<ProcState> child_state;
  if (parked) {
    pool_peek.emplace(name, std::string(kMailerService) + "~pool");
    child_state.emplace(child.pid());
    if (!pool_peek->ok() || !child_state->ok()) {
      return state.SkipWithError("cannot watch the server's parking");
    }
  }

  MessageBuffer scratch;
  bool all_verified = true;
  Errc call_error = Errc::empty;
  std::uint64_t line_round = 0;
  std::uint32_t futex_last = 0;
  const auto floor_round_trip = [&](BenchClock::duration& rtt) -> bool {
    if (parked) return futex_round_trip(floors->futex, futex_last, *child_state, rtt);
    const auto t0 = BenchClock::now();
    const bool answered = cache_line_round_trip(floors->line, ++line_round, child);
    rtt = BenchClock::now() - t0;
    return answered;
  };
  // One call, from just before call() to the reply read (verified unless
  // trusted) and released. When `parked`, first waits (untimed) until the
  // server sleeps in the pool mailbox's futex wait.
  const auto round_trip = [&](BenchClock::duration& rtt) -> bool {
    if (parked &&
        !spin_until([&] { return pool_peek->data_waiters() != 0 && child_state->parked(); },
                    kAnswerTimeout)) {
      return false;
    }
    CallOptions call_options;
    call_options.deadline = BenchClock::now() + kAnswerTimeout;
    call_options.mode = mode;
    const auto t0 = BenchClock::now();
    {
      auto reply = service->call(bytes_of(*request), call_options);
      if (!reply) return call_error = reply.error(), false;
      auto sent = reply->read<mailer::EmailSent>(mailer::EmailSentIdentifier(), scratch);
      all_verified = sent.has_value() && all_verified;
      if (sent) benchmark::DoNotOptimize((*sent)->message_id());
    }
    rtt = BenchClock::now() - t0;
    return true;
  };

  BenchClock::duration rtt{};
  BenchClock::duration floor_rtt{};
  bool ok = true;
  const int warmup = parked ? 200 : 2000;
  for (int i = 0; i < warmup && ok; ++i) ok = floor_round_trip(floor_rtt) && round_trip(rtt);
  std::vector<double> samples;
  std::vector<double> floor_samples;
  const CpuWait server_wait(child.pid());
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  floor_samples.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    ok = ok && floor_round_trip(floor_rtt) && round_trip(rtt);
    if (!ok) break;
    samples.push_back(std::chrono::duration<double, std::nano>(rtt).count());
    floor_samples.push_back(std::chrono::duration<double, std::nano>(floor_rtt).count());
    state.SetIterationTime(samples.back() * 1e-9);
  }

  state.counters["server_cpu_wait"] = server_wait.share();
  if (parked) {
    state.SetLabel(std::string("parked signal: ") + child_state->signal());
    stop_futex(floors->futex, *control);
  } else {
    control->request_stop();
    stop_cache_line(floors->line);
  }
  const int code = child.reap();
  if (!ok) {
    const std::string why = call_error == Errc::empty
                                ? std::string("the server stopped answering")
                                : std::string("call failed: ") + to_string(call_error);
    state.SkipWithError(why.c_str());
  } else if (code != 0) {
    state.SkipWithError(code == 2 ? "the server's handler failed" : "the server failed");
  } else if (!all_verified) {
    state.SkipWithError("a reply failed verification");
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["verified"] = trusted ? 0 : 1;
  // Round trips that lasted one park re-check interval (a missed wake-up
  // ends there): few and spread means preemption; many means lost wakes.
  const double recheck_ns = std::chrono::duration<double, std::nano>(kParkRecheckInterval).count();
  state.counters["stalls_at_recheck"] = static_cast<double>(
      std::count_if(samples.begin(), samples.end(), [&](double ns) {
        return ns >= recheck_ns && ns < recheck_ns + 2e6;
      }));
  report_round_trip_and_floor(state, samples, floor_samples);
}

void BM_CallBusyPoll(benchmark::State& state) {
  call_ping_pong(state, WaitMode::busy_poll, Waiting::back_to_back);
}
void BM_CallPark(benchmark::State& state) {
  call_ping_pong(state, WaitMode::park, Waiting::for_parked_peer);
}
void BM_CallSpinThenPark(benchmark::State& state) {
  call_ping_pong(state, WaitMode::spin_then_park, Waiting::back_to_back);
}

BENCHMARK(BM_CallBusyPoll)->ArgName("trusted")->Arg(0)->Arg(1)->UseManualTime()
    ->Iterations(scaled(100000))->Unit(benchmark::kNanosecond);
BENCHMARK(BM_CallPark)->ArgName("trusted")->Arg(0)->Arg(1)->UseManualTime()
    ->Iterations(scaled(5000))->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CallSpinThenPark)->ArgName("trusted")->Arg(0)->Arg(1)->UseManualTime()
    ->Iterations(scaled(50000))->Unit(benchmark::kNanosecond);

// ---- cast throughput -----------------------------------------------------------------------

struct CastControls {
  Control server;
  Control producers[kMaxProducers];
  Rounds rounds;
  alignas(128) std::uint32_t floor_request;  // 1: answer kFloorRounds pings after this cast
  CacheLinePair line;
};

// Counts casts into progress; on request, answers cache-line pings (the
// placement the figure ran in) right after the cast in hand. Stops serve()
// at the first cast after the parent asked it to stop.
class CastSink final : public Handler {
 public:
  CastSink(CastControls& controls, Server& server) : controls_(controls), server_(server) {}
  void handle_call(const Request&, ReplyWriter&) override {}
  void handle_cast(const Request& request) override {
    benchmark::DoNotOptimize(request.root<mailer::SendEmail>()->subject());
    store_release(controls_.server.progress, ++casts_);
    if (controls_.server.stop_requested()) server_.stop();
    if (load_acquire(controls_.floor_request) == 0) return;
    for (int i = 0; i < kFloorRounds && answer_cache_line(controls_.line, line_last_); ++i) {
    }
    store_release(controls_.floor_request, std::uint32_t{0});
  }

 private:
  CastControls& controls_;
  Server& server_;
  std::uint64_t casts_ = 0;
  std::uint64_t line_last_ = 0;
};

// The one server: the library's own receive loop, busy_poll, until stopped.
int serve_casts(const std::string& name, CastControls& controls) {
  std::optional<Bus> bus;
  auto server = join_pool(bus, name, kStreamCapacity, controls.server);
  if (!server) return 1;
  CastSink sink(controls, *server);
  controls.server.set_ready();
  ServeOptions options;
  options.mode = WaitMode::busy_poll;
  (void)server->serve(sink, options);
  return 0;
}

int produce_casts(const std::string& name, const Payload& payload, Rounds& rounds,
                  Control& control) {
  auto bus = Bus::attach(name, {.label = "bench-producer"});
  if (!bus) return child_failed(control, bus.error().message());
  auto service = bus->service(kMailerService);
  if (!service) return child_failed(control, service.error().message());
  std::uint32_t round = load_acquire(rounds.seq);
  control.set_ready();
  while (next_round(rounds, round)) {
    if (!send_casts(*service, payload, kCastBatch)) return 1;
    std::atomic_ref<std::uint32_t>(rounds.finished).fetch_add(1);
  }
  return 0;
}

void BM_CastThroughput(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  const bool trusted = state.range(1) != 0;
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin the parent to CPU 0");
  const auto payload = make_send_email();
  const auto reply = make_email_sent();
  if (!payload || !reply) return state.SkipWithError("no 64-byte mailer records");
  const std::string name = unique_bus_name();
  RemoveBusAtExit remover(name);
  auto bus = Bus::create(name, bus_options(trusted));
  if (!bus) return state.SkipWithError(bus.error().message().c_str());
  if (auto r = bus->register_service(kMailerService, mailer_service(kStreamCapacity)); !r) {
    return state.SkipWithError(r.error().message().c_str());
  }
  auto service = bus->service(kMailerService);
  if (!service) return state.SkipWithError(service.error().message().c_str());

  SharedBlock<CastControls> controls;
  ChildProcess server = ChildProcess::start(kChildCpu, [&, name] {
    return serve_casts(name, *controls);
  });
  if (auto why = wait_ready(controls->server, server); !why.empty()) {
    return state.SkipWithError(why.c_str());
  }
  std::vector<ChildProcess> children;  // producers 1 … n-1; the parent is producer 0
  for (int i = 1; i < producers; ++i) {
    children.push_back(ChildProcess::start(kParentCpu, [&, name, i] {
      return produce_casts(name, *payload, controls->rounds, controls->producers[i]);
    }));
    if (auto why = wait_ready(controls->producers[i], children.back()); !why.empty()) {
      return state.SkipWithError(why.c_str());
    }
  }

  std::uint64_t expected = 0;
  std::uint64_t line_round = 0;
  std::vector<double> floor_samples;
  // Untimed, before each batch: kFloorRounds cache-line round trips with the server.
  const auto floor_rounds = [&]() -> bool {
    store_release(controls->floor_request, std::uint32_t{1});
    if (!send_casts(*service, *payload, 1)) return false;
    expected += 1;
    for (int i = 0; i < kFloorRounds; ++i) {
      const auto t0 = BenchClock::now();
      if (!cache_line_round_trip(controls->line, ++line_round, server)) return false;
      floor_samples.push_back(
          std::chrono::duration<double, std::nano>(BenchClock::now() - t0).count());
    }
    return spin_until([&] { return load_acquire(controls->floor_request) == 0; }, kAnswerTimeout);
  };
  // One batch from every producer; true once the server has taken them all.
  const auto batch = [&]() -> bool {
    expected += static_cast<std::uint64_t>(producers * kCastBatch);
    if (producers > 1) start_round(controls->rounds);
    if (!send_casts(*service, *payload, kCastBatch)) return false;
    const auto until = BenchClock::now() + 10s;
    while (load_acquire(controls->server.progress) < expected) {
      if (BenchClock::now() >= until) return false;
      if (producers > 1) ::usleep(20);  // leave CPU 0 to the other producers
      else cpu_relax();
    }
    return true;
  };
  bool ok = batch();  // warm-up: fault the cells in
  std::vector<double> batch_seconds;
  const CpuWait server_wait(server.pid());
  const CpuWait parent_wait(::getpid());
  for (auto _ : state) {
    ok = ok && floor_rounds();
    const auto t0 = BenchClock::now();
    ok = ok && batch();
    const auto t1 = BenchClock::now();
    if (!ok) break;
    batch_seconds.push_back(std::chrono::duration<double>(t1 - t0).count());
    state.SetIterationTime(batch_seconds.back());
  }
  state.counters["server_cpu_wait"] = server_wait.share();
  state.counters["parent_cpu_wait"] = parent_wait.share();
  if (!floor_samples.empty()) state.counters["floor_rtt_p50_ns"] = quantile(floor_samples, 0.5);
  start_round(controls->rounds, /*stop=*/true);
  bool children_ok = true;
  for (auto& child : children) children_ok = child.reap() == 0 && children_ok;
  controls->server.request_stop();
  (void)send_casts(*service, *payload, 1);  // the sink stops serve() on it
  const int code = server.reap();
  if (!ok) state.SkipWithError("a cast was refused or the server stopped taking casts");
  else if (!children_ok || code != 0) state.SkipWithError("a producer or the server failed");
  const std::int64_t casts = state.iterations() * producers * kCastBatch;
  state.SetItemsProcessed(casts);
  state.SetBytesProcessed(casts * static_cast<std::int64_t>(kPayloadBytes));
  state.counters["verified"] = trusted ? 0 : 1;
  state.counters["producers"] = producers;
  if (!batch_seconds.empty()) {
    state.counters["median_batch_casts_per_s"] =
        static_cast<double>(producers * kCastBatch) / quantile(batch_seconds, 0.5);
  }
}
BENCHMARK(BM_CastThroughput)->ArgNames({"producers", "trusted"})
    ->ArgsProduct({{1, 4}, {0, 1}})->UseManualTime()->Iterations(scaled(30))
    ->Unit(benchmark::kMillisecond);

// ---- each side of a cast alone, in one process ---------------------------------------------

// side:0 times cast() into an empty pool mailbox (kStreamCapacity casts per
// iteration, drained untimed); side:1 times serve_one() draining a full one.
// Together with BM_CastThroughput: which side's per-message cost limits it.
void BM_CastOneSide(benchmark::State& state) {
  const bool serve_side = state.range(0) != 0;
  const bool trusted = state.range(1) != 0;
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin to CPU 0");
  const auto payload = make_send_email();
  const auto reply = make_email_sent();
  if (!payload || !reply) return state.SkipWithError("no 64-byte mailer records");
  const std::string name = unique_bus_name();
  RemoveBusAtExit remover(name);
  auto bus = Bus::create(name, bus_options(trusted));
  if (!bus) return state.SkipWithError(bus.error().message().c_str());
  auto server = Server::start(*bus, kMailerService, mailer_service(kStreamCapacity));
  if (!server) return state.SkipWithError(server.error().message().c_str());
  auto service = bus->service(kMailerService);
  if (!service) return state.SkipWithError(service.error().message().c_str());
  std::uint64_t handled = 0;
  Mailer handler(*reply, nullptr, {}, &handled);
  const auto fill = [&] { return send_casts(*service, *payload, kStreamCapacity); };
  const auto drain = [&] {
    const Deadline deadline = BenchClock::now() + 1s;
    for (std::uint32_t i = 0; i < kStreamCapacity; ++i) {
      if (!server->serve_one(handler, deadline, WaitMode::busy_poll)) return false;
    }
    return true;
  };
  bool ok = fill() && drain();  // warm-up: fault the cells in
  for (auto _ : state) {
    if (serve_side) {
      state.PauseTiming();
      ok = ok && fill();
      state.ResumeTiming();
      ok = ok && drain();
    } else {
      ok = ok && fill();
      state.PauseTiming();
      ok = ok && drain();
      state.ResumeTiming();
    }
    if (!ok) break;
  }
  if (!ok) state.SkipWithError("a cast was refused or not served");
  state.SetItemsProcessed(state.iterations() * kStreamCapacity);
  state.counters["seconds_per_cast"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kStreamCapacity),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_CastOneSide)->ArgNames({"serve", "trusted"})->ArgsProduct({{0, 1}, {0, 1}})
    ->Iterations(scaled(200))->Unit(benchmark::kMicrosecond);

// ---- the bottleneck: a pool of slow servers ------------------------------------------------

constexpr char kSoloService[] = "solo";  // the one-server unit of the pool ratio

int serve_slowly(const std::string& name, const char* service, const Payload& reply,
                 Control& control) {
  std::optional<Bus> bus;
  auto server = join_pool(bus, name, 1024, control, service);
  if (!server) return 1;
  Mailer handler(reply, nullptr, 1ms, nullptr);
  control.set_ready();
  while (!control.stop_requested()) {
    (void)server->serve_one(handler, BenchClock::now() + 20ms, WaitMode::park);
  }
  return handler.failed ? 2 : 0;
}

// Makes `count` calls with up to `window` in flight (send_request), waiting
// (parked) for the oldest. Returns the first failure, or `empty` when all replied.
Errc run_calls(Service& service, const Payload& request, std::int64_t count, std::size_t window) {
  MessageBuffer scratch;
  std::deque<PendingCall> in_flight;
  CallOptions options;
  options.mode = WaitMode::park;
  std::int64_t issued = 0;
  while (issued < count || !in_flight.empty()) {
    while (issued < count && in_flight.size() < window) {
      options.deadline = BenchClock::now() + 10s;
      auto pending = service.send_request(bytes_of(request), options);
      if (!pending) return pending.error();
      in_flight.push_back(std::move(*pending));
      ++issued;
    }
    auto reply = in_flight.front().wait();
    in_flight.pop_front();
    if (!reply) return reply.error();
    if (!reply->read<mailer::EmailSent>(mailer::EmailSentIdentifier(), scratch)) {
      return Errc::bad_message;
    }
  }
  return Errc::empty;
}

// Seconds `count` calls take (negative after a failure, reported in `outcome`).
double time_calls(Service& service, const Payload& request, std::int64_t count,
                  std::size_t window, Errc& outcome) {
  if (outcome != Errc::empty) return -1;
  const auto t0 = BenchClock::now();
  outcome = run_calls(service, request, count, window);
  return std::chrono::duration<double>(BenchClock::now() - t0).count();
}

struct PoolControls {
  Control servers[kMaxPool + 1];  // [0]: the solo server
};

// Each iteration times a batch on the solo service (one server) and then a
// batch on the pool of N, so both figures of the ratio share the machine's
// conditions of that moment.
void BM_PoolThroughput(benchmark::State& state) {
  const int pool = static_cast<int>(state.range(0));
  if (pool > kMaxPool) return state.SkipWithError("pool larger than kMaxPool");
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin the parent to CPU 0");
  const auto request = make_send_email();
  const auto reply = make_email_sent();
  if (!request || !reply) return state.SkipWithError("no 64-byte mailer records");
  const std::string name = unique_bus_name();
  RemoveBusAtExit remover(name);
  auto bus = Bus::create(name, bus_options(false, 4 * kInFlightPerServer * kMaxPool));
  if (!bus) return state.SkipWithError(bus.error().message().c_str());
  for (const char* s : {kSoloService, kMailerService}) {
    if (auto r = bus->register_service(s, mailer_service(1024)); !r) {
      return state.SkipWithError(r.error().message().c_str());
    }
  }
  auto solo = bus->service(kSoloService);
  auto service = bus->service(kMailerService);
  if (!solo || !service) return state.SkipWithError("cannot look the services up");

  SharedBlock<PoolControls> controls;
  std::vector<ChildProcess> servers;
  std::string why;
  for (int i = 0; i <= pool && why.empty(); ++i) {  // servers spread over both CPUs
    servers.push_back(ChildProcess::start((kChildCpu + i) % 2, [&, name, i] {
      return serve_slowly(name, i == 0 ? kSoloService : kMailerService, *reply,
                          controls->servers[i]);
    }));
    why = wait_ready(controls->servers[i], servers.back());
  }
  const auto window = static_cast<std::size_t>(kInFlightPerServer * pool);
  const std::int64_t solo_calls = 50;
  const std::int64_t pool_calls = 100 * pool;
  Errc outcome = why.empty() ? Errc::empty : Errc::system_error;
  (void)time_calls(*solo, *request, 10, kInFlightPerServer, outcome);  // warm-up
  (void)time_calls(*service, *request, 10 * pool, window, outcome);
  double solo_seconds = 0;
  double pool_seconds = 0;
  for (auto _ : state) {
    solo_seconds += time_calls(*solo, *request, solo_calls, kInFlightPerServer, outcome);
    const double seconds = time_calls(*service, *request, pool_calls, window, outcome);
    if (outcome != Errc::empty) break;
    pool_seconds += seconds;
    state.SetIterationTime(seconds);
  }
  for (int i = 0; i < static_cast<int>(servers.size()); ++i) controls->servers[i].request_stop();
  bool servers_ok = true;
  for (auto& server : servers) servers_ok = server.reap() == 0 && servers_ok;
  if (!why.empty()) return state.SkipWithError(why.c_str());
  if (outcome != Errc::empty) {
    return state.SkipWithError((std::string("call failed: ") + to_string(outcome)).c_str());
  }
  if (!servers_ok) return state.SkipWithError("a server failed");
  const double n = static_cast<double>(state.iterations());
  const double rate = n * static_cast<double>(pool_calls) / pool_seconds;
  const double one_rate = n * static_cast<double>(solo_calls) / solo_seconds;
  state.SetItemsProcessed(state.iterations() * pool_calls);
  state.counters["servers"] = pool;
  state.counters["in_flight"] = static_cast<double>(window);
  state.counters["calls_per_s"] = rate;
  state.counters["one_server_calls_per_s"] = one_rate;
  state.counters["ratio_to_n_x_one"] = rate / (pool * one_rate);
  state.counters["ratio_to_ideal"] = rate / (pool * 1000.0);  // 1 ms handler: 1000/s each
  for (const auto& info : bus->services()) {
    // busy_ns covers the messages counted in the latency histogram (a sample).
    std::uint64_t timed = 0;
    for (const std::uint64_t bucket : info.totals.latency) timed += bucket;
    if (info.name == kMailerService && timed > 0) {
      state.counters["handler_mean_us"] =
          static_cast<double>(info.totals.busy_ns) / static_cast<double>(timed) / 1e3;
    }
  }
}
BENCHMARK(BM_PoolThroughput)->ArgName("servers")->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16)
    ->UseManualTime()->Iterations(scaled(3))->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace shmbus::bench

BENCHMARK_MAIN();
