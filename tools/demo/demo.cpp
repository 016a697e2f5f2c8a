// shmbus_demo — the main job of `./tools/dev demo`.
//
// One bus, a pool of two mailer worker processes behind one shared (MPMC)
// mailbox, and this process as the caller with its own reply mailbox. It
// sends emails, prints who handled each, then sends one that makes the worker
// holding it die with SIGKILL: its sibling takes the record over, marked
// redelivered — nothing is lost. Finally it stops the workers, prints the
// mailbox counters and removes the bus.
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <shmbus/schemas/mailer_generated.h>
#include <shmbus/schemas/mailer_reply_generated.h>

#include "shmbus/shmbus.hpp"
#include "spawn.hpp"

namespace mailer = shmbus::examples::mailer;
using namespace std::chrono_literals;

namespace {

constexpr std::uint16_t kEmailRecord = 1;
constexpr std::uint16_t kStopRecord = 2;
constexpr int kWorkers = 2;

struct Email {
  const char* to;
  const char* name;
  const char* subject;
};

std::vector<std::byte> encode(const Email& email) {
  flatbuffers::FlatBufferBuilder builder(256);
  auto message = mailer::CreateSendEmailDirect(builder, email.to, email.name, email.subject,
                                               "Hello from shmbus.", "");
  mailer::FinishSendEmailBuffer(builder, message);
  const auto* data = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
  return {data, data + builder.GetSize()};
}

// Waits for the reply to each correlation id in `pending` and prints it.
bool collect_replies(shmbus::Receiver& replies, std::map<std::uint64_t, Email>& pending) {
  shmbus::MessageBuffer scratch;
  while (!pending.empty()) {
    auto delivery = replies.receive(shmbus::deadline_in(5s), shmbus::WaitMode::spin_then_park);
    if (!delivery) {
      std::printf("  !! no reply within 5 s (%zu outstanding)\n", pending.size());
      return false;
    }
    auto sent = delivery->read<mailer::EmailSent>(mailer::EmailSentIdentifier(), scratch);
    if (!sent) {
      std::printf("  !! a reply failed verification: %s\n", shmbus::to_string(sent.error()));
      continue;
    }
    const std::uint64_t id = (*sent)->message_id();
    std::printf("  email %llu '%s' -> worker pid %d: %s\n", static_cast<unsigned long long>(id),
                pending[id].subject, (*sent)->handled_by_pid(),
                (*sent)->detail() ? (*sent)->detail()->c_str() : "");
    pending.erase(id);
  }
  return true;
}

int run(shmbus::Bus& bus) {
  auto requests = bus.create_mailbox("mailer", {.kind = shmbus::layout::RingKind::mpmc,
                                                .capacity = 256, .max_record = 1024});
  auto replies_box = bus.create_mailbox("demo-replies", {.capacity = 256, .max_record = 1024});
  if (!requests || !replies_box) {
    std::fprintf(stderr, "cannot create mailboxes\n");
    return 1;
  }
  auto replies = replies_box->receiver().value();

  const std::string worker = shmbus::demo::own_directory() + "/shmbus_mailer_worker";
  std::vector<pid_t> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.push_back(shmbus::demo::spawn(
        worker, {"--bus", bus.name(), "--mailbox", "mailer", "--replies", "demo-replies"}));
  }
  std::printf("bus '%s': %d mailer workers (pids %d, %d) share the mailbox 'mailer'\n\n",
              bus.name().c_str(), kWorkers, workers[0], workers[1]);

  const std::vector<Email> emails = {
      {"ada@example.org", "Ada", "Welcome"},        {"grace@example.org", "Grace", "Invoice"},
      {"linus@example.org", "Linus", "Reminder"},   {"barbara@example.org", "Barbara", "Receipt"},
      {"edsger@example.org", "Edsger", "Newsletter"}, {"ken@example.org", "Ken", "crash"},
  };
  std::map<std::uint64_t, Email> pending;
  std::printf("sending %zu emails (the last one's subject makes its worker die holding it):\n",
              emails.size());
  for (std::size_t i = 0; i < emails.size(); ++i) {
    const std::uint64_t id = i + 1;
    const auto bytes = encode(emails[i]);
    if (auto sent = requests->send(bytes, shmbus::deadline_in(1s),
                                   {.type = kEmailRecord, .correlation = id});
        !sent) {
      std::printf("  email %llu refused: %s\n", static_cast<unsigned long long>(id),
                  shmbus::to_string(sent.error()));
      continue;
    }
    pending[id] = emails[i];
  }
  const bool all_replied = collect_replies(replies, pending);

  std::printf("\nstopping the workers:\n");
  std::vector<pid_t> alive;
  for (pid_t pid : workers) {
    if (auto ended = shmbus::demo::reap_if_ended(pid)) {
      std::printf("  worker %d already %s (it died holding the 'crash' email)\n", pid, ended->c_str());
    } else {
      alive.push_back(pid);
    }
  }
  for (std::size_t i = 0; i < alive.size(); ++i) {
    (void)requests->send({}, shmbus::deadline_in(1s), {.type = kStopRecord});
  }
  for (pid_t pid : alive) std::printf("  worker %d %s\n", pid, shmbus::demo::reap(pid).c_str());

  const shmbus::MailboxCounters c = requests->counters();
  std::printf("\nmailbox 'mailer': claimed %llu, consumed %llu, redelivered %llu, "
              "sender_aborted %llu, bad_messages %llu, mailbox_full refusals %llu\n",
              static_cast<unsigned long long>(c.claimed), static_cast<unsigned long long>(c.consumed),
              static_cast<unsigned long long>(c.redelivered),
              static_cast<unsigned long long>(c.sender_aborted),
              static_cast<unsigned long long>(c.bad_messages),
              static_cast<unsigned long long>(c.full_refusals));
  std::printf("%s\n", all_replied ? "every email was answered: nothing was lost."
                                  : "SOME EMAILS WERE NOT ANSWERED");
  return all_replied ? 0 : 1;
}

}  // namespace

int main() {
  const std::string name = "demo-" + std::to_string(::getpid());
  auto bus = shmbus::Bus::create(name, {.label = "demo"});
  if (!bus) {
    std::fprintf(stderr, "shmbus_demo: %s\n", bus.error().message().c_str());
    return 1;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const int status = run(*bus);
  (void)shmbus::Bus::remove(name);
  return status;
}
