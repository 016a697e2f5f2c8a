#include "shmbus/bus.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "bus/bus_core.hpp"
#include "process/process_table.hpp"
#include "ring/ring.hpp"
#include "segment/header_check.hpp"
#include "segment/segment.hpp"

namespace shmbus {

using detail::BusCore;
using detail::Segment;

namespace {

Result<void> check_name(std::string_view name, const char* what) {
  if (detail::valid_name(name)) return {};
  return fail(Errc::bad_name, std::string(what) + " name '" + std::string(name) +
                                  "' must be 1–48 characters of [A-Za-z0-9_-]");
}

// Joins the process table through a fresh attachment of `control`.
Result<std::shared_ptr<BusCore>> join_bus(std::string_view name, Segment control,
                                          std::string_view label) {
  auto core = std::make_shared<BusCore>(std::string(name), std::move(control));
  if (auto joined = core->join(label); !joined) return tl::unexpected(joined.error());
  return core;
}

}  // namespace

Bus::Bus(std::shared_ptr<detail::BusCore> core) noexcept : core_(std::move(core)) {}
Bus::Bus(Bus&&) noexcept = default;
Bus& Bus::operator=(Bus&&) noexcept = default;
Bus::~Bus() = default;

Result<Bus> Bus::create(std::string_view name, CreateOptions options) {
  if (auto ok = check_name(name, "bus"); !ok) return tl::unexpected(ok.error());
  if (options.max_processes == 0 || options.max_processes > layout::kMaxProcesses) {
    return fail(Errc::bad_options, "max_processes " + std::to_string(options.max_processes) +
                                       " is outside 1 … 1024");
  }
  const detail::SegmentSpec spec{
      detail::control_shm_name(name), layout::SegmentKind::control,
      detail::ProcessTable::segment_size(options.max_processes), options.mode,
      options.trusted ? std::uint32_t{layout::kSegmentTrusted} : 0u};
  auto control = Segment::create(spec, [&](std::span<std::byte> bytes) {
    detail::ProcessTable::initialize(bytes, options.max_processes, options.mode);
  });
  if (!control) {
    Error error = control.error();
    if (error.code == Errc::bus_exists) {
      error.detail = "bus '" + std::string(name) + "' already exists (" + error.detail +
                     "); if no process uses it any more, `shmbus gc` (or Bus::remove) removes it";
    }
    return tl::unexpected(error);
  }
  auto core = join_bus(name, std::move(*control), options.label);
  if (!core) {
    // Nobody else can hold the bus we just made: leave nothing behind.
    (void)Segment::remove(spec.shm_name, Errc::no_such_bus);
    return tl::unexpected(core.error());
  }
  return Bus(std::move(*core));
}

Result<Bus> Bus::attach(std::string_view name, AttachOptions options) {
  if (auto ok = check_name(name, "bus"); !ok) return tl::unexpected(ok.error());
  auto control = Segment::attach(detail::control_shm_name(name), layout::SegmentKind::control,
                                 deadline_in(options.ready_timeout), Errc::no_such_bus);
  if (!control) {
    Error error = control.error();
    if (error.code == Errc::no_such_bus) error.detail = "no bus named '" + std::string(name) + "'";
    return tl::unexpected(error);
  }
  if (control->size() < detail::ProcessTable::segment_size(1)) {
    return fail(Errc::size_too_small, "/dev/shm/" + control->shm_name() +
                                          " is too small for a process table");
  }
  auto core = join_bus(name, std::move(*control), options.label);
  if (!core) return tl::unexpected(core.error());
  return Bus(std::move(*core));
}

Result<void> Bus::remove(std::string_view name) {
  if (auto ok = check_name(name, "bus"); !ok) return tl::unexpected(ok.error());
  const std::string control = detail::control_shm_name(name);
  auto removed = Segment::remove(control, Errc::no_such_bus);
  // Mailboxes go too, also when the control segment was already gone.
  const std::string prefix = control + ".";
  if (DIR* dir = ::opendir("/dev/shm")) {
    while (const dirent* entry = ::readdir(dir)) {
      if (std::string_view(entry->d_name).starts_with(prefix)) {
        (void)Segment::remove(entry->d_name, Errc::no_such_mailbox);
      }
    }
    ::closedir(dir);
  }
  if (!removed && removed.error().code == Errc::no_such_bus) {
    return fail(Errc::no_such_bus, "no bus named '" + std::string(name) + "'");
  }
  return removed;
}

Result<std::vector<std::string>> Bus::list() {
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return fail(Errc::system_error, std::string("/dev/shm: ") + std::strerror(errno));
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view file(entry->d_name);
    if (!file.starts_with("shmbus.")) continue;
    const std::string_view bus = file.substr(7);
    if (detail::valid_name(bus)) names.emplace_back(bus);  // mailboxes hold a second '.'
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

Result<bool> Bus::in_use(std::string_view name) {
  if (auto ok = check_name(name, "bus"); !ok) return tl::unexpected(ok.error());
  const std::string shm_name = detail::control_shm_name(name);
  auto control = Segment::attach(shm_name, layout::SegmentKind::control, Clock::now(),
                                 Errc::no_such_bus);
  if (!control) return tl::unexpected(control.error());
  if (control->size() < detail::ProcessTable::segment_size(1)) {
    return fail(Errc::size_too_small, "/dev/shm/" + shm_name + " is too small for a process table");
  }
  const int query_fd = detail::open_segment_fd(shm_name);
  if (query_fd < 0) {
    return fail(Errc::system_error, "/dev/shm/" + shm_name + ": shm_open: " + std::strerror(errno));
  }
  detail::ProcessTable table(control->bytes(), -1, query_fd);
  const bool used = table.any_locked();
  ::close(query_fd);
  return used;
}

const std::string& Bus::name() const noexcept { return core_->name(); }
bool Bus::trusted() const noexcept { return core_->trusted(); }
ProcessRef Bus::self() const noexcept { return core_->table().self(); }
bool Bus::is_alive(ProcessRef ref) const noexcept { return core_->table().is_alive(ref.value); }
std::vector<ProcessInfo> Bus::processes() const { return core_->table().snapshot(); }
std::uint32_t Bus::reclaim_dead() noexcept { return core_->table().reclaim_dead(); }

Result<Mailbox> Bus::create_mailbox(std::string_view name, MailboxOptions options) {
  if (auto ok = check_name(name, "mailbox"); !ok) return tl::unexpected(ok.error());
  auto size = detail::Ring::segment_size(options);
  if (!size) return tl::unexpected(size.error());
  const detail::SegmentSpec spec{core_->mailbox_shm_name(name), layout::SegmentKind::mailbox,
                                 *size, core_->table().segment_mode(), 0};
  auto segment = Segment::create(
      spec, [&](std::span<std::byte> bytes) { detail::Ring::initialize(bytes, options); });
  if (!segment) {
    Error error = segment.error();
    if (error.code == Errc::bus_exists) {
      error.detail = "mailbox '" + std::string(name) + "' already exists on bus '" + core_->name() + "'";
    }
    return tl::unexpected(error);
  }
  auto ring = detail::Ring::open(std::move(*segment), core_->table(), core_);
  if (!ring) {
    (void)Segment::remove(spec.shm_name, Errc::no_such_mailbox);
    return tl::unexpected(ring.error());
  }
  return Mailbox(core_, std::move(*ring), std::string(name));
}

Result<Mailbox> Bus::open_mailbox(std::string_view name) {
  if (auto ok = check_name(name, "mailbox"); !ok) return tl::unexpected(ok.error());
  auto segment = Segment::attach(core_->mailbox_shm_name(name), layout::SegmentKind::mailbox,
                                 deadline_in(std::chrono::seconds(2)), Errc::no_such_mailbox);
  if (!segment) {
    Error error = segment.error();
    if (error.code == Errc::no_such_mailbox) {
      error.detail = "no mailbox '" + std::string(name) + "' on bus '" + core_->name() + "'";
    }
    return tl::unexpected(error);
  }
  auto ring = detail::Ring::open(std::move(*segment), core_->table(), core_);
  if (!ring) return tl::unexpected(ring.error());
  return Mailbox(core_, std::move(*ring), std::string(name));
}

Result<void> Bus::remove_mailbox(std::string_view name) {
  if (auto ok = check_name(name, "mailbox"); !ok) return tl::unexpected(ok.error());
  return Segment::remove(core_->mailbox_shm_name(name), Errc::no_such_mailbox);
}

}  // namespace shmbus
