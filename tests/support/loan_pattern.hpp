// loan_pattern.hpp — a loaned payload a reader can check whole: id and size at
// the front, a body derived from the id, id ^ kLoanTrailer at the back. A
// block that is not the one sent, or was overwritten, fails check_loan_payload.
// (The front and back match child_roles_loans.cpp's LoanReader.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace shmbus::test {

inline constexpr std::uint64_t kLoanTrailer = 0x6c6f616e5f656e64ULL;  // "loan_end"
inline constexpr std::size_t kLoanMinPayload = 24;

[[nodiscard]] inline std::uint8_t loan_body_byte(std::uint64_t id, std::size_t at) noexcept {
  return static_cast<std::uint8_t>(id * 131 + at * 7 + (at >> 8));
}

// Fills `out` (at least kLoanMinPayload bytes) as the payload of `id`.
inline void fill_loan_payload(std::span<std::byte> out, std::uint64_t id) noexcept {
  const std::uint64_t size = out.size();
  const std::uint64_t trailer = id ^ kLoanTrailer;
  std::memcpy(out.data(), &id, 8);
  std::memcpy(out.data() + 8, &size, 8);
  for (std::size_t at = 16; at + 8 < out.size(); ++at) out[at] = std::byte{loan_body_byte(id, at)};
  std::memcpy(out.data() + out.size() - 8, &trailer, 8);
}

// The payload's id if it is a whole payload written by fill_loan_payload.
[[nodiscard]] inline std::optional<std::uint64_t> check_loan_payload(
    std::span<const std::byte> in) noexcept {
  if (in.size() < kLoanMinPayload) return std::nullopt;
  std::uint64_t id = 0, size = 0, trailer = 0;
  std::memcpy(&id, in.data(), 8);
  std::memcpy(&size, in.data() + 8, 8);
  std::memcpy(&trailer, in.data() + in.size() - 8, 8);
  if (size != in.size() || trailer != (id ^ kLoanTrailer)) return std::nullopt;
  for (std::size_t at = 16; at + 8 < in.size(); ++at) {
    if (in[at] != std::byte{loan_body_byte(id, at)}) return std::nullopt;
  }
  return id;
}

}  // namespace shmbus::test
