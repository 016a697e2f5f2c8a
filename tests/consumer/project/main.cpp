// An embedding program built only against the installed shmbus package:
// creates a bus, sends a SendEmail FlatBuffer through a mailbox, receives it,
// verifies and prints it, removes the bus. Exit 0 means every step worked.
#include <shmbus/schemas/mailer_generated.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <shmbus/shmbus.hpp>
#include <span>
#include <string>
#include <system_error>

namespace {

namespace mailer = shmbus::examples::mailer;
using namespace std::chrono_literals;

int fail(const char* step, const std::string& why) {
  std::fprintf(stderr, "shmbus_consumer: %s: %s\n", step, why.c_str());
  return 1;
}

// Removes the bus on every way out of run(), also after a failed step.
struct RemoveBus {
  std::string name;
  ~RemoveBus() {
    if (auto removed = shmbus::Bus::remove(name); !removed) {
      std::fprintf(stderr, "shmbus_consumer: remove: %s\n", removed.error().message().c_str());
    }
  }
};

int run() {
  const std::string name =
      "consumer_" + std::to_string(::getpid()) + "_" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
  auto bus_result = shmbus::Bus::create(name, {.label = "consumer"});
  if (!bus_result) return fail("Bus::create", bus_result.error().message());
  RemoveBus remove_at_exit{name};

  auto mailbox_result = bus_result->create_mailbox("mailer", {.capacity = 8, .max_record = 1024});
  if (!mailbox_result) return fail("create_mailbox", mailbox_result.error().message());
  auto receiver_result = mailbox_result->receiver();
  if (!receiver_result) return fail("receiver", receiver_result.error().message());

  flatbuffers::FlatBufferBuilder builder;
  const auto email = mailer::CreateSendEmailDirect(builder, "ada@example.org", "Ada Lovelace",
                                                   "Notes", "On the Analytical Engine", "");
  mailer::FinishSendEmailBuffer(builder, email);
  const std::span<const std::byte> wire(
      reinterpret_cast<const std::byte*>(builder.GetBufferPointer()), builder.GetSize());
  if (auto sent =
          mailbox_result->send(wire, shmbus::deadline_in(1s), {.type = 1, .correlation = 42});
      !sent) {
    const std::error_code code = sent.error();  // Errc is a std::error_code enum
    return fail("send", code.message());
  }

  auto delivery = receiver_result->receive(shmbus::deadline_in(2s));
  if (!delivery) return fail("receive", shmbus::to_string(delivery.error()));
  if (delivery->payload().size() != wire.size() ||
      std::memcmp(delivery->payload().data(), wire.data(), wire.size()) != 0) {
    return fail("receive", "payload differs from what was sent");
  }
  if (delivery->info().type != 1 || delivery->info().correlation != 42) {
    return fail("receive", "record header differs from what was sent");
  }

  // Both verified-read entry points: the free function and the Delivery's.
  shmbus::MessageBuffer scratch;
  auto checked = shmbus::read_message<mailer::SendEmail>(
      delivery->payload(), mailer::SendEmailIdentifier(), /*trusted=*/false, scratch);
  if (!checked) return fail("read_message", shmbus::to_string(checked.error()));
  auto read = delivery->read<mailer::SendEmail>(mailer::SendEmailIdentifier(), scratch);
  if (!read) return fail("Delivery::read", shmbus::to_string(read.error()));
  const mailer::SendEmail& message = **read;
  if (message.to_email() == nullptr || message.to_email()->str() != "ada@example.org" ||
      message.subject() == nullptr || message.subject()->str() != "Notes") {
    return fail("Delivery::read", "fields differ from what was sent");
  }
  std::printf("received SendEmail to=%s <%s> subject=\"%s\" body=\"%s\" (%zu bytes, seq %u)\n",
              message.to_name()->c_str(), message.to_email()->c_str(), message.subject()->c_str(),
              message.body()->c_str(), delivery->payload().size(), delivery->info().sequence);
  delivery->done();

  // A payload that is not a SendEmail is refused and counted.
  const std::byte junk[16] = {};
  if (auto sent = mailbox_result->try_send(junk); !sent) {
    return fail("try_send", shmbus::to_string(sent.error()));
  }
  auto bad = receiver_result->receive(shmbus::deadline_in(2s));
  if (!bad) return fail("receive", shmbus::to_string(bad.error()));
  if (auto refused = bad->read<mailer::SendEmail>(mailer::SendEmailIdentifier(), scratch);
      refused || refused.error() != shmbus::Errc::bad_message) {
    return fail("Delivery::read", "a zeroed payload was not refused as bad_message");
  }
  bad->done();
  const shmbus::MailboxCounters counters = mailbox_result->counters();
  if (counters.consumed != 2 || counters.bad_messages != 1) {
    return fail("counters", "consumed " + std::to_string(counters.consumed) + ", bad_messages " +
                                std::to_string(counters.bad_messages));
  }
  std::printf("bus %s: consumed %llu, bad_messages %llu\n", name.c_str(),
              static_cast<unsigned long long>(counters.consumed),
              static_cast<unsigned long long>(counters.bad_messages));
  return 0;
}

}  // namespace

int main() {
  const int status = run();
  if (status == 0) std::printf("shmbus_consumer: ok\n");
  return status;
}
