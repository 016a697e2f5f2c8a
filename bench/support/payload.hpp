// payload.hpp — the 64-byte SendEmail record every ring benchmark sends.
//
// A real FlatBuffer of the mailer schema (identifier "MAIL"), so a receiver's
// read_message<SendEmail> does the same copy and verification a service
// would. Its body length is chosen so the finished buffer is exactly
// kPayloadBytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include <shmbus/schemas/mailer_generated.h>

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

}  // namespace shmbus::bench
