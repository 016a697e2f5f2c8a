#include "server/partition_set.hpp"

#include "bus/bus_core.hpp"
#include "shmbus/detail/atomic.hpp"
#include "wait/futex.hpp"

#include <climits>

namespace shmbus::detail {

PartitionSet::PartitionSet(std::vector<Mailbox> partitions, std::uint32_t service,
                           std::uint32_t entry) noexcept
    : partitions_(std::move(partitions)), owned_(partitions_.size()), service_(service), entry_(entry) {}

std::uint32_t PartitionSet::owned() const noexcept {
  std::uint32_t n = 0;
  for (const auto& r : owned_) n += r.has_value() ? 1 : 0;
  return n;
}

void PartitionSet::rebalance_if_due(BusCore& core, Deadline now) noexcept {
  if (partitions_.empty()) return;
  const std::uint64_t epoch = load_acquire(core.control().registry().epoch);
  if (epoch == seen_epoch_ && now < next_check_) return;
  seen_epoch_ = epoch;
  next_check_ = now + kParkRecheckInterval;
  rebalance(core);
}

void PartitionSet::rebalance(BusCore& core) noexcept {
  const auto& service = core.registry().entry(service_);
  // The live serving servers in entry order; partition p is the (p mod n)-th's.
  std::uint32_t n = 0;
  std::uint32_t mine = layout::kMaxServersPerService;
  for (std::uint32_t i = 0; i < layout::kMaxServersPerService; ++i) {
    const auto& server = service.servers[i];
    const std::uint32_t owner = load_acquire(server.owner);
    if (owner == 0) continue;
    if (load_relaxed(server.state) != static_cast<std::uint32_t>(layout::ServerState::serving)) continue;
    if (!core.table().is_alive(owner)) continue;
    if (i == entry_) mine = n;
    ++n;
  }
  bool released = false;
  for (std::uint32_t p = 0; p < partitions_.size(); ++p) {
    const bool want = mine != layout::kMaxServersPerService && p % n == mine;
    if (!want) {
      released = released || owned_[p].has_value();
      owned_[p].reset();  // between messages: nothing is held
    } else if (!owned_[p]) {
      // Fails while the previous owner still holds it; retried next check.
      if (auto receiver = partitions_[p].receiver()) owned_[p].emplace(std::move(*receiver));
    }
  }
  std::uint64_t mask = 0;
  for (std::uint32_t p = 0; p < owned_.size(); ++p) mask |= owned_[p] ? std::uint64_t{1} << p : 0;
  owned_mask_.store(mask, std::memory_order_release);
  if (released) announce_release(core);
}

std::optional<Delivery> PartitionSet::try_receive() noexcept {
  const auto count = static_cast<std::uint32_t>(owned_.size());
  for (std::uint32_t k = 0; k < count; ++k) {
    const std::uint32_t p = (rotate_ + k) % count;
    if (!owned_[p]) continue;
    if (auto delivery = owned_[p]->try_receive()) {
      rotate_ = p + 1;  // the next look starts after us: no partition starves
      return std::move(*delivery);
    }
  }
  return std::nullopt;
}

bool PartitionSet::ready() const noexcept {
  for (const auto& r : owned_) {
    if (r && r->ready()) return true;
  }
  return false;
}

bool PartitionSet::owned_backlog() const noexcept {
  const std::uint64_t mask = owned_mask_.load(std::memory_order_acquire);
  for (std::uint32_t p = 0; p < partitions_.size(); ++p) {
    if ((mask >> p & 1) != 0 && partitions_[p].depth() > 0) return true;
  }
  return false;
}

bool PartitionSet::unowned_backlog() const noexcept {
  const std::uint64_t mask = owned_mask_.load(std::memory_order_acquire);
  for (std::uint32_t p = 0; p < partitions_.size(); ++p) {
    if ((mask >> p & 1) == 0 && partitions_[p].depth() > 0) return true;
  }
  return false;
}

void PartitionSet::release_all(BusCore& core) noexcept {
  bool released = false;
  for (auto& r : owned_) {
    released = released || r.has_value();
    r.reset();
  }
  owned_mask_.store(0, std::memory_order_release);
  if (released) announce_release(core);
}

void PartitionSet::announce_release(BusCore& core) noexcept {
  // The new owners may have tried and failed while we held on: tell them
  // now rather than at their next check.
  auto& id = core.registry().entry(service_).identity;
  fetch_add(core.control().registry().epoch, std::uint64_t{2});  // stays even (registry.cpp)
  ring_all(id.doorbell_seq);
}

}  // namespace shmbus::detail
