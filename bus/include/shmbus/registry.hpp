// -----------------------------------------------------------------------------
// registry.hpp — services: a name, its message types, and a pool of servers
// -----------------------------------------------------------------------------
//
// A service is a name in the bus's registry, backed by a pool of servers that
// share one mailbox: any idle server takes the next message, so a busy server
// never holds up a caller while a sibling is idle. A service registers its
// request and reply root types (file identifier + schema hash): a request of
// another type is `bad_message`, and tools find the types by service name.
//
//   auto spec = shmbus::ServiceOptions{
//       .schema = shmbus::ServiceSchema::of<mailer::SendEmail, mailer::EmailSent>("MAIL", "MALR")};
//   auto registered = bus.register_service("mailer", spec);   // idempotent
//   for (const auto& s : bus.services()) print(s.name, s.depth, s.servers.size());
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shmbus/message.hpp"

namespace shmbus {

// The request and reply root types of a service. Default: untyped bytes.
struct ServiceSchema {
  std::array<char, 4> request_identifier{};  // FlatBuffers file_identifier; zeros: any
  std::array<char, 4> reply_identifier{};
  std::uint64_t hash = 0;                    // 0: untyped
  std::string request_type{};                // fully qualified names, for tools
  std::string reply_type{};
  std::string path{};  // the request's .fbs, absolute or relative to share/shmbus/schemas
  // The request root type's verifier, run by servers (callers verify a
  // reply when they read it: Reply::read<Root>).
  bool (*verify_request)(std::span<const std::byte>) noexcept = nullptr;

  // The schema of a service whose requests are `Request` tables and replies
  // `Reply` tables (flatc --gen-name-strings types). The hash covers both
  // names and identifiers, so two builds agree exactly when their types do.
  template <class Request, class Reply>
  [[nodiscard]] static ServiceSchema of(const char* request_identifier,
                                        const char* reply_identifier, std::string path = {});
};

struct ServiceOptions {
  ServiceSchema schema{};
  std::uint32_t mailbox_capacity = 1024;   // records; power of two
  std::uint32_t max_record = 4096;         // request bytes
  std::uint32_t max_deliveries = 3;        // a cast that killed this many servers is dead-lettered
  std::uint32_t dead_letter_capacity = 64; // records; power of two
  // Keyed routing (CallOptions::key): messages of one key go to one server at
  // a time, in order. 0 = no keys; else a power of two, 2 … 64.
  std::uint32_t partitions = 0;
};

// Counters of one server, or of a service (its servers summed, those that
// left or died included). Snapshots: exact only while the service is idle.
struct ServerCounters {
  std::uint64_t calls = 0, casts = 0, replies = 0;
  std::uint64_t expired_skipped = 0, late_replies = 0, caller_gone = 0;
  std::uint64_t redelivered = 0, dead_lettered = 0, dead_letters_dropped = 0;
  std::uint64_t bad_messages = 0, replies_too_large = 0;
  std::uint64_t busy_ns = 0;                // handler time of the sampled messages
  // Handler times of one message in 8 (no clock read on the others):
  // bucket i counts times < 2^i µs. latency_quantile() reads p50/p99/p99.9.
  std::array<std::uint64_t, 16> latency{};
};

// The handler time below which a fraction `q` (0 … 1) of the counted
// messages fell, read from the histogram: the upper bound of the bucket that
// holds the q-quantile (so within a factor of two). Zero when nothing counted;
// microseconds::max() when it falls in the last, open bucket (>= 16.4 ms).
[[nodiscard]] std::chrono::microseconds latency_quantile(const ServerCounters& counters,
                                                         double q) noexcept;

struct ServerInfo {
  int pid = 0;
  std::uint32_t process = 0;  // ProcessRef value
  bool alive = false;
  bool leaving = false;
  std::uint64_t joined_unix_ns = 0;
  ServerCounters counters;
};

struct ServiceInfo {
  std::string name;
  ServiceOptions options;       // as registered (verifiers left null)
  std::vector<ServerInfo> servers;
  std::uint64_t depth = 0;      // records queued in the pool and partition mailboxes
  std::uint64_t dead_letters = 0;
  // The service's mailboxes (pool and partitions) summed: sender_aborted
  // (callers or casters that died between claim and commit, or whose claim
  // met Bus::close_service and was given back), ring-level
  // redelivered and bad_messages, mailbox_full refusals.
  MailboxCounters mailboxes;
  ServerCounters totals;
  // Caller-side outcomes other than a reply, indexed by Errc value
  // (timeout_not_started, server_crashed, mailbox_full, …).
  std::array<std::uint64_t, 32> outcomes{};
  bool closed = false;          // Bus::close_service: new calls and casts fail with stopped
};

namespace detail {
std::uint64_t schema_hash(std::string_view request_type, const char* request_identifier,
                          std::string_view reply_type, const char* reply_identifier) noexcept;
}

template <class Request, class Reply>
ServiceSchema ServiceSchema::of(const char* request_identifier, const char* reply_identifier,
                                std::string path) {
  ServiceSchema schema{};
  for (int i = 0; i < 4 && request_identifier[i] != 0; ++i) schema.request_identifier[i] = request_identifier[i];
  for (int i = 0; i < 4 && reply_identifier[i] != 0; ++i) schema.reply_identifier[i] = reply_identifier[i];
  schema.request_type = Request::GetFullyQualifiedName();
  schema.reply_type = Reply::GetFullyQualifiedName();
  schema.hash = detail::schema_hash(schema.request_type, request_identifier, schema.reply_type,
                                    reply_identifier);
  schema.path = std::move(path);
  // The identifiers are checked apart from these (a captureless verifier
  // cannot hold them), against the registry's copy.
  schema.verify_request = [](std::span<const std::byte> bytes) noexcept {
    return verify_message<Request>(bytes, nullptr);
  };
  return schema;
}

}  // namespace shmbus
