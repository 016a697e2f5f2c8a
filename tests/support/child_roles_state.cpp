// child_roles_state.cpp — roles of shmbus_test_child for the state tests.
//
//   state_read_loop  reads --key (a pattern value, state_pattern.hpp) in a
//                    loop and checks every byte, until the key "stop" has a
//                    value; prints "done reads=<n> versions=<distinct> bad=<n>".
//   state_pin        pins --key, prints "pinned <version>", blocks until killed.
//   state_scribble   pins --key read-only, prints "writing", writes into it
//                    (the test expects death by SIGSEGV; "error: …" if not).
//   state_put        puts a pattern value of --size bytes (seed --seed) under
//                    --key with begin_put / publish: kill points inside the
//                    library (--stop-at state_publish_locked …) and
//                    state_put_written (value written, not published) stop it.
//   state_remove     removes --key (kill point state_remove_locked).
#include <unistd.h>

#include <chrono>
#include <set>
#include <string>

#include "shmbus/bus.hpp"
#include "shmbus/detail/test_hook.hpp"
#include "shmbus/state.hpp"
#include "support/child_roles.hpp"
#include "support/state_pattern.hpp"

namespace shmbus::test {

namespace {

using namespace std::chrono_literals;

Bus attach_or_die(const ChildArgs& args, const char* label) {
  auto bus = Bus::attach(arg_text(args, "bus"), {.ready_timeout = 5s, .label = label});
  if (!bus) die(bus.error().message());
  return std::move(*bus);
}

State state_or_die(Bus& bus, StateAccess access) {
  auto state = bus.state(access);
  if (!state) die(state.error().message());
  return std::move(*state);
}

int read_loop(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "state_read_loop");
  State state = state_or_die(bus, StateAccess::read_only);
  const std::string key = arg_text(args, "key", "big");
  say("ready");
  long reads = 0, bad = 0;
  std::set<std::uint64_t> versions;
  while (!state.get("stop")) {
    auto view = state.get(key);
    if (!view) {
      if (view.error() != Errc::no_such_key) die(std::string("get: ") + to_string(view.error()));
      continue;
    }
    if (check_pattern(view->bytes()) == 0) ++bad;
    versions.insert(view->version());
    ++reads;
  }
  say("done reads=" + std::to_string(reads) + " versions=" + std::to_string(versions.size()) +
      " bad=" + std::to_string(bad));
  return 0;
}

int pin(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "state_pin");
  State state = state_or_die(bus, StateAccess::read_only);
  auto view = state.get(arg_text(args, "key", "k"));
  if (!view) die(std::string("get: ") + to_string(view.error()));
  say("pinned " + std::to_string(view->version()));
  for (;;) ::pause();
}

int scribble(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "state_scribble");
  State state = state_or_die(bus, StateAccess::read_only);
  auto view = state.get(arg_text(args, "key", "k"));
  if (!view) die(std::string("get: ") + to_string(view.error()));
  say("writing");
  auto* target = const_cast<volatile std::byte*>(view->bytes().data());
  *target = std::byte{0x5a};  // SIGSEGV: the mapping is PROT_READ
  die("wrote into the read-only state mapping");
}

int put(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "state_put");
  State state = state_or_die(bus, StateAccess::read_write);
  say("ready");
  auto tx = state.begin_put(arg_text(args, "key", "k"),
                            static_cast<std::size_t>(arg_number(args, "size", 4096)));
  if (!tx) die(tx.error().message());
  fill_pattern(tx->bytes(), static_cast<std::uint64_t>(arg_number(args, "seed", 99)));
  SHMBUS_TEST_HOOK(state_put_written);
  auto ref = tx->publish();
  if (!ref) die(ref.error().message());
  say("done " + std::to_string(ref->handle));
  return 0;
}

int remove(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "state_remove");
  State state = state_or_die(bus, StateAccess::read_write);
  say("ready");
  if (auto removed = state.remove(arg_text(args, "key", "k")); !removed) {
    die(removed.error().message());
  }
  say("done");
  return 0;
}

}  // namespace

int run_state_role(const std::string& role, const ChildArgs& args) {
  if (role == "state_read_loop") return read_loop(args);
  if (role == "state_pin") return pin(args);
  if (role == "state_scribble") return scribble(args);
  if (role == "state_put") return put(args);
  if (role == "state_remove") return remove(args);
  return -1;
}

}  // namespace shmbus::test
