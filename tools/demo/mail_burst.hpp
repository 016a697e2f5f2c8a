// mail_burst.hpp — the demo's client: a burst of SendEmail calls and casts,
// every message with its own id, and the outcome of each id as the sender
// saw it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "shmbus/client.hpp"

namespace shmbus::demo {

struct BurstPlan {
  std::uint64_t messages = 3000;  // ids 1 … messages: odd ids are casts, even ones calls
  std::uint64_t kill_at = 1500;   // id at which `at_kill_point` runs (0: never)
  std::size_t calls_in_flight = 32;
  std::chrono::milliseconds deadline{5000};  // of each call, and of a cast's wait for room
  // One call in this many names a template that does not exist: a typed
  // refusal (Rejected) the ledger must account for, not a loss.
  std::uint64_t missing_template_every = 1000;
};

struct BurstOutcomes {
  std::uint64_t calls = 0, casts = 0;
  std::set<std::uint64_t> casts_accepted;      // the bus took them: they must reach the Maildir
  std::set<std::uint64_t> calls_sent;          // replied Sent
  std::map<std::uint64_t, std::string> errors; // id → a typed outcome (Errc name, or "rejected")
};

// Sends the burst to `mailer`, calling `progress(sent)` now and then and
// `at_kill_point()` once, mid-way. Never fails: every id ends with an outcome.
[[nodiscard]] BurstOutcomes send_burst(Service& mailer, const BurstPlan& plan,
                                       const std::function<void(std::uint64_t)>& progress,
                                       const std::function<void()>& at_kill_point);

}  // namespace shmbus::demo
