// shmbus_mailer_worker [--bus NAME] [--service mailer] [--maildir DIR] [--delay-ms 5]
//
// The example mailer server. Each SendEmail (call or cast) is rendered from
// its template — a MailTemplate in the bus's state segment, read in place —
// and delivered into the Maildir DIR as new/<id> (idempotent: a redelivered
// cast replaces its own file). A call is answered with an EmailSent reply:
// Sent, or Rejected with the reason (unknown template, a failed write).
// Without --maildir, nothing is written (the sleep of --delay-ms stands for
// the SMTP round trip, as it does in both cases).
//
// The bus and service come from --bus/--service, or from SHMBUS_BUS and
// SHMBUS_SERVICE as `shmbus launch` sets them; under the launcher
// (SHMBUS_LAUNCHER set) the worker joins the service the launcher registered
// (Server::join), else it registers it itself (Server::start).
//
// A subject of "crash" makes the worker die with SIGKILL while it runs the
// message (first delivery only): the bottleneck demo shows its caller getting
// server_crashed at once and a cast going to a sibling.
// SIGTERM or SIGINT: finish the message in hand, leave the pool, exit 0.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include <shmbus/schemas/mail_template_generated.h>
#include <shmbus/schemas/mailer_generated.h>

#include "maildir.hpp"
#include "shmbus/shmbus.hpp"

namespace mailer = shmbus::examples::mailer;

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
  const char* value = env != nullptr ? std::getenv(env) : nullptr;
  return value != nullptr ? value : fallback;
}

std::string_view text(const flatbuffers::String* s) {
  return s != nullptr ? s->string_view() : std::string_view{};
}

// The template with {{name}}, {{email}} and {{id}} filled in.
std::string render(std::string_view pattern, const mailer::SendEmail& email, std::uint64_t id) {
  std::string out;
  out.reserve(pattern.size() + 64);
  for (std::size_t at = 0; at < pattern.size();) {
    const std::size_t open = pattern.find("{{", at);
    const std::size_t close = open == std::string_view::npos ? open : pattern.find("}}", open);
    if (close == std::string_view::npos) {
      out.append(pattern.substr(at));
      break;
    }
    out.append(pattern.substr(at, open - at));
    const std::string_view field = pattern.substr(open + 2, close - open - 2);
    if (field == "name") out.append(text(email.to_name()));
    else if (field == "email") out.append(text(email.to_email()));
    else if (field == "id") out.append(std::to_string(id));
    else out.append(pattern.substr(open, close + 2 - open));  // not ours: left as written
    at = close + 2;
  }
  return out;
}

struct Outcome {
  mailer::Delivery status = mailer::Delivery::Sent;
  std::string detail;
};

class Mailer : public shmbus::Handler {
 public:
  Mailer(shmbus::Bus& bus, std::optional<shmbus::examples::Maildir> maildir,
         std::chrono::milliseconds delay)
      : bus_(bus), maildir_(std::move(maildir)), delay_(delay) {}

  void handle_call(const shmbus::Request& request, shmbus::ReplyWriter& reply) override {
    const auto* email = request.root<mailer::SendEmail>();  // verified by the server loop
    const std::uint64_t id = email->id() != 0 ? email->id() : request.info().position;
    const Outcome outcome = send(request, *email, id);
    builder_.Clear();
    mailer::FinishEmailSentBuffer(
        builder_, mailer::CreateEmailSentDirect(builder_, id, outcome.status,
                                                outcome.detail.c_str(), ::getpid()));
    (void)reply.assign({reinterpret_cast<const std::byte*>(builder_.GetBufferPointer()),
                        builder_.GetSize()});
  }

  void handle_cast(const shmbus::Request& request) override {
    const auto* email = request.root<mailer::SendEmail>();
    const std::uint64_t id = email->id() != 0 ? email->id() : request.info().position;
    const Outcome outcome = send(request, *email, id);
    if (outcome.status != mailer::Delivery::Sent) {
      std::fprintf(stderr, "[mailer %d] cast %llu rejected: %s\n", ::getpid(),
                   static_cast<unsigned long long>(id), outcome.detail.c_str());
    }
  }

 private:
  Outcome send(const shmbus::Request& request, const mailer::SendEmail& email, std::uint64_t id) {
    if (text(email.subject()) == "crash" && !request.info().redelivered) ::kill(::getpid(), SIGKILL);
    std::string subject(text(email.subject()));
    std::string body(text(email.body()));
    if (!text(email.template_key()).empty()) {
      if (!state_) state_.emplace(bus_.state());
      if (!*state_) return {mailer::Delivery::Rejected, state_->error().message()};
      auto view = (*state_)->get(text(email.template_key()));
      if (!view) {
        return {mailer::Delivery::Rejected, "no template '" + std::string(text(email.template_key())) +
                                                "': " + shmbus::to_string(view.error())};
      }
      auto mail_template = view->root<mailer::MailTemplate>(mailer::MailTemplateIdentifier());
      if (!mail_template) return {mailer::Delivery::Rejected, "template is not a MailTemplate"};
      subject = render(text((*mail_template)->subject()), email, id);
      body = render(text((*mail_template)->body()), email, id);
    }  // the view unpins here: the template may be replaced while we send
    std::this_thread::sleep_for(delay_);
    if (maildir_) {
      const std::string mail = "To: " + std::string(text(email.to_name())) + " <" +
                               std::string(text(email.to_email())) + ">\nSubject: " + subject +
                               "\nX-Shmbus-Id: " + std::to_string(id) + "\n\n" + body + "\n";
      if (auto error = maildir_->deliver(std::to_string(id), mail); !error.empty()) {
        return {mailer::Delivery::Rejected, error};
      }
    }
    std::string detail = "sent to " + std::string(text(email.to_email()));
    if (request.info().redelivered) {
      detail += " (redelivered, delivery " + std::to_string(request.info().deliveries) + ")";
    }
    return {mailer::Delivery::Sent, detail};
  }

  shmbus::Bus& bus_;
  std::optional<shmbus::examples::Maildir> maildir_;
  std::chrono::milliseconds delay_;
  std::optional<shmbus::Result<shmbus::State>> state_;  // opened at the first template
  flatbuffers::FlatBufferBuilder builder_{256};
};

}  // namespace

int main(int argc, char** argv) {
  const std::string bus_name = setting(argc, argv, "--bus", "SHMBUS_BUS", "");
  const std::string service = setting(argc, argv, "--service", "SHMBUS_SERVICE", "mailer");
  const std::string maildir_root = setting(argc, argv, "--maildir", nullptr, "");
  const std::chrono::milliseconds delay{
      std::atol(setting(argc, argv, "--delay-ms", nullptr, "5").c_str())};
  if (bus_name.empty()) {
    std::fprintf(stderr, "mailer_worker: no bus: give --bus NAME or set SHMBUS_BUS\n");
    return 64;
  }
  std::optional<shmbus::examples::Maildir> maildir;
  if (!maildir_root.empty()) {
    if (auto error = shmbus::examples::Maildir::prepare(maildir_root); !error.empty()) {
      std::fprintf(stderr, "mailer_worker: %s\n", error.c_str());
      return 66;
    }
    maildir.emplace(maildir_root);
  }
  auto bus = shmbus::Bus::attach(bus_name, {.label = "mailer-worker"});
  if (!bus) {
    std::fprintf(stderr, "mailer_worker: %s\n", bus.error().message().c_str());
    return 1;
  }
  const auto schema = shmbus::ServiceSchema::of<mailer::SendEmail, mailer::EmailSent>(
      mailer::SendEmailIdentifier(), mailer::EmailSentIdentifier(), "examples/mailer.fbs");
  auto server = std::getenv("SHMBUS_LAUNCHER") != nullptr
                    ? shmbus::Server::join(*bus, service, schema)
                    : shmbus::Server::start(*bus, service, {.schema = schema});
  if (!server) {
    std::fprintf(stderr, "mailer_worker: %s\n", server.error().message().c_str());
    return 1;
  }
  g_server = &*server;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  Mailer handler(*bus, std::move(maildir), delay);
  (void)server->serve(handler, {.mode = shmbus::WaitMode::spin_then_park});
  g_server = nullptr;
  return 0;
}
