// -----------------------------------------------------------------------------
// layout/registry.hpp — services, the servers of their pools, their counters
// -----------------------------------------------------------------------------
//
// In the control segment, at registry_offset (control.hpp):
//
//   0      RegistryHeader   mutex (robust, process-shared), epoch      128
//   128    ServiceEntry[kMaxServices]                                  ServiceEntry each
//
// ServiceEntry:
//   0      identity: state, name, schema, options                      512
//   512    ServiceCounters: caller-side outcomes (by Errc), retired    512
//   1024   ServerEntry[kMaxServersPerService]                          256 each
//
// A service is backed by segments named after it: the pool mailbox
// shmbus.<bus>.<service>~pool (mpmc: any idle server takes the next record),
// the dead-letter mailbox shmbus.<bus>.<service>~dead and, for keyed routing,
// one mpsc mailbox per partition, shmbus.<bus>.<service>~k<p>. '~' never
// occurs in a user's mailbox name, so these cannot collide.
//
// Keyed routing: a key hashes to one of `partitions` partitions; a partition
// is consumed by one server at a time (the mpsc ring's consumer entry is the
// ownership: taking it fails while a live server holds it), so the messages
// of one key run one at a time, in order. Partition p belongs to the
// (p mod n)-th live serving server; a server hands a partition over only
// between messages, and one that dies leaves its entry to be taken over with
// the record it held (redelivered first, so order is kept). The servers of a
// keyed service wait on several mailboxes, so they park on the service's
// doorbell, which senders ring (Dekker on doorbell_waiters, as for rings).
//
// Writers: registering a service and joining or leaving a pool are rare
// admin steps, serialized by the robust mutex; a holder that dies leaves
// EOWNERDEAD to the next locker, which repairs: an entry still `creating`
// is freed, a server entry of a dead process is retired. Lock-free readers
// (clients, `shmbus ps`) load `state` with acquire and read identity fields
// only when it says live; identity fields never change while live, but for
// `closed`, set once (0 → 1, seq_cst exchange) by a closer, loaded
// (seq_cst) by every send before and again after its claim.
// Counters are plain words: a server's own ServerEntry is written by that
// server alone (relaxed load + store); ServiceCounters (outcomes, retired) by
// many processes with relaxed fetch_add, on rare paths only.
// When a server entry is retired its counts are added to `retired`, so
// service totals survive the servers that made them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "shmbus/layout/constants.hpp"

namespace shmbus::layout {

inline constexpr std::uint32_t kMaxServices = 64;
inline constexpr std::uint32_t kMaxServersPerService = kMaxConsumersPerMailbox;
inline constexpr std::uint32_t kOutcomeCounters = 32;  // indexed by Errc value (all < 32)
inline constexpr std::uint32_t kLatencyBuckets = 16;   // 2^i microseconds
inline constexpr std::uint32_t kMaxPartitions = 64;    // keyed routing, per service

struct RegistryHeader {
  std::uint8_t mutex[64];    // pthread_mutex_t, PTHREAD_PROCESS_SHARED | ROBUST
  std::uint64_t epoch;       // moves on every register, join and leave; odd while counts move
  std::uint32_t capacity;    // kMaxServices
  std::uint32_t reserved0;
  std::uint8_t reserved[48];
};

enum class ServiceState : std::uint32_t { free = 0, creating = 1, live = 2 };

struct ServiceIdentity {
  std::uint64_t state;              // generation << 32 | ServiceState
  char name[48];                    // NUL-padded
  char request_identifier[4];       // FlatBuffers file_identifier, or zeros: any bytes
  char reply_identifier[4];
  std::uint64_t schema_hash;        // 0: no schema registered
  char request_type[64];            // fully qualified root type names, for tools
  char reply_type[64];
  char schema_path[128];            // where tools find the .fbs/.bfbs (may be empty)
  std::uint32_t mailbox_capacity;
  std::uint32_t max_record;
  std::uint32_t max_deliveries;     // a cast is dead-lettered after this many deliveries
  std::uint32_t dead_letter_capacity;
  std::uint32_t partitions;         // keyed routing: mailboxes ~k0 … ~k<n-1>, 0 = none
  std::uint32_t doorbell_seq;       // keyed services: servers park here (futex word)
  std::uint32_t doorbell_waiters;   // servers parked on doorbell_seq
  std::uint32_t closed;             // 1 once closed (Bus::close_service): sends fail with stopped
  std::uint8_t reserved[152];
};

// Per server, written only by that server (relaxed load + store).
struct ServerCounters {
  std::uint64_t calls;              // calls taken and run
  std::uint64_t casts;              // casts run
  std::uint64_t replies;            // replies that reached their caller's slot
  std::uint64_t expired_skipped;    // calls skipped: deadline passed or cancelled
  std::uint64_t late_replies;       // replies to callers that had given up or died
  std::uint64_t caller_gone;        // requests or replies whose caller had died
  std::uint64_t redelivered;        // records it received marked redelivered
  std::uint64_t dead_lettered;      // casts moved to the dead-letter list
  std::uint64_t dead_letters_dropped;  // dead letters refused: the list was full
  std::uint64_t bad_messages;       // requests failing verification or of another type
  std::uint64_t replies_too_large;  // replies larger than max_reply (caller: record_too_large)
  std::uint64_t busy_ns;            // handler time of the sampled messages (1 in 8)
  std::uint64_t latency[kLatencyBuckets];  // sampled handler times, bucket i < 2^i µs
};

enum class ServerState : std::uint32_t { free = 0, serving = 1, leaving = 2 };

struct ServerEntry {
  std::uint32_t owner;              // process reference; 0 = free
  std::uint32_t state;              // ServerState
  std::uint64_t joined_unix_ns;
  ServerCounters counters;          // 224 bytes
  std::uint8_t reserved[16];
};

struct ServiceCounters {
  std::uint64_t outcomes[kOutcomeCounters];  // caller-side failures, indexed by Errc
  ServerCounters retired;                    // sums of servers that left or died
  std::uint8_t reserved[512 - 8 * kOutcomeCounters - sizeof(ServerCounters)];
};

struct ServiceEntry {
  ServiceIdentity identity;
  ServiceCounters counters;
  ServerEntry servers[kMaxServersPerService];
};

static_assert(std::is_trivially_copyable_v<RegistryHeader> && std::is_standard_layout_v<RegistryHeader>);
static_assert(sizeof(RegistryHeader) == 128 && offsetof(RegistryHeader, epoch) == 64);
static_assert(std::is_trivially_copyable_v<ServiceEntry> && std::is_standard_layout_v<ServiceEntry>);
static_assert(sizeof(ServiceIdentity) == 512 && offsetof(ServiceIdentity, name) == 8);
static_assert(offsetof(ServiceIdentity, closed) == 356);
static_assert(sizeof(ServerCounters) == 224);
static_assert(sizeof(ServerEntry) == 256 && offsetof(ServerEntry, counters) == 16);
static_assert(sizeof(ServiceCounters) == 512);
static_assert(offsetof(ServiceEntry, counters) == 512 && offsetof(ServiceEntry, servers) == 1024);
static_assert(sizeof(ServiceEntry) == 1024 + 256 * kMaxServersPerService);
static_assert(alignof(ServiceEntry) == 8);

}  // namespace shmbus::layout
