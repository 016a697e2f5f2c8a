// pattern.hpp — what a benchmark message holds, and how a receiver reads it.
//
// Every payload is an array of 64-bit words: word 0 is the message's sequence
// number (the sender's one store per message), word i (i >= 1) is
// i * kPatternStep, written once when the buffer (or block, or state value) is
// prepared, outside any timed loop. A receiver that reads every byte sums all
// words (sum_words: a loop the compiler vectorizes) and checks the sum against
// the closed form, so a read that saw stale or torn bytes is caught, and the
// read cannot be optimized away.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace shmbus::bench {

inline constexpr std::uint64_t kPatternStep = 0x9E3779B97F4A7C15ull;

// Fills `bytes` with the pattern (word 0 = `word0`); a tail shorter than a
// word is zeroed.
inline void fill_pattern(std::span<std::byte> bytes, std::uint64_t word0 = 0) noexcept {
  const std::size_t words = bytes.size() / 8;
  auto* p = reinterpret_cast<std::uint64_t*>(bytes.data());
  for (std::size_t i = 0; i < words; ++i) p[i] = static_cast<std::uint64_t>(i) * kPatternStep;
  if (words > 0) p[0] = word0;
  std::memset(bytes.data() + words * 8, 0, bytes.size() - words * 8);
}

// The sum of words 1 … n-1 of a pattern of `bytes` bytes (mod 2^64).
[[nodiscard]] constexpr std::uint64_t pattern_sum(std::size_t bytes) noexcept {
  const std::uint64_t n = bytes / 8;
  if (n < 2) return 0;
  // sum of i for i < n is n(n-1)/2; halve the even factor first (no overflow of the division)
  const std::uint64_t half = (n % 2 == 0) ? (n / 2) * (n - 1) : n * ((n - 1) / 2);
  return half * kPatternStep;
}

// The sum of every whole 64-bit word of `bytes` (mod 2^64): reads every byte
// once (the tail shorter than a word is not summed; payloads are multiples of 8).
[[nodiscard]] inline std::uint64_t sum_words(std::span<const std::byte> bytes) noexcept {
  const std::size_t words = bytes.size() / 8;
  const std::byte* p = bytes.data();
  std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  std::size_t i = 0;
  for (; i + 4 <= words; i += 4) {
    std::uint64_t w[4];
    std::memcpy(w, p + i * 8, sizeof(w));
    s0 += w[0];
    s1 += w[1];
    s2 += w[2];
    s3 += w[3];
  }
  for (; i < words; ++i) {
    std::uint64_t w;
    std::memcpy(&w, p + i * 8, 8);
    s0 += w;
  }
  return s0 + s1 + s2 + s3;
}

// Word 0 of a payload (its first cache line: what a header-only receiver reads).
[[nodiscard]] inline std::uint64_t word0(std::span<const std::byte> bytes) noexcept {
  std::uint64_t w = 0;
  std::memcpy(&w, bytes.data(), bytes.size() < 8 ? bytes.size() : 8);
  return w;
}

// Touches every page of `bytes` once for writing (faults it in for this
// process) without changing its content.
inline void pretouch_write(std::span<std::byte> bytes) noexcept {
  for (std::size_t at = 0; at < bytes.size(); at += 4096) {
    volatile std::byte* p = bytes.data() + at;
    *p = *p;
  }
}

// Touches every page of `bytes` once for reading (maps it into this process).
[[nodiscard]] inline std::uint64_t pretouch_read(std::span<const std::byte> bytes) noexcept {
  std::uint64_t x = 0;
  for (std::size_t at = 0; at < bytes.size(); at += 4096) {
    x += static_cast<std::uint64_t>(*static_cast<const volatile std::byte*>(bytes.data() + at));
  }
  return x;
}

}  // namespace shmbus::bench
