// state_transfer.hpp — what `shmbus state put|get|ls` do, apart from parsing:
// a file read straight into a reserved state value, a value written out,
// the key listing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "progress_bar.hpp"
#include "shmbus/error.hpp"
#include "shmbus/state.hpp"

namespace shmbus::tools {

// A failure as the tool reports it: the exit status (command.hpp) and the
// message printed after "shmbus: ".
struct ToolFailure {
  int status = 0;
  std::string message;
};
template <class T>
using Outcome = tl::expected<T, ToolFailure>;

// An Error as a failure whose status is its Errc value.
[[nodiscard]] ToolFailure failure_of(const Error& error);
// Prints "shmbus: <message>" on stderr and returns the status.
int report_failure(const ToolFailure& failure);

struct PutReport {
  std::uint64_t bytes = 0;
  std::uint64_t version = 0;
};

// put_file()
//
// Publishes the bytes of `path` ("-": standard input) as `key`'s new version.
// A regular file's size is reserved with begin_put and the file is read
// straight into the reserved span (no copy of it in between), reporting
// progress on stderr; a pipe is read into memory first (its size is known
// only at its end). Fails with status 66 when the file cannot be opened or
// read, or ends before its size (or grows) while read — the transaction is
// aborted, nothing is published; with the Errc of begin_put or publish
// otherwise (state_full: the detail says what live, retired and in-progress
// versions hold).
[[nodiscard]] Outcome<PutReport> put_file(State& state, std::string_view key, const std::string& path,
                                          ProgressBar::Mode progress);

// get_to_file()
//
// Writes the bytes of `key`'s current version to `path`, or to standard
// output when `path` is empty; returns how many. Fails with no_such_key (or
// another Errc of State::get) or system_error (the output cannot be written).
[[nodiscard]] Outcome<std::uint64_t> get_to_file(const State& state, std::string_view key,
                                                 const std::string& path);

// The `state ls` table (key, size, version, then the usage totals) or, with
// `json`, one JSON object {"keys":[{"key","size","version"}…],"usage":{…}}.
[[nodiscard]] std::string render_state_list(const std::vector<StateEntry>& entries,
                                            const StateUsage& usage, bool json);

}  // namespace shmbus::tools
