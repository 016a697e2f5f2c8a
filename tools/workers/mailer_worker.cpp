// shmbus_mailer_worker --bus NAME --mailbox NAME --replies NAME
//
// The example mailer server: takes SendEmail records from a (pool) mailbox
// one at a time, verifies each, "sends" it, and answers with an EmailSent
// record in the caller's reply mailbox, correlated by the request's
// correlation word. Record type 2 asks it to stop. A subject of "crash"
// makes it die with SIGKILL while it holds the record, on first delivery
// only: the demo shows the record going to a sibling, marked redelivered.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <shmbus/schemas/mailer_generated.h>
#include <shmbus/schemas/mailer_reply_generated.h>

#include "shmbus/shmbus.hpp"

namespace mailer = shmbus::examples::mailer;
using namespace std::chrono_literals;

namespace {

constexpr std::uint16_t kStopRecord = 2;

std::string arg(int argc, char** argv, const char* name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return {};
}

int fail(const std::string& what) {
  std::fprintf(stderr, "mailer_worker[%d]: %s\n", ::getpid(), what.c_str());
  return 1;
}

shmbus::Expected<void> reply(shmbus::Mailbox& replies, std::uint64_t correlation,
                             mailer::Delivery status, const std::string& detail) {
  flatbuffers::FlatBufferBuilder builder(256);
  auto sent = mailer::CreateEmailSentDirect(builder, correlation, status, detail.c_str(), ::getpid());
  mailer::FinishEmailSentBuffer(builder, sent);
  const std::span<const std::byte> bytes{reinterpret_cast<const std::byte*>(builder.GetBufferPointer()),
                                         builder.GetSize()};
  return replies.send(bytes, shmbus::deadline_in(1s), {.type = 1, .correlation = correlation});
}

}  // namespace

int main(int argc, char** argv) {
  const std::string bus_name = arg(argc, argv, "--bus");
  auto bus = shmbus::Bus::attach(bus_name, {.label = "mailer-worker"});
  if (!bus) return fail(bus.error().message());
  auto requests = bus->open_mailbox(arg(argc, argv, "--mailbox"));
  auto replies = bus->open_mailbox(arg(argc, argv, "--replies"));
  if (!requests || !replies) return fail("cannot open the mailboxes");
  auto receiver = requests->receiver();
  if (!receiver) return fail(receiver.error().message());
  std::printf("[worker %d] serving '%s'\n", ::getpid(), requests->name().c_str());
  std::fflush(stdout);

  shmbus::MessageBuffer scratch;
  for (;;) {
    auto delivery = receiver->receive(shmbus::deadline_in(1s), shmbus::WaitMode::spin_then_park);
    if (!delivery) continue;  // `empty`: nothing within a second; keep serving
    const shmbus::RecordInfo info = delivery->info();
    if (info.type == kStopRecord) return 0;
    auto email = delivery->read<mailer::SendEmail>(mailer::SendEmailIdentifier(), scratch);
    if (!email) {
      (void)reply(*replies, info.correlation, mailer::Delivery::Rejected, "bad_message");
      continue;
    }
    const std::string subject = (*email)->subject() ? (*email)->subject()->str() : "";
    if (subject == "crash" && !info.redelivered) ::kill(::getpid(), SIGKILL);  // dies holding it
    const std::string to = (*email)->to_email() ? (*email)->to_email()->str() : "?";
    const std::string detail = "sent to " + to + (info.redelivered ? " (redelivered, delivery " +
                                                                         std::to_string(info.deliveries) + ")"
                                                                   : "");
    delivery->done();  // consumed: the cell is free before the reply goes out
    if (auto sent = reply(*replies, info.correlation, mailer::Delivery::Sent, detail); !sent) {
      std::fprintf(stderr, "mailer_worker[%d]: reply refused: %s\n", ::getpid(),
                   shmbus::to_string(sent.error()));
    }
  }
}
