// shmbus_test_child <role> [--flag value]… — the other process of multi-process tests.
//
// Every role attaches to the bus named by --bus on its own (a real, separate
// process with its own process-table slot), reports "ready" on stdout, does
// its job and exits 0; any failure prints "error: …" and exits non-zero.
// --stop-at NAME arms the kill point NAME (the child reports "reached NAME"
// and blocks there until killed); --stop-after N stops at the Nth passage of
// any kill point (random points).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "shmbus/bus.hpp"
#include "shmbus/detail/test_hook.hpp"

namespace {

using Args = std::map<std::string, std::string>;

Args parse(int argc, char** argv) {
  Args args;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) == 0) args[argv[i] + 2] = argv[i + 1];
  }
  return args;
}

long number(const Args& args, const char* key, long fallback) {
  auto it = args.find(key);
  return it == args.end() ? fallback : std::atol(it->second.c_str());
}

std::string text(const Args& args, const char* key, const char* fallback = "") {
  auto it = args.find(key);
  return it == args.end() ? fallback : it->second;
}

void say(const std::string& line) {
  std::string out = line + "\n";
  (void)!::write(STDOUT_FILENO, out.data(), out.size());
}

[[noreturn]] void die(const std::string& what) {
  say("error: " + what);
  std::_Exit(2);
}

// The role "attach": attach, say ready, and wait until killed or stdin closes.
int role_attach(const Args& args) {
  auto bus = shmbus::Bus::attach(text(args, "bus"), {.label = "test-child"});
  if (!bus) die(bus.error().message());
  say("ready " + std::to_string(bus->self().value));
  char c;
  while (::read(STDIN_FILENO, &c, 1) > 0) {
  }
  pause();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: shmbus_test_child <role> [--flag value]…");
  const std::string role = argv[1];
  const Args args = parse(argc, argv);
  const std::string stop_at = text(args, "stop-at");
  const long stop_after = number(args, "stop-after", 0);
  if (!stop_at.empty() || stop_after > 0) {
    shmbus::detail::arm_test_hook(stop_at.c_str(), stop_after, STDOUT_FILENO);
  }
  if (role == "attach") return role_attach(args);
  die("unknown role " + role);
}
