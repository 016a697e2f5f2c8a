// child_roles_tools.cpp — roles of shmbus_test_child for the shmbus tool's
// tests (tests/tools/): the worker processes on the other side of a command.
//
//   tools_state_check  --bus B --key K --size N --seed S
//       gets K, checks its size is N and that it is the whole pattern value
//       of seed S (state_pattern.hpp), says "checked <N> bytes" and exits 0.
//   tools_echo_poison  --bus B --service S
//       serves S with the example echo schema and max_deliveries 1; a cast
//       whose text is "poison" kills it (SIGKILL) after it says
//       "poisoned <deliveries>"; other casts and calls say "echoed <text>".
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include <shmbus/schemas/echo_generated.h>

#include "shmbus/bus.hpp"
#include "shmbus/server.hpp"
#include "shmbus/state.hpp"
#include "support/child_roles.hpp"
#include "support/state_pattern.hpp"

namespace shmbus::test {

namespace {

using namespace std::chrono_literals;
namespace echo = shmbus::examples::echo;

Bus attach_or_die(const ChildArgs& args, const char* label) {
  auto bus = Bus::attach(arg_text(args, "bus"), {.ready_timeout = 5s, .label = label});
  if (!bus) die(bus.error().message());
  return std::move(*bus);
}

int state_check(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "tools_state_check");
  auto state = bus.state();
  if (!state) die(state.error().message());
  auto view = state->get(arg_text(args, "key"));
  if (!view) die(std::string("get: ") + to_string(view.error()));
  const auto size = static_cast<std::size_t>(arg_number(args, "size", 0));
  if (view->bytes().size() != size) {
    die("size " + std::to_string(view->bytes().size()) + ", expected " + std::to_string(size));
  }
  const auto seed = static_cast<std::uint64_t>(arg_number(args, "seed", 0));
  if (check_pattern(view->bytes()) != seed) die("the value is not the whole pattern of its seed");
  say("checked " + std::to_string(size) + " bytes");
  return 0;
}

class EchoPoison : public Handler {
 public:
  void handle_call(const Request& request, ReplyWriter&) override { (void)act(request); }
  void handle_cast(const Request& request) override { (void)act(request); }

 private:
  static bool act(const Request& request) {
    const auto* message = flatbuffers::GetRoot<echo::Echo>(request.payload().data());
    const std::string text = message->text() != nullptr ? message->text()->str() : "";
    if (text == "poison") {
      say("poisoned " + std::to_string(request.info().deliveries));
      ::kill(::getpid(), SIGKILL);
      for (;;) ::pause();
    }
    say("echoed " + text);
    return true;
  }
};

int echo_poison(const ChildArgs& args) {
  Bus bus = attach_or_die(args, "tools_echo_poison");
  ServiceOptions options;
  options.schema = ServiceSchema::of<echo::Echo, echo::EchoReply>(
      echo::EchoIdentifier(), echo::EchoReplyIdentifier(), "examples/echo.fbs");
  options.max_deliveries = 1;
  auto server = Server::start(bus, arg_text(args, "service", "echo"), options);
  if (!server) die(server.error().message());
  EchoPoison handler;
  say("ready");
  (void)server->serve(handler);
  return 0;
}

}  // namespace

int run_tools_role(const std::string& role, const ChildArgs& args) {
  if (role == "tools_state_check") return state_check(args);
  if (role == "tools_echo_poison") return echo_poison(args);
  return -1;
}

}  // namespace shmbus::test
