// crash_wire.hpp — what the crash tests and their child roles exchange.
//
// A request (call or cast) of the untyped test service is a CrashRequest: an
// index chosen by the sender and what the server's handler should do with it.
// A reply is a CrashReply. A server started with --log L sends one CrashLog
// record to mailbox L for every message its handler ran to the end, so a test
// sees each run (and who ran it) without trusting the server's counters.
//
// Shared by tests/support/child_roles_crash.cpp (servers, callers and
// registrars in child processes) and tests/fault/*crash*_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <chrono>
#include <cstring>
#include <optional>
#include <span>

#include "shmbus/client.hpp"
#include "shmbus/registry.hpp"

namespace shmbus::test {

enum class CrashAction : std::uint32_t {
  reply = 0,   // call: reply; cast: just log
  block = 1,   // on its first delivery: say "blocking <kind> <index>" and block until killed
  poison = 2,  // say "poisoned <index> <deliveries>" and die by SIGKILL, on every delivery
  gate = 3,    // say "gated <index>", wait for a record in the --gate mailbox, then reply
  work = 4,    // busy for kWorkTime, then as reply (a handler that costs something)
  slow = 5,    // busy for kSlowTime, then as reply (long enough for its caller to park)
};

inline constexpr std::chrono::microseconds kWorkTime{2};
inline constexpr std::chrono::microseconds kSlowTime{200};

inline constexpr std::uint32_t kCrashMagic = 0x43525348;  // "CRSH"

struct CrashRequest {
  std::uint64_t index = 0;
  CrashAction action = CrashAction::reply;
  std::uint32_t magic = kCrashMagic;
};

struct CrashReply {
  std::uint64_t index = 0;  // the request's index + 1
  std::int32_t pid = 0;     // the server that ran it
  std::uint32_t magic = kCrashMagic;
};

enum class CrashKind : std::uint32_t { call = 1, cast = 2 };

struct CrashLog {
  std::uint64_t index = 0;
  CrashKind kind = CrashKind::call;
  std::int32_t pid = 0;            // the server that ran it
  std::uint32_t deliveries = 0;    // RecordInfo::deliveries of the run
  std::uint32_t redelivered = 0;   // RecordInfo::redelivered of the run
};

template <class T>
[[nodiscard]] std::span<const std::byte> wire_bytes(const T& value) noexcept {
  return {reinterpret_cast<const std::byte*>(&value), sizeof value};
}

// A private copy of `bytes` as a T, or nullopt when the size or magic is wrong.
template <class T>
[[nodiscard]] std::optional<T> read_wire(std::span<const std::byte> bytes) noexcept {
  if (bytes.size() != sizeof(T)) return std::nullopt;
  T value;
  std::memcpy(&value, bytes.data(), sizeof value);
  if constexpr (requires { value.magic; }) {
    if (value.magic != kCrashMagic) return std::nullopt;
  }
  return value;
}

// The test service's options: untyped, small records. Tests register the
// service with these before servers start, and servers pass the same values
// (--capacity, --max-deliveries, --dead-letters), so Server::start finds them identical.
[[nodiscard]] inline ServiceOptions crash_service_options(std::uint32_t capacity = 1024,
                                                          std::uint32_t max_deliveries = 3,
                                                          std::uint32_t dead_letters = 64) {
  ServiceOptions options;
  options.mailbox_capacity = capacity;
  options.max_record = 64;
  options.max_deliveries = max_deliveries;
  options.dead_letter_capacity = dead_letters;
  return options;
}

// Options with only a deadline (the rest default, whatever members they gain).
[[nodiscard]] inline CallOptions call_until(Deadline deadline) {
  CallOptions options;
  options.deadline = deadline;
  return options;
}
[[nodiscard]] inline CastOptions cast_until(Deadline deadline) {
  CastOptions options;
  options.deadline = deadline;
  return options;
}

}  // namespace shmbus::test
