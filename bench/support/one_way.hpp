// one_way.hpp — one-way latency and throughput of any transport between two
// processes on two cores: the harness of share_bench (copy vs share), written
// so the peers of the report issue (peers/peer.hpp) run through it unchanged.
//
// Latency (run_latency). The parent (CPU 0) sends one message at a time to the
// forked child (CPU 1). Each round:
//   1. one floor round trip between the same two processes (cache-line
//      ping-pong when busy-polling, futex ping-pong when parked:
//      support/floors.hpp), so every figure comes with the floor it ran next
//      to; the child stamps when it sees the ping, so the floor is timed one
//      way like the messages (floor_p50_ns), and as round trip / 2
//      (floor_rtt_half_p50_ns, ring_bench's measure);
//   2. parked only: the parent waits (untimed) until the kernel says the child
//      sleeps (/proc/<pid>/wchan names a wait: ProcState::asleep), and
//      kParkSettle more, so every message pays a real wake-up, the same one
//      the floor paid;
//   3. t0 = clock; send(seq) — everything the sender does is timed (a copy
//      path's memcpy, a loan's acquisition);
//   4. the child receives it, reads it (only word 0, or every byte: a sum of
//      all 64-bit words, checked against the pattern), then t1 = clock, and
//      publishes t1 and seq in shared memory; the parent waits for that
//      (untimed) before the next round.
// One-way latency = t1 - t0 (steady_clock is CLOCK_MONOTONIC: one clock for
// all CPUs). Unlike ring_bench's round trip / 2, this stays right when the
// two directions differ (a 64 MiB message one way, nothing back).
//
// Throughput (run_stream). The parent sends batches of messages back to back
// (waiting for room when the transport is full); the child takes them and
// counts them in shared memory; a batch is timed from its first send until the
// child has read its last message. messages/s and GB/s of payload, and the
// cache-line floor (round trip / 2) measured between the same two processes
// right before the stream: a virtual machine that placed its vCPUs worse for
// that benchmark shows there.
//
// Both report p50 / p99 / p99.9 / min / max (support/percentiles.hpp) and the
// floor's p50 / p99 (floor_p50_ns …, ratio_p50 = figure / floor), the
// transport's facts (TransportFacts), `samples` (p99.9 means something
// only with >= 1,000 samples; below that the report shows "max of n") and
// child_cpu_wait / parent_cpu_wait (support/cpu_wait.hpp).
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "peers/peer.hpp"
#include "support/cpu_wait.hpp"
#include "support/floors.hpp"
#include "support/pattern.hpp"
#include "support/percentiles.hpp"
#include "support/pin.hpp"
#include "support/two_process.hpp"

namespace shmbus::bench {

using peers::PeerWait;
using peers::TransportFacts;
using peers::TransportSpec;
using namespace std::chrono_literals;

inline constexpr std::uint64_t kStopSeq = ~std::uint64_t{0};  // stream mode: the last message
inline constexpr auto kMessageTimeout = 10s;
// Parked rounds wake a child that has slept at least this long, the floor's
// wake and the message's alike: how long a wake-up takes depends on how long
// the CPU has slept (an idle vCPU of a virtual machine sleeps deeper with
// time; measured here: woken within a few µs of falling asleep, a 64 B
// message took 21 µs and the futex floor 12 µs; after 30 µs or more, both
// took 22–26 µs). Without it the floor and the messages would not pay the
// same wake-up, and their ratio would measure the machine's idle states.
inline constexpr auto kParkSettle = 50us;
// Cache-line round trips before a stream: the placement its figure ran in.
inline constexpr int kStreamFloorRounds = 256;

[[nodiscard]] inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(BenchClock::now().time_since_epoch())
      .count();
}

// What the child publishes per message (latency) or in total (stream).
struct Stamps {
  alignas(128) std::uint64_t seq;  // written last, with release
  std::int64_t t1_ns;
  alignas(128) std::int64_t floor_t1_ns;  // when the child saw the last floor ping
  alignas(128) std::uint64_t taken;       // stream: messages read so far
  alignas(128) std::uint64_t bad;         // messages with a wrong seq or sum (never expected)
};

struct OneWayShared {
  Control control;
  CacheLinePair line;
  FutexPair futex;
  Stamps stamps;
};

// How the receiver reads a message.
enum class Read : std::uint8_t {
  header,  // word 0 only: the first cache line
  all,     // every byte: sum of all words, checked against the pattern
};

// Reads one message as `read` says; false when it is not the one expected.
[[nodiscard]] inline bool consume(std::uint64_t seq, std::span<const std::byte> payload, Read read,
                                  std::uint64_t expected_seq) noexcept {
  bool ok = seq == expected_seq;
  if (read == Read::all) {
    const std::uint64_t sum = sum_words(payload);
    ok = ok && sum - word0(payload) == pattern_sum(payload.size());
    benchmark::DoNotOptimize(sum);
  } else {
    std::uint64_t head = word0(payload);
    benchmark::DoNotOptimize(head);
  }
  return ok;
}

// ---- the floors, timed one way --------------------------------------------------------------
//
// The floor round trips of floors.hpp, with one more clock read: the child
// stamps the moment it sees the ping (Stamps::floor_t1_ns) before it answers,
// so the parent gets the floor's one-way time in the direction and by the
// method of the messages (t1 - t0), beside the round trip / 2. The two differ
// when waking one CPU costs more than waking the other (an idle vCPU of a
// virtual machine sleeps deeper): a message always wakes the child's CPU.

// Child, busy: answer_cache_line with the stamp. False on the stop ping.
[[nodiscard]] inline bool answer_line_stamped(CacheLinePair& pair, std::uint64_t& last,
                                              Stamps& stamps) noexcept {
  std::uint64_t seen;
  while ((seen = load_acquire(pair.ping)) == last) {
  }
  const std::int64_t t1 = now_ns();
  if (seen == kStopPing) return false;
  last = seen;
  stamps.floor_t1_ns = t1;
  store_release(pair.pong, seen);
  return true;
}

// Child, parked: answer_futex with the stamp taken right after the wake-up.
[[nodiscard]] inline bool answer_futex_stamped(FutexPair& pair, std::uint32_t& last,
                                               const Control& control, Stamps& stamps) {
  const std::uint32_t seen = park_until_changed(pair.ping, last, 10s);
  const std::int64_t t1 = now_ns();
  if (seen == last || control.stop_requested()) return false;
  last = seen;
  stamps.floor_t1_ns = t1;
  if (!spin_until([&] { return load_acquire(pair.pong.waiters) != 0; }, 2s)) return false;
  wake(pair.pong);
  return true;
}

// ---- the child ----------------------------------------------------------------------------

// Latency child: alternates one floor answer and one message; ends at the
// stop ping (or stop futex). Exit code 0, 1 on a transport failure.
template <class Transport>
int serve_latency(Transport& transport, OneWayShared& shared, Read read, bool parked) {
  if (auto why = transport.become_receiver(); !why.empty()) {
    shared.control.set_failed(why);
    return 1;
  }
  std::uint64_t line_last = 0;
  std::uint32_t futex_last = 0;
  std::uint64_t expected = 0;
  std::uint64_t bad = 0;
  shared.control.set_ready();
  for (;;) {
    const bool floor_answered =
        parked ? answer_futex_stamped(shared.futex, futex_last, shared.control, shared.stamps)
               : answer_line_stamped(shared.line, line_last, shared.stamps);
    if (!floor_answered) break;
    ++expected;
    std::int64_t t1 = 0;
    const bool received =
        transport.receive(BenchClock::now() + kMessageTimeout,
                          [&](std::uint64_t seq, std::span<const std::byte> payload) {
                            if (!consume(seq, payload, read, expected)) ++bad;
                            t1 = now_ns();
                          });
    if (!received) return 1;
    shared.stamps.t1_ns = t1;
    store_release(shared.stamps.bad, bad);
    store_release(shared.stamps.seq, expected);
  }
  return 0;
}

// Stream child: takes messages until the stop message, counting them.
template <class Transport>
int serve_stream(Transport& transport, OneWayShared& shared, Read read) {
  if (auto why = transport.become_receiver(); !why.empty()) {
    shared.control.set_failed(why);
    return 1;
  }
  std::uint64_t taken = 0;
  std::uint64_t bad = 0;
  bool stop = false;
  shared.control.set_ready();
  std::uint64_t line_last = 0;
  for (int i = 0; i < kStreamFloorRounds; ++i) {
    if (!answer_line_stamped(shared.line, line_last, shared.stamps)) return 1;
  }
  const auto deadline = BenchClock::now() + 600s;  // no clock read per message
  while (!stop) {
    const bool received =
        transport.receive(deadline, [&](std::uint64_t seq, std::span<const std::byte> payload) {
          if (seq == kStopSeq) {
            stop = true;
            return;
          }
          if (!consume(seq, payload, read, taken + 1)) ++bad;
          ++taken;
        });
    if (!received) return 1;
    store_release(shared.stamps.bad, bad);
    store_release(shared.stamps.taken, taken);
  }
  return 0;
}

// ---- the parent ---------------------------------------------------------------------------

// Untimed messages before the measured ones: `wanted`, or more when the
// transport asks for more (warmup_messages(): e.g. enough to write every ring
// cell twice, so no cell is faulted in for the first time while timed).
template <class Transport>
[[nodiscard]] std::int64_t warmup_for(const Transport& transport, std::int64_t wanted) {
  if constexpr (requires { transport.warmup_messages(); }) {
    return std::max<std::int64_t>(wanted, transport.warmup_messages());
  }
  return wanted;
}

// The parent's side of one benchmark: pins, opens the transport, forks the
// child, makes the parent the sender. On failure `error` says why.
template <class Transport>
class TwoEnds {
 public:
  TwoEnds(const TransportSpec& spec, Read read) : transport(spec) {
    if (!pin_to_cpu(kParentCpu)) {
      error = "cannot pin the parent to CPU 0";
      return;
    }
    if (auto why = transport.open(); !why.empty()) {
      error = why;
      return;
    }
    const bool parked = spec.wait == PeerWait::park;
    child.emplace(ChildProcess::start(kChildCpu, [this, read, parked, stream = spec.stream] {
      return stream ? serve_stream(transport, *shared, read)
                    : serve_latency(transport, *shared, read, parked);
    }));
    if (auto why = wait_ready(shared->control, *child, 60s); !why.empty()) {
      error = why;
      return;
    }
    if (auto why = transport.become_sender(); !why.empty()) {
      error = why;
      return;
    }
  }

  Transport transport;
  SharedBlock<OneWayShared> shared;
  std::optional<ChildProcess> child;
  std::string error;
};

// The share of the measured loop the child and the parent spent runnable
// but waiting for a CPU (child_cpu_wait, parent_cpu_wait): near 0 on a quiet
// machine; the report flags a figure taken while something else held a core.
class CpuWaits {
 public:
  explicit CpuWaits(pid_t child) : child_(child), parent_(::getpid()) {}
  void report(benchmark::State& state) const {
    state.counters["child_cpu_wait"] = child_.share();
    state.counters["parent_cpu_wait"] = parent_.share();
  }

 private:
  CpuWait child_;
  CpuWait parent_;
};

inline void report_facts(benchmark::State& state, const TransportFacts& facts) {
  for (const auto& [name, value] : facts) state.counters[name] = value;
}

// Sets items/bytes processed and the spec's arguments as counters.
inline void report_spec(benchmark::State& state, const TransportSpec& spec, Read read,
                        std::int64_t messages) {
  state.SetItemsProcessed(messages);
  state.SetBytesProcessed(messages * static_cast<std::int64_t>(spec.bytes));
  state.counters["payload_bytes"] = static_cast<double>(spec.bytes);
  state.counters["parked"] = spec.wait == PeerWait::park ? 1 : 0;
  state.counters["read_all"] = read == Read::all ? 1 : 0;
}

// One-way latency of `Transport` (see the top of this file); `warmup`
// untimed rounds first (they also fault in every buffer, cell and block).
template <class Transport>
void run_latency(benchmark::State& state, const TransportSpec& spec, Read read, int warmup) {
  const bool parked = spec.wait == PeerWait::park;
  TwoEnds<Transport> ends(spec, read);
  if (!ends.error.empty()) return state.SkipWithError(ends.error.c_str());
  OneWayShared& shared = *ends.shared;
  ChildProcess& child = *ends.child;
  std::optional<ProcState> child_state;
  if (parked) {
    child_state.emplace(child.pid());
    if (!child_state->ok()) return state.SkipWithError("cannot watch the child's parking");
  }

  std::uint64_t seq = 0;
  std::uint64_t line_round = 0;
  std::uint32_t futex_last = 0;
  std::string failure;
  // Parked: once the child sleeps, wait kParkSettle more before waking it, for
  // the floor and the message alike (see kParkSettle).
  const auto settle = [] {
    const auto until = BenchClock::now() + kParkSettle;
    while (BenchClock::now() < until) cpu_relax();
  };
  // One floor round trip, then one message; false (with `failure`) on error.
  // `floor_ns`: the floor's one-way time (child's stamp - t0), `floor_rtt_ns`
  // its round trip.
  const auto round = [&](double& one_way_ns, double& floor_ns, double& floor_rtt_ns) -> bool {
    std::int64_t f0 = 0;
    BenchClock::duration floor_rtt{};
    if (parked) {
      // As floors.hpp's futex_round_trip: the child sleeps on `ping` first.
      if (!spin_until(
              [&] { return load_acquire(shared.futex.ping.waiters) != 0 && child_state->parked(); },
              kMessageTimeout)) {
        failure = "the child never parked for the futex floor";
        return false;
      }
      settle();
      const auto r0 = BenchClock::now();
      f0 = now_ns();
      wake(shared.futex.ping);
      const std::uint32_t seen = park_until_changed(shared.futex.pong, futex_last, 2s);
      floor_rtt = BenchClock::now() - r0;
      if (seen == futex_last) {
        failure = "the child stopped answering the futex floor";
        return false;
      }
      futex_last = seen;
      if (!spin_until([&] { return child_state->asleep(); }, kMessageTimeout)) {
        failure = "the child never went to sleep before a message";
        return false;
      }
      settle();
    } else {
      const auto r0 = BenchClock::now();
      f0 = now_ns();
      if (!cache_line_round_trip(shared.line, ++line_round, child)) {
        failure = "the child stopped answering the cache-line floor";
        return false;
      }
      floor_rtt = BenchClock::now() - r0;
    }
    floor_ns = static_cast<double>(shared.stamps.floor_t1_ns - f0);
    floor_rtt_ns = std::chrono::duration<double, std::nano>(floor_rtt).count();
    ++seq;
    const auto deadline = BenchClock::now() + kMessageTimeout;
    const std::int64_t t0 = now_ns();
    if (!ends.transport.send(seq, deadline)) {
      failure = "send failed";
      return false;
    }
    if (!spin_until([&] { return load_acquire(shared.stamps.seq) == seq || child.exited(); },
                    kMessageTimeout) ||
        load_acquire(shared.stamps.seq) != seq) {
      failure = "the child did not receive a message";
      return false;
    }
    one_way_ns = static_cast<double>(shared.stamps.t1_ns - t0);
    return true;
  };

  double one_way = 0;
  double floor = 0;
  double floor_rtt = 0;
  bool ok = true;
  const std::int64_t warm = warmup_for(ends.transport, warmup);
  for (std::int64_t i = 0; i < warm && ok; ++i) ok = round(one_way, floor, floor_rtt);
  std::vector<double> samples;
  std::vector<double> floor_samples;
  std::vector<double> floor_rtt_samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  floor_samples.reserve(static_cast<std::size_t>(state.max_iterations));
  floor_rtt_samples.reserve(static_cast<std::size_t>(state.max_iterations));
  const CpuWaits waits(child.pid());
  for (auto _ : state) {
    ok = ok && round(one_way, floor, floor_rtt);
    if (!ok) break;
    samples.push_back(one_way);
    floor_samples.push_back(floor);
    floor_rtt_samples.push_back(floor_rtt);
    state.SetIterationTime(one_way * 1e-9);
  }
  waits.report(state);

  if (parked) {
    stop_futex(shared.futex, shared.control);
  } else {
    shared.control.request_stop();
    stop_cache_line(shared.line);
  }
  const int code = child.reap();
  if (!ok) return state.SkipWithError(failure.c_str());
  if (code != 0) return state.SkipWithError("the child failed");
  if (load_acquire(shared.stamps.bad) != 0) {
    return state.SkipWithError("a message arrived with a wrong sequence number or content");
  }
  if (parked) state.SetLabel(std::string("asleep signal: ") + child_state->signal());
  TransportFacts facts;
  ends.transport.describe(facts);
  report_facts(state, facts);
  report_spec(state, spec, read, state.iterations());
  state.counters["samples"] = static_cast<double>(samples.size());
  report_latency_and_floor(state, samples, floor_samples);
  if (!floor_rtt_samples.empty()) {
    state.counters["floor_rtt_half_p50_ns"] = quantile(floor_rtt_samples, 0.5) / 2;
  }
}

// Throughput of `Transport`: batches of `batch` messages (see the top of this
// file). One untimed batch first (warm-up: faults everything in; larger when
// the transport asks: warmup_for).
template <class Transport>
void run_stream(benchmark::State& state, const TransportSpec& spec, Read read, std::int64_t batch) {
  TwoEnds<Transport> ends(spec, read);
  if (!ends.error.empty()) return state.SkipWithError(ends.error.c_str());
  OneWayShared& shared = *ends.shared;
  ChildProcess& child = *ends.child;

  // The placement the figure runs in: cache-line round trips between the
  // same two processes before the stream (floor_p50_ns, round trip / 2).
  std::vector<double> floor_samples;
  for (std::uint64_t round = 1; round <= kStreamFloorRounds; ++round) {
    const auto r0 = BenchClock::now();
    if (!cache_line_round_trip(shared.line, round, child)) {
      return state.SkipWithError("the child did not answer the cache-line floor");
    }
    floor_samples.push_back(
        std::chrono::duration<double, std::nano>(BenchClock::now() - r0).count() / 2);
  }

  std::uint64_t seq = 0;
  std::string failure;
  const auto stream_batch = [&](std::int64_t count) -> bool {
    const auto deadline = BenchClock::now() + 60s;
    for (std::int64_t i = 0; i < count; ++i) {
      if (!ends.transport.send(++seq, deadline)) {
        failure = "send failed";
        return false;
      }
    }
    if (!spin_until([&] { return load_acquire(shared.stamps.taken) >= seq || child.exited(); },
                    60s) ||
        load_acquire(shared.stamps.taken) < seq) {
      failure = "the child did not take every message";
      return false;
    }
    return true;
  };

  bool ok = stream_batch(warmup_for(ends.transport, batch));
  std::vector<double> batch_seconds;
  batch_seconds.reserve(static_cast<std::size_t>(state.max_iterations));
  const CpuWaits waits(child.pid());
  for (auto _ : state) {
    const auto t0 = BenchClock::now();
    ok = ok && stream_batch(batch);
    const auto t1 = BenchClock::now();
    if (!ok) break;
    batch_seconds.push_back(std::chrono::duration<double>(t1 - t0).count());
    state.SetIterationTime(batch_seconds.back());
  }
  waits.report(state);
  (void)ends.transport.send(kStopSeq, BenchClock::now() + 10s);
  const int code = child.reap();
  if (!ok) return state.SkipWithError(failure.c_str());
  if (code != 0) return state.SkipWithError("the child failed");
  if (load_acquire(shared.stamps.bad) != 0) {
    return state.SkipWithError("a message arrived with a wrong sequence number or content");
  }
  TransportFacts facts;
  ends.transport.describe(facts);
  report_facts(state, facts);
  const std::int64_t messages = state.iterations() * batch;
  report_spec(state, spec, read, messages);
  state.counters["batch"] = static_cast<double>(batch);
  double total = 0;
  for (double s : batch_seconds) total += s;
  if (total > 0) {
    const double rate = static_cast<double>(messages) / total;
    state.counters["msgs_per_s"] = rate;
    state.counters["gb_per_s"] = rate * static_cast<double>(spec.bytes) / 1e9;
  }
  state.counters["floor_p50_ns"] = quantile(floor_samples, 0.5);
  if (!batch_seconds.empty()) {
    // The median batch: a batch during which the machine took a core away counts once.
    state.counters["median_batch_msgs_per_s"] =
        static_cast<double>(batch) / quantile(batch_seconds, 0.5);
  }
}

}  // namespace shmbus::bench
