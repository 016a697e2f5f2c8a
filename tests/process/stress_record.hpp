// stress_record.hpp — the self-checking records of the multi-process stress
// tests, shared by the producer/consumer child roles and the test process.
//
//   0          4        8            16           24
//   +----------+--------+------------+------------+----------------------+
//   | producer | bytes  | sequence   | checksum   | body (pseudo-random) |
//
// `bytes` is the whole record's length, `checksum` covers the body: a record
// that arrives torn, short, or mixed with another fails verify().
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace shmbus::test::stress {

struct RecordHead {
  std::uint32_t producer;
  std::uint32_t bytes;
  std::uint64_t sequence;
  std::uint64_t checksum;
};
static_assert(sizeof(RecordHead) == 24);

inline constexpr std::uint32_t kMaxRecord = 320;
inline constexpr std::uint16_t kStopType = 0x5709;  // a record that tells a consumer to stop

[[nodiscard]] inline std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

[[nodiscard]] inline std::uint64_t checksum(std::span<const std::byte> body) noexcept {
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ body.size();
  std::size_t i = 0;
  for (; i + 8 <= body.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, body.data() + i, 8);
    h = mix(h ^ word);
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, body.data() + i, body.size() - i);
  return mix(h ^ tail ^ 0xff);
}

// Writes the record (producer, sequence) into `out` (resized): its size is
// pseudo-random in [sizeof(RecordHead), kMaxRecord].
inline void make_record(std::uint32_t producer, std::uint64_t sequence,
                        std::vector<std::byte>& out) {
  std::uint64_t state = mix((std::uint64_t{producer} << 40) ^ sequence ^ 0x5eed);
  const std::uint32_t bytes =
      sizeof(RecordHead) + static_cast<std::uint32_t>(state % (kMaxRecord - sizeof(RecordHead) + 1));
  out.resize(bytes);
  for (std::size_t i = sizeof(RecordHead); i < bytes; i += 8) {
    state = mix(state + 0x9e3779b97f4a7c15ULL);
    std::memcpy(out.data() + i, &state, std::min<std::size_t>(8, bytes - i));
  }
  const RecordHead head{producer, bytes, sequence,
                        checksum({out.data() + sizeof(RecordHead), bytes - sizeof(RecordHead)})};
  std::memcpy(out.data(), &head, sizeof head);
}

// The record's head if `payload` is an intact record, else false.
[[nodiscard]] inline bool verify(std::span<const std::byte> payload, RecordHead& head) noexcept {
  if (payload.size() < sizeof(RecordHead)) return false;
  std::memcpy(&head, payload.data(), sizeof head);
  if (head.bytes != payload.size()) return false;
  return checksum(payload.subspan(sizeof(RecordHead))) == head.checksum;
}

// Per-producer totals a consumer reports: with count, sum and sum of squares
// of the sequences it saw, the test checks exactly-once across consumers.
struct Totals {
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
  std::uint64_t sum_squares = 0;  // modulo 2^64 on both sides
  void add(std::uint64_t sequence) noexcept {
    ++count;
    sum += sequence;
    sum_squares += sequence * sequence;
  }
  // The totals of sequences 0 … n-1, each exactly once.
  [[nodiscard]] static Totals of_all(std::uint64_t n) noexcept {
    Totals t;
    for (std::uint64_t s = 0; s < n; ++s) t.add(s);
    return t;
  }
  friend bool operator==(const Totals&, const Totals&) = default;
};

}  // namespace shmbus::test::stress
