// fuzz_support.hpp — seeds, random values biased to edges, planted /dev/shm files.
//
// Every fuzz test draws from one Fuzz object: its seed comes from
// SHMBUS_FUZZ_SEED (to replay a failure) or from std::random_device, and is
// printed at the start of the test and recorded as the test's "seed" property,
// so a failing run names the seed that reproduces it.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "ring/ring.hpp"
#include "support/ring_access.hpp"
#include "support/shm_file.hpp"
#include "shmbus/mailbox.hpp"

namespace shmbus::test {

class Fuzz {
 public:
  Fuzz() : seed_(pick_seed()), rng_(seed_) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::printf("[   SEED   ] %s.%s: SHMBUS_FUZZ_SEED=%llu\n", info ? info->test_suite_name() : "?",
                info ? info->name() : "?", static_cast<unsigned long long>(seed_));
    std::fflush(stdout);
    ::testing::Test::RecordProperty("seed", std::to_string(seed_));
  }

  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }
  [[nodiscard]] std::uint64_t next() { return rng_(); }
  // Uniform in [lo, hi].
  [[nodiscard]] std::uint64_t in(std::uint64_t lo, std::uint64_t hi) {
    return lo + (hi - lo == ~std::uint64_t{0} ? next() : next() % (hi - lo + 1));
  }
  [[nodiscard]] bool chance(unsigned one_in) { return next() % one_in == 0; }
  template <class T>
  [[nodiscard]] T pick(std::initializer_list<T> values) {
    return *(values.begin() + in(0, values.size() - 1));
  }
  void fill(std::span<std::byte> bytes) {
    for (auto& b : bytes) b = static_cast<std::byte>(next());
  }
  [[nodiscard]] std::vector<std::byte> bytes(std::size_t n) {
    std::vector<std::byte> out(n);
    fill(out);
    return out;
  }
  // A 32-bit value: uniform, or one of the edges parsers get wrong.
  [[nodiscard]] std::uint32_t u32_edge() {
    switch (in(0, 7)) {
      case 0:
        return 0;
      case 1:
        return 1;
      case 2:
        return 0xffffffffu;
      case 3:
        return 0x7fffffffu;
      case 4:
        return 0x80000000u;
      case 5:
        return static_cast<std::uint32_t>(in(0, 4096));
      default:
        return static_cast<std::uint32_t>(next());
    }
  }

 private:
  static std::uint64_t pick_seed() {
    if (const char* env = std::getenv("SHMBUS_FUZZ_SEED"); env != nullptr && *env != '\0') {
      return std::strtoull(env, nullptr, 0);
    }
    std::random_device device;
    return (std::uint64_t{device()} << 32) | device();
  }
  std::uint64_t seed_;
  std::mt19937_64 rng_;
};

}  // namespace shmbus::test
