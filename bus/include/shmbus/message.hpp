// -----------------------------------------------------------------------------
// message.hpp — reading a FlatBuffer that another process wrote
// -----------------------------------------------------------------------------
//
// On the wire a record is a fixed cell header (layout/ring.hpp) plus the
// user's own FlatBuffer: no second FlatBuffer is built per message. A payload
// from another process is copied into private memory first (so the sender
// cannot change it after the check), then passes the FlatBuffers Verifier
// with depth and table limits before anything reads it. A bus created
// `trusted` skips only the verifier; bounds are always checked.
//
//   shmbus::MessageBuffer scratch;                       // reused: no allocation per message
//   auto email = delivery->read<mailer::SendEmail>("MAIL", scratch);
//   if (!email) return email.error();                    // bad_message, counted
//   use((*email)->subject()->str());
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shmbus/error.hpp"
#include "shmbus/mailbox.hpp"

namespace shmbus {

struct VerifyLimits {
  std::uint32_t max_depth = 64;
  std::uint32_t max_tables = 100000;
};

// Private, 8-byte-aligned storage for received payloads. Grows to the largest
// payload seen, then never allocates again.
class MessageBuffer {
 public:
  // Copies `bytes` in; a copy larger than a FlatBuffer can be comes back empty.
  [[nodiscard]] std::span<const std::byte> assign(std::span<const std::byte> bytes) {
    const std::size_t size = bytes.size() < FLATBUFFERS_MAX_BUFFER_SIZE ? bytes.size() : 0;
    words_.resize((size + 7) / 8);
    std::copy_n(bytes.data(), size, reinterpret_cast<std::byte*>(words_.data()));
    return {reinterpret_cast<const std::byte*>(words_.data()), size};
  }

 private:
  std::vector<std::uint64_t> words_;
};

// verify_message()
//
// Whether `bytes` is a well-formed FlatBuffer with root type Root and the
// given file identifier (nullptr: any), within `limits`. Never reads outside
// `bytes`, whatever they hold.
template <class Root>
[[nodiscard]] bool verify_message(std::span<const std::byte> bytes, const char* file_identifier,
                                  VerifyLimits limits = {}) noexcept {
  if (bytes.size() < sizeof(flatbuffers::uoffset_t) || bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return false;
  }
  flatbuffers::Verifier::Options options;
  options.max_depth = limits.max_depth;
  options.max_tables = limits.max_tables;
  flatbuffers::Verifier verifier(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(),
                                 options);
  return verifier.VerifyBuffer<Root>(file_identifier);
}

// read_message()
//
// Copies `payload` into `scratch`, verifies it (unless `trusted`) and returns
// its root. Fails with bad_message.
template <class Root>
[[nodiscard]] Expected<const Root*> read_message(std::span<const std::byte> payload,
                                                 const char* file_identifier, bool trusted,
                                                 MessageBuffer& scratch,
                                                 VerifyLimits limits = {}) noexcept {
  const std::span<const std::byte> copy = scratch.assign(payload);
  if (trusted) {
    if (copy.size() < sizeof(flatbuffers::uoffset_t)) return tl::unexpected(Errc::bad_message);
  } else if (!verify_message<Root>(copy, file_identifier, limits)) {
    return tl::unexpected(Errc::bad_message);
  }
  return flatbuffers::GetRoot<Root>(copy.data());
}

template <class Root>
Expected<const Root*> Delivery::read(const char* file_identifier,
                                     MessageBuffer& scratch) const noexcept {
  auto root = read_message<Root>(payload_, file_identifier, trusted(), scratch);
  if (!root) count_bad_message();
  return root;
}

}  // namespace shmbus
