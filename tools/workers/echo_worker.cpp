// shmbus_echo_worker [--bus NAME] [--service echo]
//
// The smallest typed service, to copy: answers each Echo call with an
// EchoReply holding the same text and count and its own pid, and prints a
// line for each cast. Try it from the shell:
//
//   shmbus call BUS echo '{"text": "hi", "count": 2}'
//
// The bus and service come from --bus/--service, or from SHMBUS_BUS and
// SHMBUS_SERVICE as `shmbus launch` sets them; under the launcher
// (SHMBUS_LAUNCHER set) the worker joins the service the launcher registered
// with its configured sizes (Server::join), else it registers it (Server::start).
// SIGTERM or SIGINT: finish the message in hand, leave the pool, exit 0.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <shmbus/schemas/echo_generated.h>

#include "shmbus/shmbus.hpp"

namespace echo = shmbus::examples::echo;

namespace {

shmbus::Server* g_server = nullptr;

void on_stop_signal(int) {
  if (g_server != nullptr) g_server->stop();  // async-signal-safe: one atomic store
}

// --name VALUE, else the environment variable, else the fallback.
std::string setting(int argc, char** argv, const char* name, const char* env, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  const char* value = std::getenv(env);
  return value != nullptr ? value : fallback;
}

class Echo : public shmbus::Handler {
 public:
  void handle_call(const shmbus::Request& request, shmbus::ReplyWriter& reply) override {
    const auto* message = request.root<echo::Echo>();  // verified by the server loop
    builder_.Clear();
    echo::FinishEchoReplyBuffer(
        builder_, echo::CreateEchoReplyDirect(builder_, text(*message).c_str(), message->count(),
                                              ::getpid()));
    (void)reply.assign({reinterpret_cast<const std::byte*>(builder_.GetBufferPointer()),
                        builder_.GetSize()});
  }

  void handle_cast(const shmbus::Request& request) override {
    const auto* message = request.root<echo::Echo>();
    std::printf("[echo %d] cast: %s (count %d)\n", ::getpid(), text(*message).c_str(),
                message->count());
    std::fflush(stdout);
  }

 private:
  static std::string text(const echo::Echo& message) {
    return message.text() != nullptr ? message.text()->str() : "";
  }
  flatbuffers::FlatBufferBuilder builder_{256};
};

}  // namespace

int main(int argc, char** argv) {
  const std::string bus_name = setting(argc, argv, "--bus", "SHMBUS_BUS", "");
  const std::string service = setting(argc, argv, "--service", "SHMBUS_SERVICE", "echo");
  auto bus = shmbus::Bus::attach(bus_name, {.label = "echo-worker"});
  if (!bus) {
    std::fprintf(stderr, "echo_worker: %s\n", bus.error().message().c_str());
    return 1;
  }
  // The path lets tools (`shmbus call`) find the .fbs to turn JSON into an Echo.
  const auto schema = shmbus::ServiceSchema::of<echo::Echo, echo::EchoReply>(
      echo::EchoIdentifier(), echo::EchoReplyIdentifier(), "examples/echo.fbs");
  auto server = std::getenv("SHMBUS_LAUNCHER") != nullptr
                    ? shmbus::Server::join(*bus, service, schema)
                    : shmbus::Server::start(*bus, service, {.schema = schema});
  if (!server) {
    std::fprintf(stderr, "echo_worker: %s\n", server.error().message().c_str());
    return 1;
  }
  g_server = &*server;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  Echo handler;
  (void)server->serve(handler);
  g_server = nullptr;
  return 0;
}
