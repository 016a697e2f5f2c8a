// Verified reads of payloads another process wrote (message.hpp).
#include <gtest/gtest.h>

#include <shmbus/schemas/mailer_generated.h>
#include <shmbus/schemas/mailer_reply_generated.h>

#include <vector>

#include "shmbus/message.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

namespace mailer = examples::mailer;

std::vector<std::byte> send_email_bytes() {
  flatbuffers::FlatBufferBuilder builder;
  auto email = mailer::CreateSendEmailDirect(builder, "ada@example.org", "Ada", "Hi", "Body", "");
  mailer::FinishSendEmailBuffer(builder, email);
  const auto* data = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
  return {data, data + builder.GetSize()};
}

TEST(Message, ValidBufferPassesTheVerifierAndReads) {
  MessageBuffer scratch;
  const auto bytes = send_email_bytes();
  auto email = read_message<mailer::SendEmail>(bytes, mailer::SendEmailIdentifier(), false, scratch);
  ASSERT_TRUE(email);
  EXPECT_EQ((*email)->to_email()->str(), "ada@example.org");
}

TEST(Message, WrongFileIdentifierIsABadMessage) {
  MessageBuffer scratch;
  const auto bytes = send_email_bytes();
  auto reply = read_message<mailer::EmailSent>(bytes, mailer::EmailSentIdentifier(), false, scratch);
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error(), Errc::bad_message);
}

TEST(Message, CorruptOffsetsAreABadMessageNotACrash) {
  MessageBuffer scratch;
  auto bytes = send_email_bytes();
  bytes[0] = std::byte{0xff};  // root offset far past the end
  bytes[1] = std::byte{0xff};
  EXPECT_EQ(read_message<mailer::SendEmail>(bytes, "MAIL", false, scratch).error(), Errc::bad_message);
  EXPECT_EQ(read_message<mailer::SendEmail>({}, "MAIL", false, scratch).error(), Errc::bad_message);
}

TEST(Message, DepthLimitIsEnforced) {
  MessageBuffer scratch;
  const auto bytes = send_email_bytes();
  EXPECT_FALSE(read_message<mailer::SendEmail>(bytes, "MAIL", false, scratch, {.max_depth = 0, .max_tables = 10}));
  EXPECT_FALSE(read_message<mailer::SendEmail>(bytes, "MAIL", false, scratch, {.max_depth = 64, .max_tables = 0}));
}

TEST(Message, DeliveryReadCountsFailuresInBadMessages) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 512});
  auto receiver = mailbox.receiver().value();
  const std::vector<std::byte> garbage(40, std::byte{0x5a});
  ASSERT_TRUE(mailbox.try_send(garbage));
  ASSERT_TRUE(mailbox.try_send(send_email_bytes()));
  MessageBuffer scratch;
  {
    auto first = receiver.try_receive();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->read<mailer::SendEmail>("MAIL", scratch).error(), Errc::bad_message);
  }
  auto second = receiver.try_receive();
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->read<mailer::SendEmail>("MAIL", scratch));
  EXPECT_EQ(mailbox.counters().bad_messages, 1u);
}

TEST(Message, TrustedBusSkipsOnlyTheVerifier) {
  CreateOptions options;
  options.trusted = true;
  auto bus = test::ScopedBus::create(options);
  EXPECT_TRUE(bus->trusted());
  auto mailbox = bus.mailbox("m", {.capacity = 4, .max_record = 512});
  auto receiver = mailbox.receiver().value();
  ASSERT_TRUE(mailbox.try_send(send_email_bytes()));
  ASSERT_TRUE(mailbox.try_send({}));
  MessageBuffer scratch;
  {
    auto valid = receiver.try_receive();
    ASSERT_TRUE(valid);
    EXPECT_TRUE(valid->trusted());
    EXPECT_TRUE(valid->read<mailer::SendEmail>("MAIL", scratch));
  }
  auto empty = receiver.try_receive();
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->read<mailer::SendEmail>("MAIL", scratch).error(), Errc::bad_message);  // size check stays
}

}  // namespace
}  // namespace shmbus
