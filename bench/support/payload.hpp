// payload.hpp — the 64-byte SendEmail record every ring benchmark sends, and
// the 64-byte EmailSent reply of the call benchmarks.
//
// Real FlatBuffers of the mailer schema (identifiers "MAIL" and "MALR"), so a
// receiver's read_message<SendEmail> (or a caller's Reply::read<EmailSent>)
// does the same copy and verification a service would. A string's length is
// chosen so each finished buffer is exactly kPayloadBytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include <shmbus/schemas/mailer_generated.h>
#include <shmbus/schemas/mailer_reply_generated.h>

namespace shmbus::bench {

inline constexpr std::size_t kPayloadBytes = 64;
using Payload = std::array<std::byte, kPayloadBytes>;

// The record, or nullopt when no body length gives exactly kPayloadBytes
// (a schema change would do that; the benchmark then reports the error).
[[nodiscard]] inline std::optional<Payload> make_send_email() {
  namespace mailer = shmbus::examples::mailer;
  for (std::size_t body = 0; body <= kPayloadBytes; ++body) {
    flatbuffers::FlatBufferBuilder builder(128);
    const std::string text(body, 'b');
    auto email = mailer::CreateSendEmailDirect(builder, "a@b.c", nullptr, "hi", text.c_str());
    mailer::FinishSendEmailBuffer(builder, email);
    if (builder.GetSize() == kPayloadBytes) {
      Payload out;
      std::memcpy(out.data(), builder.GetBufferPointer(), kPayloadBytes);
      return out;
    }
  }
  return std::nullopt;
}

// The reply, or nullopt when no detail length gives exactly kPayloadBytes.
[[nodiscard]] inline std::optional<Payload> make_email_sent() {
  namespace mailer = shmbus::examples::mailer;
  for (std::size_t detail = 0; detail <= kPayloadBytes; ++detail) {
    flatbuffers::FlatBufferBuilder builder(128);
    const std::string text(detail, 'd');
    auto sent = mailer::CreateEmailSentDirect(builder, 42, mailer::Delivery::Sent, text.c_str(), 7);
    mailer::FinishEmailSentBuffer(builder, sent);
    if (builder.GetSize() == kPayloadBytes) {
      Payload out;
      std::memcpy(out.data(), builder.GetBufferPointer(), kPayloadBytes);
      return out;
    }
  }
  return std::nullopt;
}

}  // namespace shmbus::bench
