// top_render.hpp — one frame of `shmbus top`: the bus between two snapshots.
//
//   shmbus top | bus orders | 12:34:56 UTC | launcher running (pid 4242) | every 1s | q: quit
//
//   SERVICE      SERVERS  CALL/S  CAST/S   ERR/S     P50     P99   DEPTH  DEAD  RESTARTS
//   mailer           2/2   120.0    30.0     0.0  <128us    <1ms       0     0         1
//       1201  mailer.0   running  up 5m 2s   restarts 0   calls/s 60.0   casts/s 15.0
//       -     mailer.2   failed   exit 1     restarts 5
//
// Rates are counter deltas over the time between the two snapshots; P50/P99
// are the handler-time histogram's delta over that interval ("-": no message
// sampled in it). The first frame, with no earlier snapshot, shows "-" rates.
// Restarts: the launcher children's of that service, summed.
#pragma once

#include <string>

#include "bus_snapshot.hpp"

namespace shmbus::tools {

// `before` may be null (the first frame). `interval_text` says the refresh
// period in the header ("1s", "0.5s").
[[nodiscard]] std::string render_top(const BusSnapshot& now, const BusSnapshot* before,
                                     const std::string& interval_text);

// The counters of `now` minus those of `before`, field by field; a counter
// that went down (a service registered anew) counts from zero.
[[nodiscard]] ServerCounters counters_delta(const ServerCounters& now,
                                            const ServerCounters& before) noexcept;

}  // namespace shmbus::tools
