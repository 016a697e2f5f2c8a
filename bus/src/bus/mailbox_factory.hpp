// mailbox_factory.hpp — create and open mailbox segments by their file name,
// for Bus (user mailboxes) and the registry (a service's pool and dead-letter
// mailboxes, whose names hold a '~' that user names cannot).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "shmbus/mailbox.hpp"

namespace shmbus::detail {

class BusCore;

struct MailboxFactory {
  // Fails like Bus::create_mailbox (bus_exists for an existing segment).
  [[nodiscard]] static Result<Mailbox> create(const std::shared_ptr<BusCore>& core,
                                              const std::string& shm_name, std::string name,
                                              const MailboxOptions& options);
  // Fails like Bus::open_mailbox.
  [[nodiscard]] static Result<Mailbox> open(const std::shared_ptr<BusCore>& core,
                                            const std::string& shm_name, std::string name);
  // A registered service's dead-letter mailbox (Bus::dead_letters and
  // Bus::peek_dead_letters). Fails with no_such_service, else like open().
  [[nodiscard]] static Result<Mailbox> open_dead_letters(const std::shared_ptr<BusCore>& core,
                                                         std::string_view service);
};

}  // namespace shmbus::detail
