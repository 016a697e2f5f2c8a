#include "ledger.hpp"

#include <sys/stat.h>

#include <shmbus/schemas/mailer_generated.h>

namespace mailer = shmbus::examples::mailer;

namespace shmbus::demo {

bool delivered(const std::string& maildir, std::uint64_t id) {
  struct stat st {};
  return ::stat((maildir + "/new/" + std::to_string(id)).c_str(), &st) == 0;
}

std::set<std::uint64_t> take_dead_letters(Bus& bus, const std::string& service) {
  std::set<std::uint64_t> ids;
  auto receiver = bus.dead_letters(service);
  if (!receiver) return ids;
  MessageBuffer scratch;
  while (auto letter = receiver->try_receive()) {
    auto email = letter->read<mailer::SendEmail>(mailer::SendEmailIdentifier(), scratch);
    if (email) ids.insert((*email)->id());
    letter->done();
  }
  return ids;
}

Ledger reconcile(std::uint64_t sent, const BurstOutcomes& outcomes, const std::string& maildir,
                 const std::set<std::uint64_t>& dead_letters) {
  Ledger ledger;
  ledger.sent = sent;
  for (std::uint64_t id = 1; id <= sent; ++id) {
    if (delivered(maildir, id)) {
      ++ledger.delivered;
    } else if (auto error = outcomes.errors.find(id); error != outcomes.errors.end()) {
      ++ledger.errors;
      ++ledger.errors_by_kind[error->second];
    } else if (dead_letters.count(id) != 0) {
      ++ledger.errors;
      ++ledger.errors_by_kind["dead_lettered"];
    } else {
      ++ledger.lost;
      ledger.lost_ids.push_back(id);
    }
  }
  return ledger;
}

}  // namespace shmbus::demo
