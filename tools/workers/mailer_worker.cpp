// shmbus_mailer_worker --bus NAME [--service mailer] [--delay-ms 5]
//
// The example mailer server: joins the service's pool and answers each
// SendEmail call with an EmailSent reply after "sending" it (a sleep of
// --delay-ms stands for the SMTP round trip). Casts are sent the same way,
// without a reply. A subject of "crash" makes the worker die with SIGKILL
// while it runs the message (on first delivery only): the demo shows the
// caller getting server_crashed at once, and a cast going to a sibling.
// SIGTERM or SIGINT: finish the message in hand, leave the pool, exit 0.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <shmbus/schemas/mailer_generated.h>
#include <shmbus/schemas/mailer_reply_generated.h>

#include "shmbus/shmbus.hpp"

namespace mailer = shmbus::examples::mailer;

namespace {

shmbus::Server* g_server = nullptr;

void on_stop_signal(int) {
  if (g_server != nullptr) g_server->stop();  // async-signal-safe: one atomic store
}

std::string arg(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}

class Mailer : public shmbus::Handler {
 public:
  explicit Mailer(std::chrono::milliseconds delay) : delay_(delay) {}

  void handle_call(const shmbus::Request& request, shmbus::ReplyWriter& reply) override {
    const std::string detail = send(request);
    builder_.Clear();
    auto sent = mailer::CreateEmailSentDirect(builder_, request.info().position,
                                              mailer::Delivery::Sent, detail.c_str(), ::getpid());
    mailer::FinishEmailSentBuffer(builder_, sent);
    (void)reply.assign({reinterpret_cast<const std::byte*>(builder_.GetBufferPointer()),
                        builder_.GetSize()});
  }
  void handle_cast(const shmbus::Request& request) override {
    const std::string detail = send(request);
    std::printf("[worker %d] cast: %s\n", ::getpid(), detail.c_str());
    std::fflush(stdout);
  }

 private:
  std::string send(const shmbus::Request& request) {
    const auto* email = request.root<mailer::SendEmail>();  // verified by the server loop
    const std::string subject = email->subject() ? email->subject()->str() : "";
    if (subject == "crash" && !request.info().redelivered) ::kill(::getpid(), SIGKILL);
    std::this_thread::sleep_for(delay_);
    const std::string to = email->to_email() ? email->to_email()->str() : "?";
    return "sent to " + to +
           (request.info().redelivered
                ? " (redelivered, delivery " + std::to_string(request.info().deliveries) + ")"
                : "");
  }
  std::chrono::milliseconds delay_;
  flatbuffers::FlatBufferBuilder builder_{256};
};

}  // namespace

int main(int argc, char** argv) {
  const std::string bus_name = arg(argc, argv, "--bus", "");
  const std::string service = arg(argc, argv, "--service", "mailer");
  const std::chrono::milliseconds delay{std::atol(arg(argc, argv, "--delay-ms", "5").c_str())};
  auto bus = shmbus::Bus::attach(bus_name, {.label = "mailer-worker"});
  if (!bus) {
    std::fprintf(stderr, "mailer_worker: %s\n", bus.error().message().c_str());
    return 1;
  }
  const shmbus::ServiceOptions options{
      .schema = shmbus::ServiceSchema::of<mailer::SendEmail, mailer::EmailSent>(
          mailer::SendEmailIdentifier(), mailer::EmailSentIdentifier(), "examples/mailer.fbs")};
  auto server = shmbus::Server::start(*bus, service, options);
  if (!server) {
    std::fprintf(stderr, "mailer_worker: %s\n", server.error().message().c_str());
    return 1;
  }
  g_server = &*server;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  Mailer handler(delay);
  (void)server->serve(handler, {.mode = shmbus::WaitMode::spin_then_park});
  g_server = nullptr;
  return 0;
}
