// stamped_record.hpp — a self-checking record payload for the fault and concurrent suites.
//
//   0          4          8          12         16                 24
//   +----------+----------+----------+----------+------------------+-----------…
//   | producer | index    | size     | reserved | checksum (FNV-1a)| filler …
//
// `producer` names the sender (a test-chosen id, not a process reference),
// `index` counts that sender's records from 0, so a receiver can assert
// exactly-once and per-producer order. The size is a function of
// (producer, index), the filler a function of (producer, index, offset), and
// the checksum covers every byte but itself: a torn, overwritten or
// misdelivered payload fails read_stamp().
//
// Shared by tests/support/child_roles_fault.cpp (producers in child processes)
// and tests/concurrent (producer threads).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace shmbus::test {

struct Stamp {
  std::uint32_t producer = 0;
  std::uint32_t index = 0;
  friend bool operator==(Stamp, Stamp) = default;
};

inline constexpr std::size_t kStampBytes = 24;

[[nodiscard]] constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The payload size of record `index` of `producer`, in kStampBytes … max_size.
[[nodiscard]] constexpr std::size_t stamped_size(Stamp stamp, std::size_t max_size) noexcept {
  const std::uint64_t key = (std::uint64_t{stamp.producer} << 32) | stamp.index;
  return kStampBytes + splitmix64(key) % (max_size - kStampBytes + 1);
}

namespace detail_stamp {
inline std::uint64_t fnv1a(std::uint64_t hash, std::span<const std::byte> bytes) noexcept {
  for (std::byte b : bytes) hash = (hash ^ static_cast<std::uint8_t>(b)) * 0x100000001b3ull;
  return hash;
}
inline std::uint64_t checksum(std::span<const std::byte> payload) noexcept {
  std::uint64_t hash = fnv1a(0xcbf29ce484222325ull, payload.first(16));
  return fnv1a(hash, payload.subspan(kStampBytes));
}
}  // namespace detail_stamp

// Fills `out` (at least kStampBytes) as record `stamp`.
inline void write_stamp(std::span<std::byte> out, Stamp stamp) noexcept {
  const std::uint32_t head[4] = {stamp.producer, stamp.index,
                                 static_cast<std::uint32_t>(out.size()), 0};
  std::memcpy(out.data(), head, sizeof head);
  const std::uint64_t seed = splitmix64((std::uint64_t{stamp.producer} << 32) ^ stamp.index);
  for (std::size_t at = kStampBytes; at < out.size(); at += 8) {
    const std::uint64_t word = splitmix64(seed + at);
    std::memcpy(out.data() + at, &word, std::min<std::size_t>(8, out.size() - at));
  }
  const std::uint64_t sum = detail_stamp::checksum(out);
  std::memcpy(out.data() + 16, &sum, sizeof sum);
}

// The stamp of an intact payload, or nullopt for a torn or foreign one.
[[nodiscard]] inline std::optional<Stamp> read_stamp(std::span<const std::byte> in) noexcept {
  if (in.size() < kStampBytes) return std::nullopt;
  std::uint32_t head[4];
  std::uint64_t sum = 0;
  std::memcpy(head, in.data(), sizeof head);
  std::memcpy(&sum, in.data() + 16, sizeof sum);
  if (head[2] != in.size() || head[3] != 0 || sum != detail_stamp::checksum(in))
    return std::nullopt;
  return Stamp{head[0], head[1]};
}

}  // namespace shmbus::test
