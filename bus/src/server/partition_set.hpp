// partition_set.hpp — the partitions of a keyed service that one server owns
// (layout/registry.hpp, "Keyed routing").
//
// Ownership of a partition is the consumer entry of its mpsc ring: taking it
// fails while another live server holds it, and a dead holder's entry is
// taken over with the record it held (redelivered first). A server re-reads
// the pool's membership when the registry epoch moves, and at least every
// kParkRecheckInterval (a dead server does not move the epoch), then lets go
// of partitions no longer its own and tries to take those newly its own.
// Hand-overs happen only between messages: per-key order is kept.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include "shmbus/mailbox.hpp"

namespace shmbus::detail {

class BusCore;

class PartitionSet {
 public:
  PartitionSet(std::vector<Mailbox> partitions, std::uint32_t service, std::uint32_t entry) noexcept;

  // Re-reads membership if the epoch moved or `now` reached the next check.
  void rebalance_if_due(BusCore& core, Deadline now) noexcept;
  // Takes the next record of the partitions we own, rotating among them.
  [[nodiscard]] std::optional<Delivery> try_receive() noexcept;
  // Whether a partition we own seems to hold a ready record (takes nothing).
  [[nodiscard]] bool ready() const noexcept;
  // For another thread (Readiness's waiter), which must not touch the
  // receivers: whether a partition we own has records queued, and whether
  // one we do not own has (a dead or leaving owner's, perhaps ours next).
  [[nodiscard]] bool owned_backlog() const noexcept;
  [[nodiscard]] bool unowned_backlog() const noexcept;
  // Lets go of every partition (leaving the pool) and tells the siblings.
  void release_all(BusCore& core) noexcept;

  [[nodiscard]] bool empty() const noexcept { return partitions_.empty(); }
  [[nodiscard]] std::uint32_t owned() const noexcept;
  [[nodiscard]] Deadline next_check() const noexcept { return next_check_; }

 private:
  void rebalance(BusCore& core) noexcept;
  void announce_release(BusCore& core) noexcept;

  std::vector<Mailbox> partitions_;
  std::vector<std::optional<Receiver>> owned_;  // sized once: Deliveries point at them
  std::uint32_t service_;
  std::uint32_t entry_;
  std::uint64_t seen_epoch_ = ~std::uint64_t{0};
  Deadline next_check_{};
  std::uint32_t rotate_ = 0;
  std::atomic<std::uint64_t> owned_mask_{0};  // bit p: we own partition p (published for waiters)
};

}  // namespace shmbus::detail
