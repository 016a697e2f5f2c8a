// tool_run.hpp — run the shmbus tool from a test, as a shell user would.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "support/child.hpp"

namespace shmbus::test {

struct ToolRun {
  int status = -1;   // exit status; 128 + signal when killed; -1 when it did not end in time
  std::string out;   // stdout and stderr, interleaved
};

// Runs `shmbus args…` to completion (killed after `timeout`).
inline ToolRun run_tool(const std::vector<std::string>& args,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30),
                        const std::vector<std::pair<std::string, std::string>>& env = {}) {
  Child child = Child::exec(SHMBUS_CLI, args, env);
  ToolRun run;
  run.status = child.wait(timeout);
  run.out = child.output();
  return run;
}

// Runs `/bin/sh -c command` to completion (killed with its process group
// after `timeout`: a hung command fails the test, never hangs it): pipes and
// redirections as a shell user writes them.
inline ToolRun run_shell(const std::string& command,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  Child child = Child::exec("/bin/sh", {"-c", command});
  ToolRun run;
  run.status = child.wait(timeout);
  run.out = child.output();
  return run;
}

// `shmbus args…` left running (a launcher, `top`): the Child kills its group
// and reaps it when destroyed, whatever the test did.
inline Child start_tool(const std::vector<std::string>& args,
                        const std::vector<std::pair<std::string, std::string>>& env = {}) {
  return Child::exec(SHMBUS_CLI, args, env);
}

}  // namespace shmbus::test
