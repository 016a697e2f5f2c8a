// Random and mutated FlatBuffers through verify_message / read_message and
// Delivery::read: valid SendEmail buffers always pass and read back, random
// bytes always fail with bad_message, mutated buffers either fail or verify
// and then read safely (every field is touched, so ASan sees any stray read).
#include <gtest/gtest.h>
#include <shmbus/schemas/mailer_generated.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "fuzz/fuzz_support.hpp"
#include "shmbus/message.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

namespace mailer = examples::mailer;
using test::Fuzz;

std::string trace(const Fuzz& fuzz, long round) {
  return "round " + std::to_string(round) + " (SHMBUS_FUZZ_SEED=" + std::to_string(fuzz.seed()) +
         ")";
}

struct Email {
  std::optional<std::string> to_email, to_name, subject, body, template_key;
  friend bool operator==(const Email&, const Email&) = default;
};

std::optional<std::string> random_text(Fuzz& fuzz) {
  if (fuzz.chance(5)) return std::nullopt;  // field left out
  std::string text(fuzz.chance(4) ? 0 : fuzz.in(0, fuzz.chance(8) ? 2000 : 40), ' ');
  for (char& ch : text) ch = static_cast<char>(fuzz.in(0, 255));  // NULs included
  return text;
}

Email random_email(Fuzz& fuzz) {
  return {random_text(fuzz), random_text(fuzz), random_text(fuzz), random_text(fuzz),
          random_text(fuzz)};
}

std::vector<std::byte> build(const Email& email) {
  flatbuffers::FlatBufferBuilder builder;
  const auto text = [&](const std::optional<std::string>& s) {
    return s ? builder.CreateString(*s) : flatbuffers::Offset<flatbuffers::String>();
  };
  const auto to_email = text(email.to_email);
  const auto to_name = text(email.to_name);
  const auto subject = text(email.subject);
  const auto body = text(email.body);
  const auto template_key = text(email.template_key);
  mailer::FinishSendEmailBuffer(
      builder, mailer::CreateSendEmail(builder, to_email, to_name, subject, body, template_key));
  const auto* data = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
  return {data, data + builder.GetSize()};
}

// Reads every field of a verified message: what a handler would touch.
Email read_back(const mailer::SendEmail& message) {
  const auto text = [](const flatbuffers::String* s) -> std::optional<std::string> {
    if (s == nullptr) return std::nullopt;
    return std::string(s->data(), s->size());
  };
  return {text(message.to_email()), text(message.to_name()), text(message.subject()),
          text(message.body()), text(message.template_key())};
}

// One random edit of the kinds that break offset-based formats.
void mutate(Fuzz& fuzz, std::vector<std::byte>& bytes) {
  const auto at = [&] { return static_cast<std::size_t>(fuzz.in(0, bytes.size() - 1)); };
  switch (bytes.empty() ? 5 : fuzz.in(0, 7)) {
    case 0:  // flip a bit
      bytes[at()] ^= static_cast<std::byte>(1u << fuzz.in(0, 7));
      break;
    case 1:  // an interesting byte
      bytes[at()] =
          static_cast<std::byte>(fuzz.pick<unsigned>({0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff}));
      break;
    case 2: {  // an interesting 32-bit word (offsets, lengths, vtable sizes) at a 4-aligned spot
      if (bytes.size() < 4) break;
      const std::size_t pos = fuzz.in(0, bytes.size() / 4 - 1) * 4;
      const std::uint32_t value =
          fuzz.chance(3) ? static_cast<std::uint32_t>(bytes.size() - pos) : fuzz.u32_edge();
      std::memcpy(bytes.data() + pos, &value, 4);
      break;
    }
    case 3: {  // an interesting 16-bit word (vtable entries)
      if (bytes.size() < 2) break;
      const std::size_t pos = fuzz.in(0, bytes.size() / 2 - 1) * 2;
      const auto value = static_cast<std::uint16_t>(fuzz.pick<unsigned>({0, 2, 4, 0x7fff, 0xffff}) +
                                                    (fuzz.chance(2) ? 0 : fuzz.in(0, 64)));
      std::memcpy(bytes.data() + pos, &value, 2);
      break;
    }
    case 4:  // truncate
      bytes.resize(fuzz.in(0, bytes.size()));
      break;
    case 5: {  // append garbage
      const auto tail = fuzz.bytes(fuzz.in(1, 64));
      bytes.insert(bytes.end(), tail.begin(), tail.end());
      break;
    }
    case 6:  // drop a byte: every later offset shifts
      bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(at()));
      break;
    default: {  // copy a run over another place
      const std::size_t from = at(), to = at();
      const std::size_t n =
          std::min<std::size_t>(fuzz.in(1, 16), bytes.size() - std::max(from, to));
      std::memmove(bytes.data() + to, bytes.data() + from, n);
      break;
    }
  }
}

TEST(MessageFuzz, ValidSendEmailBuffersVerifyAndReadBack) {
  Fuzz fuzz;
  MessageBuffer scratch;
  const long rounds = test::scaled(5000);
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    const Email email = random_email(fuzz);
    const auto bytes = build(email);
    ASSERT_TRUE(verify_message<mailer::SendEmail>(bytes, mailer::SendEmailIdentifier()));
    ASSERT_TRUE(verify_message<mailer::SendEmail>(bytes, nullptr));
    EXPECT_FALSE(verify_message<mailer::SendEmail>(bytes, "MALR"));
    auto message = read_message<mailer::SendEmail>(bytes, "MAIL", /*trusted=*/false, scratch);
    ASSERT_TRUE(message);
    EXPECT_EQ(read_back(**message), email);
  }
}

TEST(MessageFuzz, RandomBytesAreABadMessage) {
  Fuzz fuzz;
  MessageBuffer scratch;
  const long rounds = test::scaled(50000);
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    auto bytes = fuzz.bytes(fuzz.chance(4) ? fuzz.in(0, 12) : fuzz.in(0, 600));
    // Random bytes that happen to carry the identifier are not garbage by
    // construction; make sure they do not (a 2^-32 event, but reproducible).
    if (bytes.size() >= 8 && std::memcmp(bytes.data() + 4, "MAIL", 4) == 0)
      bytes[4] ^= std::byte{1};
    EXPECT_FALSE(verify_message<mailer::SendEmail>(bytes, "MAIL"));
    auto message = read_message<mailer::SendEmail>(bytes, "MAIL", /*trusted=*/false, scratch);
    ASSERT_FALSE(message);
    EXPECT_EQ(message.error(), Errc::bad_message);
    // Without an identifier garbage may pass by chance; if it does, it reads safely.
    if (verify_message<mailer::SendEmail>(bytes, nullptr)) {
      auto any = read_message<mailer::SendEmail>(bytes, nullptr, false, scratch);
      ASSERT_TRUE(any);
      (void)read_back(**any);
    }
    // The trusted path skips the verifier but still refuses what cannot hold a root.
    if (bytes.size() < sizeof(flatbuffers::uoffset_t)) {
      EXPECT_EQ(read_message<mailer::SendEmail>(bytes, "MAIL", true, scratch).error(),
                Errc::bad_message);
    }
  }
}

TEST(MessageFuzz, MutatedSendEmailBuffersFailOrReadSafely) {
  Fuzz fuzz;
  MessageBuffer scratch;
  const long rounds = test::scaled(50000);
  long passed = 0;
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    auto bytes = build(random_email(fuzz));
    for (std::uint64_t edits = fuzz.in(1, 6); edits > 0; --edits) mutate(fuzz, bytes);
    const VerifyLimits limits{static_cast<std::uint32_t>(fuzz.pick<unsigned>({1, 2, 64})),
                              static_cast<std::uint32_t>(fuzz.pick<unsigned>({1, 6, 100000}))};
    const bool verified = verify_message<mailer::SendEmail>(bytes, "MAIL", limits);
    auto message = read_message<mailer::SendEmail>(bytes, "MAIL", false, scratch, limits);
    ASSERT_EQ(verified, message.has_value());
    if (!message) {
      EXPECT_EQ(message.error(), Errc::bad_message);
      continue;
    }
    ++passed;
    (void)read_back(**message);
  }
  std::printf("[   INFO   ] %ld of %ld mutated buffers still verified\n", passed, rounds);
}

TEST(MessageFuzz, DeliveryReadRefusesAndCountsEveryBadPayload) {
  Fuzz fuzz;
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 16, .max_record = 16384});  // > any built email
  auto receiver = mailbox.receiver().value();
  MessageBuffer scratch;
  std::uint64_t refused = 0;
  const long rounds = test::scaled(3000);
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    const Email email = random_email(fuzz);
    auto bytes = build(email);
    const int kind = static_cast<int>(fuzz.in(0, 2));  // 0 valid, 1 mutated, 2 random
    if (kind == 1) {
      for (std::uint64_t edits = fuzz.in(1, 4); edits > 0; --edits) mutate(fuzz, bytes);
    } else if (kind == 2) {
      bytes = fuzz.bytes(fuzz.in(0, 300));
    }
    if (bytes.size() > 16384) bytes.resize(16384);  // only edited buffers can grow past it
    ASSERT_TRUE(mailbox.try_send(bytes));
    auto delivery = receiver.try_receive();
    ASSERT_TRUE(delivery);
    auto message = delivery->read<mailer::SendEmail>("MAIL", scratch);
    if (kind == 0) {
      ASSERT_TRUE(message);
      EXPECT_EQ(read_back(**message), email);
    } else if (!message) {
      EXPECT_EQ(message.error(), Errc::bad_message);
      ++refused;
    } else {
      (void)read_back(**message);
    }
  }
  EXPECT_EQ(mailbox.counters().bad_messages, refused);
  EXPECT_EQ(mailbox.counters().consumed, static_cast<std::uint64_t>(rounds));
}

// verify_message() on a span that does not start on a 4-byte boundary (a
// caller's own buffer, not a cell: cells and MessageBuffer are 8-aligned).
// FlatBuffers' Verifier checks alignment relative to the buffer start, then
// reads scalars through typed pointers: UBSan would report a misaligned load
// if the verifier read one. Valid buffers at offset 1 must still verify.
TEST(MessageFuzz, VerifyMessageOnAnUnalignedSpanNeverCrashes) {
  Fuzz fuzz;
  const long rounds = test::scaled(500);
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    auto bytes = build(random_email(fuzz));
    if (fuzz.chance(2)) mutate(fuzz, bytes);
    std::vector<std::uint64_t> storage(bytes.size() / 8 + 2);
    auto* shifted = reinterpret_cast<std::byte*>(storage.data()) + fuzz.in(1, 3);
    std::memcpy(shifted, bytes.data(), bytes.size());
    const bool aligned = verify_message<mailer::SendEmail>(bytes, "MAIL");
    const bool unaligned = verify_message<mailer::SendEmail>(
        std::span<const std::byte>(shifted, bytes.size()), "MAIL");
    EXPECT_EQ(aligned, unaligned);
  }
}

}  // namespace
}  // namespace shmbus
