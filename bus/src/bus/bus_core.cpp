#include "bus/bus_core.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "blobs/blob_pool.hpp"
#include "process/fork_guard.hpp"
#include "state/pins.hpp"
#include "state/state_store.hpp"

namespace shmbus::detail {

std::string control_shm_name(std::string_view bus) { return "shmbus." + std::string(bus); }

bool valid_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 48) return false;
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
    if (!ok) return false;
  }
  return true;
}

int open_segment_fd(const std::string& shm_name) noexcept {
  return ::shm_open(("/" + shm_name).c_str(), O_RDWR | O_CLOEXEC, 0);
}

BusCore::BusCore(std::string name, Segment control) noexcept
    : name_(std::move(name)), control_(std::move(control)) {}

BusCore::~BusCore() {
  if (table_) table_->leave();
  // In a forked child the fork guard already closed the lock descriptor, and
  // its number may name another file by now.
  if (lock_fd_ >= 0 && fork_epoch() == joined_epoch_) close_lock_fd(lock_fd_);
  if (query_fd_ >= 0) ::close(query_fd_);
}

Result<void> BusCore::join(std::string_view label) {
  joined_epoch_ = fork_epoch();
  lock_fd_ = open_lock_fd(control_.shm_name());
  query_fd_ = open_segment_fd(control_.shm_name());
  const std::string where = "/dev/shm/" + control_.shm_name();
  if (lock_fd_ < 0 || query_fd_ < 0) {
    const int err = errno;
    if (err == ENOENT) return fail(Errc::no_such_bus, where + " was removed while attaching");
    return fail(err == EACCES ? Errc::permission_denied : Errc::system_error,
                where + ": shm_open: " + std::strerror(err));
  }
  // Liveness lives in the lock bytes of the file we map: a bus removed and
  // created again under the same name in between is another file.
  if (!control_.same_file(lock_fd_) || !control_.same_file(query_fd_)) {
    return fail(Errc::no_such_bus, where + " was removed (and created again) while attaching");
  }
  auto view = ControlView::open(control_.bytes());
  if (!view) {
    Error error = view.error();
    error.detail = where + ": " + error.detail;
    return tl::unexpected(error);
  }
  control_view_.emplace(*view);
  table_.emplace(control_.bytes(), lock_fd_, query_fd_);
  auto joined = table_->join(label);
  if (!joined) return tl::unexpected(joined.error());
  call_slots_.emplace(*control_view_, *table_);
  registry_.emplace(*control_view_, *table_);
  return {};
}

std::uint32_t BusCore::reclaim_dead() noexcept {
  const std::uint32_t freed = table_->reclaim_dead([this](std::uint32_t slot, std::uint32_t dead) {
    CallSlots::sweep(*control_view_, *table_, slot);
    CallSlots::wake_callers_of(*control_view_, dead);
    clear_dead_pins(*control_view_, slot);
  });
  // Blocks held by the dead, or by records consumed or skipped without
  // their block being freed (a receiver killed in between): see layout/blobs.hpp.
  if (auto pool = blobs()) (*pool)->reclaim(*this);
  return freed;
}

bool BusCore::trusted() const noexcept {
  return (control_.header().flags & layout::kSegmentTrusted) != 0;
}

std::string BusCore::mailbox_shm_name(std::string_view mailbox) const {
  return control_shm_name(name_) + "." + std::string(mailbox);
}

}  // namespace shmbus::detail
