// ring_access.hpp — the private Ring behind a Mailbox, for tests that plant
// raw cell states or park through the ring directly.
#pragma once

#include "ring/ring.hpp"
#include "shmbus/mailbox.hpp"

namespace shmbus::detail {

// Befriended by Mailbox (mailbox.hpp); only tests use it.
struct MailboxAccess {
  [[nodiscard]] static Ring& ring(Mailbox& mailbox) noexcept { return *mailbox.ring_; }
  // Makes done() release the cell but not free the loan's block: what a
  // receiver killed between those two steps leaves (layout/blobs.hpp).
  static void forget_loan(Delivery& delivery) noexcept { delivery.loan_control_ = 0; }
};

}  // namespace shmbus::detail

namespace shmbus::test {

[[nodiscard]] inline detail::Ring& ring_of(Mailbox& mailbox) noexcept {
  return detail::MailboxAccess::ring(mailbox);
}

}  // namespace shmbus::test
