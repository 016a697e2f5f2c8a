#include "shmbus/bus.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>

#include "blobs/blob_pool.hpp"
#include "bus/bus_core.hpp"
#include "bus/control.hpp"
#include "bus/mailbox_factory.hpp"
#include "shmbus/detail/atomic.hpp"
#include "server/service_link.hpp"
#include "process/process_table.hpp"
#include "ring/ring.hpp"
#include "segment/header_check.hpp"
#include "segment/segment.hpp"
#include "state/state_segment.hpp"

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
  if (options.max_in_flight == 0 || options.max_in_flight > layout::kMaxCallsPerProcess) {
    return fail(Errc::bad_options, "max_in_flight " + std::to_string(options.max_in_flight) +
                                       " is outside 1 … 4096");
  }
  if (options.max_reply > layout::kMaxReplyBytes) {
    return fail(Errc::bad_options, "max_reply " + std::to_string(options.max_reply) +
                                       " is above 1 MiB (send larger replies as loans)");
  }
  if (auto classes = detail::check_blob_classes(options.blob_classes); !classes) {
    return tl::unexpected(classes.error());
  }
  // The state segment and the blob pool first: a bus whose control segment
  // is ready is complete. Each is created exclusively, so an existing bus's
  // segments are never touched; whatever this call made is removed on failure.
  auto exists = [&](Error error) {
    if (error.code == Errc::bus_exists) {
      error.detail = "bus '" + std::string(name) + "' already exists (" + error.detail +
                     "); if no process uses it any more, `shmbus gc` (or Bus::remove) removes it";
    }
    return tl::unexpected(error);
  };
  if (auto state = detail::create_state_segment(name, options.state_capacity, options.mode);
      !state) {
    return exists(state.error());
  }
  if (auto pool = detail::create_blob_pool(name, options.blob_classes, options.mode); !pool) {
    (void)Segment::remove(detail::state_shm_name(name), Errc::no_such_bus);
    return exists(pool.error());
  }
  auto remove_parts = [&] {
    (void)Segment::remove(detail::state_shm_name(name), Errc::no_such_bus);
    (void)Segment::remove(detail::blob_pool_shm_name(name), Errc::no_such_bus);
  };
  const detail::ControlOptions control_options{options.max_processes, options.max_in_flight,
                                               options.max_reply};
  const detail::SegmentSpec spec{
      detail::control_shm_name(name), layout::SegmentKind::control,
      detail::control_segment_size(control_options), options.mode,
      options.trusted ? std::uint32_t{layout::kSegmentTrusted} : 0u};
  auto control = Segment::create(spec, [&](std::span<std::byte> bytes) {
    detail::initialize_control(bytes, control_options, options.mode);
  });
  if (!control) {
    remove_parts();
    return exists(control.error());
  }
  auto core = join_bus(name, std::move(*control), options.label);
  if (!core) {
    // Nobody else can hold the bus we just made: leave nothing behind.
    (void)Segment::remove(spec.shm_name, Errc::no_such_bus);
    remove_parts();
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
std::uint32_t Bus::reclaim_dead() noexcept { return core_->reclaim_dead(); }

Result<Mailbox> Bus::create_mailbox(std::string_view name, MailboxOptions options) {
  if (auto ok = check_name(name, "mailbox"); !ok) return tl::unexpected(ok.error());
  auto mailbox =
      detail::MailboxFactory::create(core_, core_->mailbox_shm_name(name), std::string(name), options);
  if (!mailbox && mailbox.error().code == Errc::bus_exists) {
    return fail(Errc::bus_exists,
                "mailbox '" + std::string(name) + "' already exists on bus '" + core_->name() + "'");
  }
  return mailbox;
}

Result<Mailbox> Bus::open_mailbox(std::string_view name) {
  if (auto ok = check_name(name, "mailbox"); !ok) return tl::unexpected(ok.error());
  auto mailbox = detail::MailboxFactory::open(core_, core_->mailbox_shm_name(name), std::string(name));
  if (!mailbox && mailbox.error().code == Errc::no_such_mailbox) {
    return fail(Errc::no_such_mailbox,
                "no mailbox '" + std::string(name) + "' on bus '" + core_->name() + "'");
  }
  return mailbox;
}

Result<void> Bus::remove_mailbox(std::string_view name) {
  if (auto ok = check_name(name, "mailbox"); !ok) return tl::unexpected(ok.error());
  return Segment::remove(core_->mailbox_shm_name(name), Errc::no_such_mailbox);
}

}  // namespace shmbus

namespace shmbus {

Result<void> Bus::register_service(std::string_view name, const ServiceOptions& options) {
  auto index = core_->registry().register_service(core_, name, options);
  if (!index) return tl::unexpected(index.error());
  return {};
}

Result<void> Bus::close_service(std::string_view name) {
  auto index = core_->registry().find(name);
  if (!index) {
    return fail(Errc::no_such_service,
                "no service '" + std::string(name) + "' on bus '" + core_->name() + "'");
  }
  // A seq_cst read-modify-write (a full barrier before the caller's next
  // reads, its drain; not a fence, which ThreadSanitizer builds refuse):
  // Dekker with a sender's claim CAS and its closed() load after it
  // (service_link.hpp), so no claim made after this is missed by both.
  (void)std::atomic_ref<std::uint32_t>(core_->registry().entry(*index).identity.closed).exchange(1);
  return {};
}

Result<Service> Bus::service(std::string_view name) {
  auto link = detail::ServiceLink::open(core_, name);
  if (!link) return tl::unexpected(link.error());
  return Service(std::move(*link));
}

Result<Receiver> Bus::dead_letters(std::string_view service) {
  auto dead = detail::MailboxFactory::open_dead_letters(core_, service);
  if (!dead) return tl::unexpected(dead.error());
  return dead->receiver();
}

std::vector<ServiceInfo> Bus::services() const {
  auto infos = core_->registry().snapshot();
  for (auto& info : infos) {
    auto add = [&info](const Mailbox& mailbox) {
      info.depth += mailbox.depth();
      const MailboxCounters c = mailbox.counters();
      auto& sum = info.mailboxes;
      sum.claimed += c.claimed;
      sum.consumed += c.consumed;
      sum.sender_aborted += c.sender_aborted;
      sum.redelivered += c.redelivered;
      sum.bad_messages += c.bad_messages;
      sum.full_refusals += c.full_refusals;
      sum.consumer_wake_calls += c.consumer_wake_calls;
      sum.producer_wake_calls += c.producer_wake_calls;
    };
    if (auto pool = detail::MailboxFactory::open(core_, detail::pool_shm_name(*core_, info.name),
                                                 info.name + "~pool")) {
      add(*pool);
    }
    for (std::uint32_t p = 0; p < info.options.partitions; ++p) {
      if (auto partition = detail::MailboxFactory::open(
              core_, detail::partition_shm_name(*core_, info.name, p),
              info.name + "~k" + std::to_string(p))) {
        add(*partition);
      }
    }
    if (auto dead = detail::MailboxFactory::open(
            core_, detail::dead_letter_shm_name(*core_, info.name), info.name + "~dead")) {
      info.dead_letters = dead->depth();
    }
  }
  return infos;
}

}  // namespace shmbus
