// ring_access.hpp — the private Ring behind a Mailbox, for tests that plant
// raw cell states or park through the ring directly.
#pragma once

#include "ring/ring.hpp"
#include "shmbus/mailbox.hpp"

namespace shmbus::detail {

// Befriended by Mailbox (mailbox.hpp); only tests use it.
struct MailboxAccess {
  [[nodiscard]] static Ring& ring(Mailbox& mailbox) noexcept { return *mailbox.ring_; }
};

}  // namespace shmbus::detail

namespace shmbus::test {

[[nodiscard]] inline detail::Ring& ring_of(Mailbox& mailbox) noexcept {
  return detail::MailboxAccess::ring(mailbox);
}

}  // namespace shmbus::test
