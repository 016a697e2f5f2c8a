// ring_bench — one-way latency and throughput of a mailbox between two
// processes on two cores, with 64-byte SendEmail records.
//
//   BM_LatencyBusyPoll        ping-pong through two mailbox rings (requests to
//                             the child, replies back), both receivers in
//                             WaitMode::busy_poll. Floor: cache-line ping-pong.
//   BM_LatencyPark            the same with WaitMode::park, every wake-up a real
//                             one: the parent sends only once the child has
//                             parked (the requests ring's data.waiters word is
//                             non-zero and the kernel says the child sleeps in a
//                             futex wait: /proc/<pid>/wchan); the child answers
//                             only once the parent has announced itself in the
//                             replies ring's data.waiters. Floor: futex ping-pong
//                             with the same protocol.
//   BM_LatencySpinThenPark    back-to-back ping-pong in the default
//                             WaitMode::spin_then_park (no waiting for a park):
//                             what a tight request/reply gets. Floor: cache-line.
//   BM_LatencyTryReceiveSpin  busy ping-pong where each receiver spins on
//                             try_receive() (no pause, no clock read per poll):
//                             the ring without receive()'s wait loop. Floor:
//                             cache-line.
//   BM_Throughput             the parent streams records with send(busy_poll),
//                             the child takes them with receive(busy_poll):
//                             records/s (mean, and the median batch's rate).
//                             Target: 10 M records/s. Before each batch
//                             (untimed) 64 cache-line round trips give
//                             floor_p50_ns: the placement the figure ran in.
//   BM_ReadMessage            one process, no ring: read_message<SendEmail>
//                             (copy + verifier, or the copy only when trusted).
//
// Floors: each latency benchmark runs one floor round trip (support/floors.hpp)
// between the same two processes right before each of its own, and reports
// floor_p50_ns / floor_p99_ns / ratio_p50 / ratio_p99 next to p50_ns / p99_ns:
// a ratio stays honest when a virtual machine moves its vCPUs between
// benchmarks (here the cache-line floor was seen at 60 ns and at 240 ns
// minutes apart). floors_bench measures the same floors alone.
//
// Every receiver (child and parent alike) reads each record with
// Delivery::read<SendEmail>: the verifier runs unless the bus was created
// trusted. Argument trusted:0 is a verified bus, trusted:1 a trusted one.
// Latencies are one-way (round trip / 2): the manual time column is the mean,
// the counters come from one sample per round trip.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "shmbus/bus.hpp"
#include "shmbus/mailbox.hpp"
#include "shmbus/message.hpp"
#include "support/floors.hpp"
#include "support/payload.hpp"
#include "support/percentiles.hpp"
#include "support/pin.hpp"
#include "support/ring_peek.hpp"
#include "support/scale.hpp"
#include "support/two_process.hpp"

namespace shmbus::bench {
namespace {

using namespace std::chrono_literals;
namespace mailer = shmbus::examples::mailer;

constexpr std::uint16_t kStopRecord = 2;
constexpr std::uint16_t kFloorRecord = 3;  // throughput: answer kFloorRounds cache-line pings
constexpr int kFloorRounds = 64;
constexpr std::uint32_t kPingPongCapacity = 64;
constexpr std::uint32_t kStreamCapacity = 4096;
constexpr std::int64_t kStreamBatch = 1 << 14;  // records per throughput iteration
constexpr auto kAnswerTimeout = 2s;

[[nodiscard]] std::span<const std::byte> bytes_of(const Payload& payload) noexcept {
  return {payload.data(), payload.size()};
}

// Removes the bus's segments when the benchmark ends, however it ends.
class BusRemover {
 public:
  explicit BusRemover(std::string name) : name_(std::move(name)) {}
  BusRemover(const BusRemover&) = delete;
  BusRemover& operator=(const BusRemover&) = delete;
  ~BusRemover() { (void)Bus::remove(name_); }

 private:
  std::string name_;
};

// Reports a child's setup failure to the parent; the child's exit code.
int child_failed(Control& control, const std::string& what) {
  control.set_failed(what);
  return 1;
}

// Reads a record as a service would; false when it does not verify.
[[nodiscard]] bool read_record(const Delivery& delivery, MessageBuffer& scratch) {
  auto email = delivery.read<mailer::SendEmail>(mailer::SendEmailIdentifier(), scratch);
  if (!email) return false;
  benchmark::DoNotOptimize((*email)->subject());
  return true;
}

// How a receiver waits: Receiver::receive(deadline, mode), or (`spin`) a
// tight loop of try_receive() with no pause and no clock read per poll, which
// shows what receive(busy_poll)'s own loop costs on top of the ring.
enum class Poll { receive, spin };

[[nodiscard]] Expected<Delivery> take_next(Receiver& receiver, Deadline deadline, WaitMode mode,
                                           Poll poll) {
  if (poll == Poll::receive) return receiver.receive(deadline, mode);
  for (std::uint32_t i = 1;; ++i) {
    if (auto delivery = receiver.try_receive()) return delivery;
    if (i % 4096 == 0 && BenchClock::now() >= deadline) return tl::unexpected(Errc::empty);
  }
}

// ---- the child of the ping-pong benchmarks -------------------------------------------------

// The floor round trip interleaved with each ring round trip.
struct Floors {
  CacheLinePair line;  // busy modes
  FutexPair futex;     // parking: both sides truly parked
};

struct EchoSpec {
  std::string bus;
  WaitMode mode;
  Poll poll;
  bool parked;  // futex floor; answer only once the parent has announced itself
  Payload reply;
};

// Alternates: answers one floor round trip, then receives one request, reads
// it and answers with one record. Ends at the stop ping (or stop record).
// Exit code 0, or 2 when some record did not verify.
int serve_echo(const EchoSpec& spec, Floors& floors, Control& control) {
  auto bus = Bus::attach(spec.bus, {.label = "bench-echo"});
  if (!bus) return child_failed(control, bus.error().message());
  auto requests = bus->open_mailbox("requests");
  auto replies = bus->open_mailbox("replies");
  if (!requests || !replies) return child_failed(control, "cannot open the mailboxes");
  auto receiver = requests->receiver();
  if (!receiver) return child_failed(control, receiver.error().message());
  std::optional<RingPeek> replies_peek;
  if (spec.parked) {
    replies_peek.emplace(spec.bus, "replies");
    if (!replies_peek->ok()) return child_failed(control, "cannot map the replies ring");
  }
  MessageBuffer scratch;
  bool all_verified = true;
  std::uint64_t line_last = 0;
  std::uint32_t futex_last = 0;
  control.set_ready();
  for (;;) {
    const bool floor_answered = spec.parked ? answer_futex(floors.futex, futex_last, control)
                                            : answer_cache_line(floors.line, line_last);
    if (!floor_answered) break;
    auto delivery = take_next(*receiver, BenchClock::now() + 10s, spec.mode, spec.poll);
    if (!delivery) return 1;
    if (delivery->info().type == kStopRecord) break;
    all_verified = read_record(*delivery, scratch) && all_verified;
    delivery->done();
    if (replies_peek &&
        !spin_until([&] { return replies_peek->data_waiters() != 0; }, kAnswerTimeout)) {
      return 1;
    }
    if (!replies->try_send(bytes_of(spec.reply))) return 1;  // never full in a ping-pong
  }
  return all_verified ? 0 : 2;
}

// ---- the ping-pong benchmarks --------------------------------------------------------------

enum class Waiting { back_to_back, for_parked_peer };

void ping_pong(benchmark::State& state, WaitMode mode, Waiting waiting, Poll poll = Poll::receive) {
  const bool trusted = state.range(0) != 0;
  const bool parked = waiting == Waiting::for_parked_peer;
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin the parent to CPU 0");
  const std::optional<Payload> payload = make_send_email();
  if (!payload) return state.SkipWithError("no SendEmail of exactly 64 bytes");

  const std::string name = unique_bus_name();
  BusRemover remover(name);
  auto bus = Bus::create(name, {.trusted = trusted, .label = "bench-parent"});
  if (!bus) return state.SkipWithError(bus.error().message().c_str());
  const MailboxOptions options{.kind = layout::RingKind::mpsc,
                               .capacity = kPingPongCapacity,
                               .max_record = static_cast<std::uint32_t>(kPayloadBytes)};
  auto requests = bus->create_mailbox("requests", options);
  auto replies = bus->create_mailbox("replies", options);
  if (!requests || !replies) return state.SkipWithError("cannot create the mailboxes");
  auto receiver = replies->receiver();
  if (!receiver) return state.SkipWithError(receiver.error().message().c_str());

  SharedBlock<Control> control;
  SharedBlock<Floors> floors;
  ChildProcess child = ChildProcess::start(
      kChildCpu, [spec = EchoSpec{name, mode, poll, parked, *payload}, &floors_ref = *floors,
                  &control_ref = *control] { return serve_echo(spec, floors_ref, control_ref); });
  if (auto why = wait_ready(*control, child); !why.empty()) return state.SkipWithError(why.c_str());
  std::optional<RingPeek> requests_peek;
  std::optional<ProcState> child_state;
  if (parked) {
    requests_peek.emplace(name, "requests");
    child_state.emplace(child.pid());
    if (!requests_peek->ok() || !child_state->ok()) {
      return state.SkipWithError("cannot watch the child's parking");
    }
  }

  MessageBuffer scratch;
  bool all_verified = true;
  std::uint64_t line_round = 0;
  std::uint32_t futex_last = 0;
  // One floor round trip between the same two processes, right before each
  // ring round trip: futex ping-pong when `parked`, cache-line otherwise.
  const auto floor_round_trip = [&](BenchClock::duration& rtt) -> bool {
    if (parked) return futex_round_trip(floors->futex, futex_last, *child_state, rtt);
    const auto t0 = BenchClock::now();
    const bool answered = cache_line_round_trip(floors->line, ++line_round, child);
    rtt = BenchClock::now() - t0;
    return answered;
  };
  // One ring round trip, timed from just before the send to the reply's
  // done(). When `parked`, first waits (untimed) until the child sleeps in
  // the ring's futex wait: announced in data.waiters and asleep according to
  // the kernel.
  const auto round_trip = [&](BenchClock::duration& rtt) -> bool {
    if (parked &&
        !spin_until([&] { return requests_peek->data_waiters() != 0 && child_state->parked(); },
                    kAnswerTimeout)) {
      return false;
    }
    const Deadline deadline = BenchClock::now() + kAnswerTimeout;
    const auto t0 = BenchClock::now();
    if (!requests->try_send(bytes_of(*payload))) return false;
    auto delivery = take_next(*receiver, deadline, mode, poll);
    if (!delivery) return false;
    all_verified = read_record(*delivery, scratch) && all_verified;
    delivery->done();
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
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  floor_samples.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    ok = ok && floor_round_trip(floor_rtt) && round_trip(rtt);
    if (!ok) {
      state.SkipWithError("the child stopped answering");
      break;
    }
    const double one_way_ns = std::chrono::duration<double, std::nano>(rtt).count() / 2;
    samples.push_back(one_way_ns);
    floor_samples.push_back(std::chrono::duration<double, std::nano>(floor_rtt).count() / 2);
    state.SetIterationTime(one_way_ns * 1e-9);
  }

  if (parked) state.SetLabel(std::string("parked signal: ") + child_state->signal());
  // The child waits in its floor half (or, after an error, in its ring half).
  if (parked) {
    stop_futex(floors->futex, *control);
  } else {
    control->request_stop();
    stop_cache_line(floors->line);
  }
  (void)requests->try_send(bytes_of(*payload), {.type = kStopRecord});
  const int code = child.reap();
  if (ok && code != 0) {
    state.SkipWithError(code == 2 ? "a record failed verification" : "the child failed");
  } else if (ok && !all_verified) {
    state.SkipWithError("a reply failed verification");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kPayloadBytes));
  state.counters["verified"] = trusted ? 0 : 1;
  report_latency_and_floor(state, samples, floor_samples);
}

void BM_LatencyBusyPoll(benchmark::State& state) {
  ping_pong(state, WaitMode::busy_poll, Waiting::back_to_back);
}
void BM_LatencyPark(benchmark::State& state) {
  ping_pong(state, WaitMode::park, Waiting::for_parked_peer);
}
void BM_LatencySpinThenPark(benchmark::State& state) {
  ping_pong(state, WaitMode::spin_then_park, Waiting::back_to_back);
}
void BM_LatencyTryReceiveSpin(benchmark::State& state) {
  ping_pong(state, WaitMode::busy_poll, Waiting::back_to_back, Poll::spin);
}

BENCHMARK(BM_LatencyBusyPoll)
    ->ArgName("trusted")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Iterations(scaled(200000))
    ->Unit(benchmark::kNanosecond);
BENCHMARK(BM_LatencyPark)
    ->ArgName("trusted")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Iterations(scaled(20000))
    ->Unit(benchmark::kNanosecond);
BENCHMARK(BM_LatencySpinThenPark)
    ->ArgName("trusted")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Iterations(scaled(100000))
    ->Unit(benchmark::kNanosecond);
BENCHMARK(BM_LatencyTryReceiveSpin)
    ->ArgName("trusted")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Iterations(scaled(200000))
    ->Unit(benchmark::kNanosecond);

// ---- throughput ----------------------------------------------------------------------------

// Takes records until the stop record; publishes the count in control.progress.
// A floor record asks for kFloorRounds cache-line round trips first.
int serve_sink(const std::string& bus_name, CacheLinePair& line, Control& control) {
  auto bus = Bus::attach(bus_name, {.label = "bench-sink"});
  if (!bus) return child_failed(control, bus.error().message());
  auto stream = bus->open_mailbox("stream");
  if (!stream) return child_failed(control, "cannot open the mailbox");
  auto receiver = stream->receiver();
  if (!receiver) return child_failed(control, receiver.error().message());
  MessageBuffer scratch;
  bool all_verified = true;
  std::uint64_t taken = 0;
  std::uint64_t line_last = 0;
  control.set_ready();
  // One deadline for the whole run: receive() is not charged a clock read per record.
  const Deadline deadline = BenchClock::now() + 600s;
  for (;;) {
    auto delivery = receiver->receive(deadline, WaitMode::busy_poll);
    if (!delivery) return 1;
    if (delivery->info().type == kStopRecord) break;
    if (delivery->info().type == kFloorRecord) {
      delivery->done();
      for (int i = 0; i < kFloorRounds; ++i) {
        if (!answer_cache_line(line, line_last)) return 1;
      }
      continue;
    }
    all_verified = read_record(*delivery, scratch) && all_verified;
    delivery->done();
    store_release(control.progress, ++taken);
  }
  return all_verified ? 0 : 2;
}

void BM_Throughput(benchmark::State& state) {
  const bool trusted = state.range(0) != 0;
  if (!pin_to_cpu(kParentCpu)) return state.SkipWithError("cannot pin the parent to CPU 0");
  const std::optional<Payload> payload = make_send_email();
  if (!payload) return state.SkipWithError("no SendEmail of exactly 64 bytes");

  const std::string name = unique_bus_name();
  BusRemover remover(name);
  auto bus = Bus::create(name, {.trusted = trusted, .label = "bench-parent"});
  if (!bus) return state.SkipWithError(bus.error().message().c_str());
  auto stream =
      bus->create_mailbox("stream", {.kind = layout::RingKind::mpsc,
                                     .capacity = kStreamCapacity,
                                     .max_record = static_cast<std::uint32_t>(kPayloadBytes)});
  if (!stream) return state.SkipWithError(stream.error().message().c_str());

  SharedBlock<Control> control;
  SharedBlock<CacheLinePair> line;
  ChildProcess child =
      ChildProcess::start(kChildCpu, [name, &line_ref = *line, &control_ref = *control] {
        return serve_sink(name, line_ref, control_ref);
      });
  if (auto why = wait_ready(*control, child); !why.empty()) return state.SkipWithError(why.c_str());

  const auto bytes = bytes_of(*payload);
  std::uint64_t sent = 0;
  std::uint64_t line_round = 0;
  std::vector<double> floor_samples;
  // Untimed, before each batch: kFloorRounds cache-line round trips between
  // the same two processes, so the figure comes with the placement it ran in.
  const auto floor_rounds = [&]() -> bool {
    if (!stream->send(bytes, BenchClock::now() + kAnswerTimeout, {.type = kFloorRecord},
                      WaitMode::busy_poll)) {
      return false;
    }
    for (int i = 0; i < kFloorRounds; ++i) {
      const auto t0 = BenchClock::now();
      if (!cache_line_round_trip(*line, ++line_round, child)) return false;
      floor_samples.push_back(
          std::chrono::duration<double, std::nano>(BenchClock::now() - t0).count() / 2);
    }
    return true;
  };
  // Sends `count` records and waits until the child has taken them all.
  const auto stream_batch = [&](std::int64_t count) -> bool {
    const Deadline deadline = BenchClock::now() + 10s;
    for (std::int64_t i = 0; i < count; ++i) {
      if (!stream->send(bytes, deadline, {}, WaitMode::busy_poll)) return false;
    }
    sent += static_cast<std::uint64_t>(count);
    return spin_until([&] { return load_acquire(control->progress) >= sent; }, kAnswerTimeout);
  };

  bool ok = stream_batch(kStreamBatch);  // warm-up: fault the cells in, reach steady state
  std::vector<double> batch_seconds;
  batch_seconds.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    ok = ok && floor_rounds();
    const auto t0 = BenchClock::now();
    ok = ok && stream_batch(kStreamBatch);
    const auto t1 = BenchClock::now();
    if (!ok) {
      state.SkipWithError("the child stopped taking records");
      break;
    }
    batch_seconds.push_back(std::chrono::duration<double>(t1 - t0).count());
    state.SetIterationTime(batch_seconds.back());
  }
  (void)stream->send(bytes, BenchClock::now() + kAnswerTimeout, {.type = kStopRecord},
                     WaitMode::busy_poll);
  const int code = child.reap();
  if (ok && code != 0) {
    state.SkipWithError(code == 2 ? "a record failed verification" : "the child failed");
  }
  const std::int64_t records = state.iterations() * kStreamBatch;
  state.SetItemsProcessed(records);
  state.SetBytesProcessed(records * static_cast<std::int64_t>(kPayloadBytes));
  state.counters["verified"] = trusted ? 0 : 1;
  // The rate of the median batch: a batch during which another process took
  // a core away counts once, not in proportion to how long it stalled.
  if (!batch_seconds.empty()) {
    state.counters["median_batch_records_per_s"] =
        static_cast<double>(kStreamBatch) / quantile(batch_seconds, 0.5);
  }
  if (!floor_samples.empty()) state.counters["floor_p50_ns"] = quantile(floor_samples, 0.5);
}
BENCHMARK(BM_Throughput)
    ->ArgName("trusted")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Iterations(scaled(200))
    ->Unit(benchmark::kMicrosecond);

// ---- the receiver's read, alone ------------------------------------------------------------

void BM_ReadMessage(benchmark::State& state) {
  const bool trusted = state.range(0) != 0;
  const std::optional<Payload> payload = make_send_email();
  if (!payload) return state.SkipWithError("no SendEmail of exactly 64 bytes");
  MessageBuffer scratch;
  for (auto _ : state) {
    auto email = read_message<mailer::SendEmail>(bytes_of(*payload), mailer::SendEmailIdentifier(),
                                                 trusted, scratch);
    benchmark::DoNotOptimize(email);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReadMessage)->ArgName("trusted")->Arg(0)->Arg(1)->MinTime(0.05);

}  // namespace
}  // namespace shmbus::bench

BENCHMARK_MAIN();
