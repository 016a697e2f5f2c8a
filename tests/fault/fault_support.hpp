// fault_support.hpp — small helpers shared by the fault tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fault/stamped_record.hpp"
#include "shmbus/mailbox.hpp"

namespace shmbus::test {

// The producer id of records the test process sends itself. A record the
// test sends after a producer died is claimed after everything that producer
// claimed: once a single consumer has it, every earlier position was consumed
// or skipped, so the counters can be compared exactly.
inline constexpr std::uint32_t kTestProcess = 0;

inline void send_marker(Mailbox& mailbox, std::uint32_t index, std::size_t max_size = 64) {
  using namespace std::chrono_literals;
  std::vector<std::byte> payload(stamped_size({kTestProcess, index}, max_size));
  write_stamp(payload, {kTestProcess, index});
  auto sent = mailbox.send(payload, deadline_in(5s));
  ASSERT_TRUE(sent) << "marker " << index << ": " << to_string(sent.error());
}

// Lines of a child's output that start with `prefix`, prefix removed.
[[nodiscard]] inline std::vector<std::string> lines_after(const std::string& output,
                                                          const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) out.push_back(line.substr(prefix.size()));
  }
  return out;
}

// The kill point a child reported ("reached <name>"), or "" if none.
[[nodiscard]] inline std::string reached_point(const std::string& output) {
  auto points = lines_after(output, "reached ");
  return points.empty() ? std::string() : points.front();
}

// A seed for randomized rounds: SHMBUS_TEST_SEED when set (to replay a
// failure), otherwise fresh; tests print it in their SCOPED_TRACE.
[[nodiscard]] inline std::uint64_t test_seed() {
  if (const char* env = std::getenv("SHMBUS_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

}  // namespace shmbus::test
