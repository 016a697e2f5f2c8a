// child_lines.hpp — reading what a test child reported, with bounded waits.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/child.hpp"
#include "support/wait_until.hpp"

namespace shmbus::test {

// Waits until `child` printed a line starting with `prefix`; false (with the
// child's output in the failure message) at `timeout` or when it reported an
// error or exited.
[[nodiscard]] inline ::testing::AssertionResult wait_printed(
    Child& child, const std::string& prefix,
    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  bool failed = false;
  const bool seen = wait_until(timeout, [&] {
    if (child.printed(prefix)) return true;
    failed = child.printed("error:");
    return failed;
  });
  if (seen && !failed) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "child " << child.pid() << " did not print '" << prefix
                                       << "'; its output:\n" << child.output();
}

// Every line of the child's output that starts with `prefix`, without it.
[[nodiscard]] inline std::vector<std::string> lines_after(Child& child, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream lines(child.output());
  for (std::string line; std::getline(lines, line);) {
    if (line.compare(0, prefix.size(), prefix) == 0) out.push_back(line.substr(prefix.size()));
  }
  return out;
}

// The first such line ("" when none).
[[nodiscard]] inline std::string line_after(Child& child, const std::string& prefix) {
  auto lines = lines_after(child, prefix);
  return lines.empty() ? std::string() : lines.front();
}

// The process reference a child reported with "ready <ref>".
[[nodiscard]] inline std::uint32_t ready_ref(Child& child) {
  return static_cast<std::uint32_t>(std::strtoul(line_after(child, "ready ").c_str(), nullptr, 10));
}

// /proc/<pid>/stat: field 3 (state) and field 22 (start time); '?' and 0 when gone.
struct ProcStat {
  char state = '?';
  std::uint64_t start_time = 0;
};
[[nodiscard]] inline ProcStat proc_stat(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream fields(text.substr(close + 2));
  ProcStat stat;
  std::string field;
  fields >> stat.state;
  for (int i = 4; i <= 22; ++i) fields >> field;
  stat.start_time = std::strtoull(field.c_str(), nullptr, 10);
  return stat;
}

}  // namespace shmbus::test
