// child_roles.hpp — the roles of shmbus_test_child, grouped by the suites that use them.
#pragma once

#include <cstdlib>
#include <map>
#include <string>

namespace shmbus::test {

using ChildArgs = std::map<std::string, std::string>;

[[nodiscard]] inline long arg_number(const ChildArgs& args, const char* key, long fallback) {
  auto it = args.find(key);
  return it == args.end() ? fallback : std::atol(it->second.c_str());
}
[[nodiscard]] inline std::string arg_text(const ChildArgs& args, const char* key,
                                          const char* fallback = "") {
  auto it = args.find(key);
  return it == args.end() ? fallback : it->second;
}

// Writes one line to stdout (the harness's pipe), unbuffered.
void say(const std::string& line);
// Prints "error: <what>" and exits 2.
[[noreturn]] void die(const std::string& what);

// Each group returns the role's exit status, or -1 when it does not know the role.
int run_process_role(const std::string& role, const ChildArgs& args);  // child_roles_process.cpp
int run_fault_role(const std::string& role, const ChildArgs& args);    // child_roles_fault.cpp
int run_call_role(const std::string& role, const ChildArgs& args);     // child_roles_calls.cpp
int run_crash_role(const std::string& role, const ChildArgs& args);    // child_roles_crash.cpp
int run_keyed_role(const std::string& role, const ChildArgs& args);    // child_roles_keyed.cpp
int run_state_role(const std::string& role, const ChildArgs& args);    // child_roles_state.cpp
int run_loan_role(const std::string& role, const ChildArgs& args);     // child_roles_loans.cpp
int run_launch_role(const std::string& role, const ChildArgs& args);   // child_roles_launch.cpp
int run_tools_role(const std::string& role, const ChildArgs& args);    // child_roles_tools.cpp

}  // namespace shmbus::test
