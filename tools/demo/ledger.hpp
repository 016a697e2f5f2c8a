// ledger.hpp — the demo's account of every message id, counted by id, never
// by counter arithmetic: an id is delivered when its Maildir file exists,
// else an error when the sender got a typed outcome for it (or it lies in
// the dead-letter list), else lost. Lost must be 0.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "mail_burst.hpp"
#include "shmbus/bus.hpp"

namespace shmbus::demo {

struct Ledger {
  std::uint64_t sent = 0, delivered = 0, errors = 0, lost = 0;
  std::map<std::string, std::uint64_t> errors_by_kind;
  std::vector<std::uint64_t> lost_ids;
};

// Whether new/<id> exists in the Maildir.
[[nodiscard]] bool delivered(const std::string& maildir, std::uint64_t id);

// Takes every dead letter of `service` (the demo ends here: they are
// recorded, not requeued) and returns their message ids.
[[nodiscard]] std::set<std::uint64_t> take_dead_letters(Bus& bus, const std::string& service);

[[nodiscard]] Ledger reconcile(std::uint64_t sent, const BurstOutcomes& outcomes,
                               const std::string& maildir,
                               const std::set<std::uint64_t>& dead_letters);

}  // namespace shmbus::demo
