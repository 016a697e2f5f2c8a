// calls.hpp — what call_bench's benchmarks share: the mailer service (its
// options and a handler), a bus removed at the end of a benchmark, a
// read-only view of call slots, a round counter that parks idle producer
// processes, and how long a process waited for a CPU.
//
// CallPeek: the parking call benchmark replies only once its caller has
// announced itself in the call slot's `waiters` word (layout/calls.hpp: a
// parked caller increments it right before FUTEX_WAIT), as the futex floor
// answers only once its peer has announced itself. It maps the control
// segment (/dev/shm/shmbus.<bus>, laid out as layout/control.hpp computes
// from the bus's counts) read-only and loads that word; it changes nothing.
#pragma once

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include <benchmark/benchmark.h>

#include "shmbus/bus.hpp"
#include "shmbus/client.hpp"
#include "shmbus/server.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/layout/calls.hpp"
#include "shmbus/layout/control.hpp"
#include "shmbus/layout/process_table.hpp"
#include "shmbus/registry.hpp"
#include "support/cpu_wait.hpp"
#include "support/floors.hpp"
#include "support/payload.hpp"

namespace shmbus::bench {

using namespace std::chrono_literals;

inline constexpr char kMailerService[] = "mailer";
inline constexpr auto kAnswerTimeout = 2s;

[[nodiscard]] inline std::span<const std::byte> bytes_of(const Payload& payload) noexcept {
  return {payload.data(), payload.size()};
}

// Reports a child's setup failure to the parent; the child's exit code.
inline int child_failed(Control& control, const std::string& what) {
  control.set_failed(what);
  return 1;
}

[[nodiscard]] inline CreateOptions bus_options(bool trusted, std::uint32_t max_in_flight = 64) {
  CreateOptions options;
  options.trusted = trusted;
  options.label = "bench-parent";
  options.max_in_flight = max_in_flight;
  return options;
}

// The mailer service: SendEmail requests, EmailSent replies (the verifier
// runs on both unless the bus is trusted), 64-byte records.
[[nodiscard]] inline ServiceOptions mailer_service(std::uint32_t mailbox_capacity) {
  namespace mailer = shmbus::examples::mailer;
  ServiceOptions options;
  options.schema = ServiceSchema::of<mailer::SendEmail, mailer::EmailSent>(
      mailer::SendEmailIdentifier(), mailer::EmailSentIdentifier());
  options.mailbox_capacity = mailbox_capacity;
  options.max_record = static_cast<std::uint32_t>(kPayloadBytes);
  return options;
}

// Removes the bus's segments when the benchmark ends, however it ends.
class RemoveBusAtExit {
 public:
  explicit RemoveBusAtExit(std::string name) : name_(std::move(name)) {}
  RemoveBusAtExit(const RemoveBusAtExit&) = delete;
  RemoveBusAtExit& operator=(const RemoveBusAtExit&) = delete;
  ~RemoveBusAtExit() { (void)Bus::remove(name_); }

 private:
  std::string name_;
};


class CallPeek;

// The mailer's handler: replies with the 64-byte EmailSent. With `peek`, it
// first waits until the caller is parked (announced in its call slot); with
// `sleep`, it sleeps first. Casts are counted into `progress` (one writer).
class Mailer final : public Handler {
 public:
  Mailer(const Payload& reply, const CallPeek* peek, std::chrono::nanoseconds sleep,
         std::uint64_t* progress)
      : reply_(reply), peek_(peek), sleep_(sleep), progress_(progress) {}

  void handle_call(const Request& request, ReplyWriter& writer) override;
  void handle_cast(const Request& request) override {
    benchmark::DoNotOptimize(request.root<examples::mailer::SendEmail>()->subject());
    if (progress_ != nullptr) store_release(*progress_, ++casts_);
  }
  bool failed = false;

 private:
  Payload reply_;
  const CallPeek* peek_;
  std::chrono::nanoseconds sleep_;
  std::uint64_t* progress_;
  std::uint64_t casts_ = 0;
};

// Attaches (into `bus`), joins the pool of `service` (with the mailer's
// types); the server, or nullopt after
// reporting the failure in `control`.
[[nodiscard]] inline std::optional<Server> join_pool(std::optional<Bus>& bus,
                                                     const std::string& name,
                                                     std::uint32_t capacity, Control& control,
                                                     const char* service = kMailerService) {
  auto attached = Bus::attach(name, {.label = "bench-server"});
  if (!attached) {
    (void)child_failed(control, attached.error().message());
    return std::nullopt;
  }
  bus.emplace(std::move(*attached));
  auto server = Server::start(*bus, service, mailer_service(capacity));
  if (!server) {
    (void)child_failed(control, server.error().message());
    return std::nullopt;
  }
  return std::move(*server);
}

// `count` casts of one payload, waiting (busy) for room rather than refusing.
[[nodiscard]] inline bool send_casts(Service& service, const Payload& payload,
                                     std::int64_t count) {
  CastOptions options;
  options.deadline = BenchClock::now() + 10s;
  options.mode = WaitMode::busy_poll;
  for (std::int64_t i = 0; i < count; ++i) {
    if (!service.cast(bytes_of(payload), options)) return false;
  }
  return true;
}

class CallPeek {
 public:
  // `options` as the bus was created with (they fix the segment's layout).
  CallPeek(const std::string& bus, const CreateOptions& options)
      : layout_(layout::control_layout(options.max_processes, options.max_in_flight,
                                       options.max_reply)),
        max_processes_(options.max_processes),
        calls_per_process_(options.max_in_flight) {
    const std::string shm = "/shmbus." + bus;
    const int fd = ::shm_open(shm.c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return;
    void* p = ::mmap(nullptr, layout_.total_size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p != MAP_FAILED) base_ = static_cast<const std::byte*>(p);
  }
  CallPeek(const CallPeek&) = delete;
  CallPeek& operator=(const CallPeek&) = delete;
  ~CallPeek() {
    if (base_ != nullptr) ::munmap(const_cast<std::byte*>(base_), layout_.total_size);
  }

  [[nodiscard]] bool ok() const noexcept { return base_ != nullptr; }

  // Callers announced as parked on the call slot that the request `info`
  // names (sender's process slot, correlation's slot index); 0 when out of range.
  [[nodiscard]] std::uint32_t waiters(const RecordInfo& info) const noexcept {
    const std::uint32_t process = layout::ref_slot(info.sender.value);
    const std::uint32_t index = layout::correlation_index(info.correlation);
    if (base_ == nullptr || process >= max_processes_ || index >= calls_per_process_) return 0;
    const std::uint64_t at =
        layout_.calls_offset +
        (std::uint64_t{process} * calls_per_process_ + index) * layout_.call_stride;
    const auto& slot = *reinterpret_cast<const layout::CallSlotHeader*>(base_ + at);
    return detail::load_acquire(slot.waiters);
  }

 private:
  layout::ControlLayout layout_;
  std::uint32_t max_processes_;
  std::uint32_t calls_per_process_;
  const std::byte* base_ = nullptr;
};

// A batch counter that producer processes park on between batches (so an
// idle producer leaves its core to the others). `stop` ends them.
struct Rounds {
  alignas(128) std::uint32_t seq;  // futex word: bumped to start a batch
  std::uint32_t stop;
  alignas(128) std::uint32_t finished;  // producers done with the current batch
};

// Bumps the round and wakes every parked producer.
inline void start_round(Rounds& rounds, bool stop = false) {
  if (stop) store_release(rounds.stop, std::uint32_t{1});
  std::atomic_ref<std::uint32_t>(rounds.seq).fetch_add(1);
  (void)::syscall(SYS_futex, &rounds.seq, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

// Parks until the round after `last`; returns it (false on stop).
[[nodiscard]] inline bool next_round(Rounds& rounds, std::uint32_t& last) {
  using namespace std::chrono_literals;
  std::uint32_t seen;
  while ((seen = load_acquire(rounds.seq)) == last) futex_wait(&rounds.seq, last, 100ms);
  last = seen;
  return load_acquire(rounds.stop) == 0;
}

inline void Mailer::handle_call(const Request& request, ReplyWriter& writer) {
  benchmark::DoNotOptimize(request.root<examples::mailer::SendEmail>()->subject());
  if (sleep_.count() > 0) std::this_thread::sleep_for(sleep_);
  if (peek_ != nullptr &&
      !spin_until([&] { return peek_->waiters(request.info()) != 0; }, kAnswerTimeout)) {
    failed = true;
  }
  if (!writer.assign(bytes_of(reply_))) failed = true;
}

}  // namespace shmbus::bench
