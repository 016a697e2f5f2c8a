// service_row.hpp — one service's row of Bus::services(), and its caller-side
// outcome counts, for tests that check a ledger.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "shmbus/bus.hpp"

namespace shmbus::test {

// The row of service `name` (an empty row if it is not listed).
[[nodiscard]] inline ServiceInfo service_row(const Bus& bus, std::string_view name) {
  for (auto& info : bus.services()) {
    if (info.name == name) return info;
  }
  return {};
}

[[nodiscard]] inline std::uint64_t outcome_count(const ServiceInfo& info, Errc e) {
  return info.outcomes[static_cast<std::size_t>(e)];
}

// Every outcome counted at callers, for messages that print what went wrong.
[[nodiscard]] inline std::string outcomes_text(const ServiceInfo& info) {
  std::string text;
  for (std::size_t i = 0; i < info.outcomes.size(); ++i) {
    if (info.outcomes[i] != 0) {
      text += std::string(to_string(static_cast<Errc>(i))) + "=" + std::to_string(info.outcomes[i]) + " ";
    }
  }
  return text.empty() ? "none" : text;
}

}  // namespace shmbus::test
