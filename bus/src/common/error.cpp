#include "shmbus/error.hpp"

namespace shmbus {

const char* to_string(Errc e) noexcept {
  switch (e) {
#define SHMBUS_ERRC_NAME(name) \
  case Errc::name:             \
    return #name;
    SHMBUS_ERRC_NAME(no_such_bus)
    SHMBUS_ERRC_NAME(bus_exists)
    SHMBUS_ERRC_NAME(not_a_segment)
    SHMBUS_ERRC_NAME(layout_mismatch)
    SHMBUS_ERRC_NAME(permission_denied)
    SHMBUS_ERRC_NAME(size_too_small)
    SHMBUS_ERRC_NAME(no_such_service)
    SHMBUS_ERRC_NAME(mailbox_full)
    SHMBUS_ERRC_NAME(record_too_large)
    SHMBUS_ERRC_NAME(timeout_not_started)
    SHMBUS_ERRC_NAME(timeout_in_progress)
    SHMBUS_ERRC_NAME(server_crashed)
    SHMBUS_ERRC_NAME(bad_message)
    SHMBUS_ERRC_NAME(pool_exhausted)
    SHMBUS_ERRC_NAME(state_full)
    SHMBUS_ERRC_NAME(stale_ref)
    SHMBUS_ERRC_NAME(bad_ref)
    SHMBUS_ERRC_NAME(too_many_in_flight)
    SHMBUS_ERRC_NAME(timeout_unknown)
    SHMBUS_ERRC_NAME(empty)
    SHMBUS_ERRC_NAME(bad_name)
    SHMBUS_ERRC_NAME(too_many_processes)
    SHMBUS_ERRC_NAME(too_many_consumers)
    SHMBUS_ERRC_NAME(no_such_mailbox)
    SHMBUS_ERRC_NAME(bad_options)
    SHMBUS_ERRC_NAME(system_error)
    SHMBUS_ERRC_NAME(too_many_services)
    SHMBUS_ERRC_NAME(schema_mismatch)
    SHMBUS_ERRC_NAME(stopped)
    SHMBUS_ERRC_NAME(no_such_key)
#undef SHMBUS_ERRC_NAME
  }
  return "unknown_error";
}

namespace {

const char* describe(Errc e) noexcept {
  switch (e) {
    case Errc::no_such_bus: return "no such bus";
    case Errc::bus_exists: return "the bus (or mailbox) already exists";
    case Errc::not_a_segment: return "not a usable shmbus segment";
    case Errc::layout_mismatch: return "the segment has another layout version";
    case Errc::permission_denied: return "permission denied";
    case Errc::size_too_small: return "size too small";
    case Errc::no_such_service: return "no such service";
    case Errc::mailbox_full: return "the mailbox is full";
    case Errc::record_too_large: return "the record is larger than the mailbox's maximum";
    case Errc::timeout_not_started: return "deadline passed before a server began the call";
    case Errc::timeout_in_progress: return "deadline passed while a server ran the call";
    case Errc::server_crashed: return "the server died while running the call";
    case Errc::bad_message: return "the message failed verification";
    case Errc::pool_exhausted: return "the blob pool has no free block";
    case Errc::state_full: return "the state segment is full";
    case Errc::stale_ref: return "the referenced version no longer exists";
    case Errc::bad_ref: return "the reference does not name a valid object";
    case Errc::too_many_in_flight: return "too many calls in flight";
    case Errc::timeout_unknown: return "no answer from the remote host by the deadline";
    case Errc::empty: return "nothing arrived before the deadline";
    case Errc::bad_name: return "invalid name";
    case Errc::too_many_processes: return "the bus's process table is full";
    case Errc::too_many_consumers: return "the mailbox has its maximum of consumers";
    case Errc::no_such_mailbox: return "no such mailbox";
    case Errc::bad_options: return "an option is out of range";
    case Errc::system_error: return "an operating-system call failed";
    case Errc::too_many_services: return "the bus's registry has no free service entry";
    case Errc::schema_mismatch: return "a service of that name is registered with other types";
    case Errc::stopped: return "the server was asked to stop";
    case Errc::no_such_key: return "the state segment holds no value under that key";
  }
  return "unknown shmbus error";
}

class BusCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "shmbus"; }
  std::string message(int value) const override { return describe(static_cast<Errc>(value)); }
};

}  // namespace

const std::error_category& bus_category() noexcept {
  static const BusCategory category;
  return category;
}

std::string Error::message() const {
  std::string text = to_string(code);
  text += ": ";
  text += detail.empty() ? describe(code) : detail;
  return text;
}

}  // namespace shmbus
