// keyed_wire.hpp — what the keyed-routing process test and its child roles
// share: the service's options, the message on the wire, and the handling log.
//
// The handling log is one small file mapped MAP_SHARED by the test and every
// server and producer process. A server's handler takes a slot and a start
// ticket from the shared counters, writes its entry, runs, then takes an end
// ticket and writes it. Nothing is buffered: what a process wrote before it
// was killed -9 stays in the file (the page cache holds it). Tickets come from
// one atomic counter, so for the messages of one key, which the bus runs one at
// a time, the tickets order the runs: a run that ends before another begins
// has a smaller end ticket than the other's start ticket, whichever processes
// ran them. Two runs of one key with overlapping [start, end] ran at once.
//
// Shared by tests/support/child_roles_keyed.cpp (servers and producers) and
// tests/process/keyed_process_test.cpp.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "shmbus/registry.hpp"

namespace shmbus::test {

inline constexpr const char* kKeyedService = "keyed";
inline constexpr std::uint32_t kKeyedMagic = 0x4b455944;  // "KEYD"

// Every server of the service registers it with these options.
[[nodiscard]] inline ServiceOptions keyed_service_options() {
  return ServiceOptions{.mailbox_capacity = 256, .partitions = 16};
}

enum class KeyedKind : std::uint32_t { cast = 0, call = 1 };

// A cast or call: the key's seq-th message (seq from 0, per key).
struct KeyedMessage {
  std::uint64_t key = 0;
  std::uint32_t seq = 0;
  KeyedKind kind = KeyedKind::cast;
  std::uint32_t magic = kKeyedMagic;
  std::uint32_t reserved = 0;
};
// A call's reply echoes its message.
using KeyedReply = KeyedMessage;

// Which messages producers send as calls (the rest are casts): about one in `every`.
[[nodiscard]] inline bool keyed_is_call(std::uint64_t key, std::uint32_t seq, long every) noexcept {
  return every > 0 && (key * 31 + seq) % static_cast<std::uint64_t>(every) == 0;
}

template <class T>
[[nodiscard]] std::span<const std::byte> keyed_bytes(const T& value) noexcept {
  return {reinterpret_cast<const std::byte*>(&value), sizeof value};
}

[[nodiscard]] inline std::optional<KeyedMessage> read_keyed(std::span<const std::byte> bytes) {
  KeyedMessage message;
  if (bytes.size() != sizeof message) return std::nullopt;
  std::memcpy(&message, bytes.data(), sizeof message);
  if (message.magic != kKeyedMagic) return std::nullopt;
  return message;
}

// ---- the handling log ----

struct KeyedLogHeader {
  std::atomic<std::uint64_t> slots;           // entries taken
  std::atomic<std::uint64_t> tickets;         // start and end tickets, from 1
  std::atomic<std::uint64_t> finished;        // entries whose run ended
  std::atomic<std::uint32_t> stop_producers;  // set by the test: finish the round and stop
  std::uint32_t reserved0;
  std::uint64_t capacity;  // entries the file holds
  std::uint8_t reserved[24];
};
static_assert(sizeof(KeyedLogHeader) == 64);

inline constexpr std::uint8_t kEntryRedelivered = 1;
inline constexpr std::uint8_t kEntryCall = 2;

struct KeyedLogEntry {
  std::uint64_t key;
  std::uint32_t seq;
  std::uint16_t server;     // the --id of the server that ran it
  std::uint8_t flags;       // kEntryRedelivered | kEntryCall
  std::uint8_t deliveries;  // RecordInfo::deliveries
  std::uint64_t start;      // start ticket; 0 while the entry is being written
  std::uint64_t end;        // end ticket; 0 while running (forever, if killed)
};
static_assert(sizeof(KeyedLogEntry) == 32);

// The log file, mapped shared. Empty (ok() false) when it cannot be mapped.
class KeyedLog {
 public:
  // Creates `path` for `capacity` entries (zeroed).
  static KeyedLog create(const std::string& path, std::uint64_t capacity) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return KeyedLog();
    const auto size = sizeof(KeyedLogHeader) + capacity * sizeof(KeyedLogEntry);
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      ::close(fd);
      return KeyedLog();
    }
    KeyedLog log(fd, size);
    if (log.ok()) log.header().capacity = capacity;
    return log;
  }
  static KeyedLog open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return KeyedLog();
    struct stat st {};
    if (::fstat(fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < sizeof(KeyedLogHeader)) {
      ::close(fd);
      return KeyedLog();
    }
    return KeyedLog(fd, static_cast<std::size_t>(st.st_size));
  }

  KeyedLog(KeyedLog&& other) noexcept
      : base_(std::exchange(other.base_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  KeyedLog& operator=(KeyedLog&&) = delete;
  ~KeyedLog() {
    if (base_ != nullptr) ::munmap(base_, size_);
  }

  [[nodiscard]] bool ok() const noexcept { return base_ != nullptr; }
  [[nodiscard]] KeyedLogHeader& header() const noexcept {
    return *static_cast<KeyedLogHeader*>(base_);
  }
  [[nodiscard]] KeyedLogEntry& entry(std::uint64_t slot) const noexcept {
    return reinterpret_cast<KeyedLogEntry*>(static_cast<std::byte*>(base_) +
                                            sizeof(KeyedLogHeader))[slot];
  }
  [[nodiscard]] std::uint64_t next_ticket() const noexcept {
    return header().tickets.fetch_add(1, std::memory_order_seq_cst) + 1;
  }

 private:
  KeyedLog() = default;
  KeyedLog(int fd, std::size_t size) : size_(size) {
    void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (base == MAP_FAILED) {
      size_ = 0;
      return;
    }
    base_ = base;
  }
  void* base_ = nullptr;
  std::size_t size_ = 0;
};

// Loads and stores of the entry words other processes read.
[[nodiscard]] inline std::uint64_t load_word(const std::uint64_t& word) noexcept {
  return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(word))
      .load(std::memory_order_acquire);
}
inline void store_word(std::uint64_t& word, std::uint64_t value) noexcept {
  std::atomic_ref<std::uint64_t>(word).store(value, std::memory_order_release);
}

}  // namespace shmbus::test
