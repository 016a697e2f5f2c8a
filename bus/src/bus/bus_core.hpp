// bus_core.hpp — what one attachment of a bus owns; shared by Bus, Mailbox and
// Receiver so that none of them can outlive the mapping it points into.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "bus/control.hpp"
#include "calls/call_slots.hpp"
#include "process/process_table.hpp"
#include "registry/registry.hpp"
#include "segment/segment.hpp"

namespace shmbus::detail {

class BlobPool;    // blobs/blob_pool.hpp
class StateStore;  // state/state_store.hpp

class BusCore {
 public:
  BusCore(std::string name, Segment control) noexcept;
  ~BusCore();
  BusCore(const BusCore&) = delete;
  BusCore& operator=(const BusCore&) = delete;

  // Opens the lock and query descriptors and joins the process table.
  [[nodiscard]] Result<void> join(std::string_view label);

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] ProcessTable& table() noexcept { return *table_; }
  [[nodiscard]] const ControlView& control() const noexcept { return *control_view_; }
  [[nodiscard]] CallSlots& call_slots() noexcept { return *call_slots_; }
  [[nodiscard]] Registry& registry() noexcept { return *registry_; }
  // Frees dead processes' slots and recycles their call slots (Bus::reclaim_dead).
  std::uint32_t reclaim_dead() noexcept;
  [[nodiscard]] bool trusted() const noexcept;
  [[nodiscard]] std::string mailbox_shm_name(std::string_view mailbox) const;

  // The blob pool, mapped on first use (blobs/blob_core.cpp). Fails like
  // BlobPool::open.
  [[nodiscard]] Result<BlobPool*> blobs();
  // The state segment, mapped read-only or writable on first use
  // (state/state_core.cpp).
  [[nodiscard]] Result<StateStore*> state_store(bool writable);

 private:
  std::string name_;
  Segment control_;
  int lock_fd_ = -1;
  int query_fd_ = -1;
  std::uint32_t joined_epoch_ = 0;  // fork_epoch() when joined
  std::optional<ProcessTable> table_;
  std::optional<ControlView> control_view_;
  std::optional<CallSlots> call_slots_;
  std::optional<Registry> registry_;
  std::mutex parts_mutex_;  // maps the blob pool and the state segment once
  std::unique_ptr<BlobPool> blobs_;
  std::atomic<BlobPool*> blobs_ready_{nullptr};  // blobs_ once mapped: the lock-free path
  std::unique_ptr<StateStore> state_read_;
  std::unique_ptr<StateStore> state_write_;
};

// "shmbus.<bus>": the control segment's name under /dev/shm.
[[nodiscard]] std::string control_shm_name(std::string_view bus);
// Names are [A-Za-z0-9_-]{1,48}: they become file names, '.' separates them.
[[nodiscard]] bool valid_name(std::string_view name) noexcept;
// Opens a second descriptor of a segment (O_CLOEXEC), or -1 with errno set.
[[nodiscard]] int open_segment_fd(const std::string& shm_name) noexcept;

}  // namespace shmbus::detail
