// -----------------------------------------------------------------------------
// error.hpp — the one error enum of shmbus, and the two result types
// -----------------------------------------------------------------------------
//
// Hot paths (send, receive, claim) return `Expected<T>`: a 2-byte `Errc`, never
// an allocation. Setup and admin paths (create, attach, remove) return
// `Result<T>`, whose `Error` adds a sentence a person can act on. No exception
// crosses the library boundary.
//
//   auto bus_result = shmbus::Bus::attach("orders");
//   if (!bus_result) {
//     std::cerr << bus_result.error().message() << "\n";  // names the cause
//     return 1;
//   }
#pragma once

#include <cstdint>
#include <string>
#include <system_error>

#include <tl/expected.hpp>

namespace shmbus {

// Every way a shmbus operation can fail. The values are stable: they are the
// CLI's exit codes and index the error counters. New values are appended,
// never inserted.
enum class Errc : std::uint16_t {
  no_such_bus = 1,
  bus_exists,
  not_a_segment,
  layout_mismatch,
  permission_denied,
  size_too_small,
  no_such_service,
  mailbox_full,
  record_too_large,
  timeout_not_started,
  timeout_in_progress,
  server_crashed,
  bad_message,
  pool_exhausted,
  state_full,
  stale_ref,
  bad_ref,
  too_many_in_flight,
  timeout_unknown,
  empty,                // nothing arrived before the deadline (receive)
  bad_name,             // a bus or mailbox name outside [A-Za-z0-9_-]{1,48}
  too_many_processes,   // the bus's process table is full
  too_many_consumers,   // the mailbox already has its maximum of consumers
  no_such_mailbox,
  bad_options,          // an option out of range (capacity not a power of two, …)
  system_error,         // an unexpected OS failure; the detail names the call and errno
  too_many_services,    // the bus's registry is full
  schema_mismatch,      // a service of that name exists with other types or options
  stopped,              // the server was asked to stop
  no_such_key,          // the state segment holds no value under that key
};

// The category that makes `Errc` usable as a std::error_code ("shmbus").
[[nodiscard]] const std::error_category& bus_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), bus_category()};
}

// The enumerator's name as written above ("mailbox_full"): the word that code,
// CLI and docs share.
[[nodiscard]] const char* to_string(Errc e) noexcept;

// A setup or admin failure: the code, plus what a person needs to act on it
// ("segment /shmbus.orders has layout 3, this build reads 4").
struct Error {
  Errc code;
  std::string detail;

  // "<name>: <detail>", or the category message when there is no detail.
  [[nodiscard]] std::string message() const;
};

template <class T>
using Expected = tl::expected<T, Errc>;  // hot path: never allocates
template <class T>
using Result = tl::expected<T, Error>;  // setup and admin path

[[nodiscard]] inline tl::unexpected<Error> fail(Errc code, std::string detail) {
  return tl::unexpected<Error>(Error{code, std::move(detail)});
}

}  // namespace shmbus

template <>
struct std::is_error_code_enum<shmbus::Errc> : std::true_type {};
