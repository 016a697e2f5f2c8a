// state_pattern.hpp — values that prove a reader saw one whole version, and
// where a pointer lies in this process's mappings. For the state tests.
//
// A pattern value is 64-bit words: word 0 the version's seed, word 1 the sum
// of every later word, word i (i >= 2) a function of (seed, i). A value that
// mixes two versions, or was changed after publish, fails check_pattern.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <span>
#include <sstream>
#include <string>

namespace shmbus::test {

[[nodiscard]] inline std::uint64_t pattern_word(std::uint64_t seed, std::uint64_t i) noexcept {
  return seed * 0x9E3779B97F4A7C15ULL + i * 0xD1B54A32D192ED03ULL + (seed ^ i);
}

// Fills `value` (a multiple of 8 bytes, at least 16) with the version `seed`.
inline void fill_pattern(std::span<std::byte> value, std::uint64_t seed) noexcept {
  auto* words = reinterpret_cast<std::uint64_t*>(value.data());
  const std::size_t n = value.size() / 8;
  std::uint64_t sum = 0;
  for (std::size_t i = 2; i < n; ++i) sum += (words[i] = pattern_word(seed, i));
  words[0] = seed;
  words[1] = sum;
}

// The seed of a whole, unchanged pattern value, or 0.
[[nodiscard]] inline std::uint64_t check_pattern(std::span<const std::byte> value) noexcept {
  if (value.size() < 16 || value.size() % 8 != 0) return 0;
  const auto* words = reinterpret_cast<const std::uint64_t*>(value.data());
  const std::size_t n = value.size() / 8;
  const std::uint64_t seed = words[0];
  std::uint64_t sum = 0;
  bool same = true;
  for (std::size_t i = 2; i < n; ++i) {
    sum += words[i];
    same &= words[i] == pattern_word(seed, i);
  }
  return same && sum == words[1] ? seed : 0;
}

// The /proc/self/maps line of the mapping that holds `p` ("" if none):
// "start-end perms offset dev inode path".
[[nodiscard]] inline std::string mapping_of(const void* p) {
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream fields(line);
    std::uintptr_t start = 0, end = 0;
    char dash = 0;
    fields >> std::hex >> start >> dash >> end;
    if (at >= start && at < end) return line;
  }
  return "";
}

}  // namespace shmbus::test
