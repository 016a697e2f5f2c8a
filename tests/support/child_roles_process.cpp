// Roles for tests/process (segments, process table, rings, wake-ups).
#include <unistd.h>

#include "shmbus/bus.hpp"
#include "support/child_roles.hpp"

namespace shmbus::test {

namespace {

// "attach": attach, say "ready <ref>", then stay until killed.
int role_attach(const ChildArgs& args) {
  auto bus = Bus::attach(arg_text(args, "bus"), {.label = "test-child"});
  if (!bus) die(bus.error().message());
  say("ready " + std::to_string(bus->self().value));
  for (;;) ::pause();
}

}  // namespace

int run_process_role(const std::string& role, const ChildArgs& args) {
  if (role == "attach") return role_attach(args);
  return -1;
}

}  // namespace shmbus::test
