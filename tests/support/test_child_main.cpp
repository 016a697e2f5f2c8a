// shmbus_test_child <role> [--flag value]… — the other process of multi-process tests.
//
// Every role attaches to the bus named by --bus on its own (a real, separate
// process with its own process-table slot), reports "ready" on stdout, does
// its job and exits 0; any failure prints "error: …" and exits non-zero.
// --stop-at NAME arms the kill point NAME (the child reports "reached NAME"
// and blocks there until killed); --stop-after N stops at the Nth passage of
// any kill point (random points).
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "shmbus/detail/test_hook.hpp"
#include "support/child_roles.hpp"

namespace shmbus::test {

void say(const std::string& line) {
  const std::string out = line + "\n";
  (void)!::write(STDOUT_FILENO, out.data(), out.size());
}

void die(const std::string& what) {
  say("error: " + what);
  std::_Exit(2);
}

}  // namespace shmbus::test

int main(int argc, char** argv) {
  using namespace shmbus::test;
  if (argc < 2) die("usage: shmbus_test_child <role> [--flag value]…");
  const std::string role = argv[1];
  ChildArgs args;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) == 0) args[argv[i] + 2] = argv[i + 1];
  }
  const std::string stop_at = arg_text(args, "stop-at");
  const long stop_after = arg_number(args, "stop-after", 0);
  if (!stop_at.empty() || stop_after > 0) {
    shmbus::detail::arm_test_hook(stop_at.c_str(), stop_after, STDOUT_FILENO);
  }
  if (int status = run_process_role(role, args); status >= 0) return status;
  if (int status = run_fault_role(role, args); status >= 0) return status;
  if (int status = run_call_role(role, args); status >= 0) return status;
  if (int status = run_crash_role(role, args); status >= 0) return status;
  if (int status = run_keyed_role(role, args); status >= 0) return status;
  if (int status = run_state_role(role, args); status >= 0) return status;
  if (int status = run_loan_role(role, args); status >= 0) return status;
  if (int status = run_launch_role(role, args); status >= 0) return status;
  if (int status = run_tools_role(role, args); status >= 0) return status;
  die("unknown role " + role);
}
