// ps_render.hpp — `shmbus ps` output: an aligned text table, or one JSON object.
//
// Text (readable at 80–100 columns; a service's errors line only when some
// counter is not zero, a server's CHILD/RESTARTS "-" when no launcher runs it):
//
//   bus orders | launcher pid 4242 running | up 5m 2s | /srv/orders/shmbus.toml
//
//   SERVICE       SERVERS  DEPTH  DEAD    CALLS   CASTS  REPLIES  ERRORS     P50     P99
//   mailer            2/2      0     0      120      30      120       3  <128us    <1ms
//     errors: timeout_in_progress 2, server_crashed 1; expired_skipped 2, late_replies 1
//          PID  CHILD         STATE     RESTARTS  UPTIME      CALLS   CASTS  LAST EXIT
//         1201  mailer.0      running          0  5m 2s          60      15  -
//         1202  mailer.1      running          1  12s            60      15  signal 9
//            -  mailer.2      failed           5  -               -       -  exit 1
//
//   PROCESSES
//          PID  LABEL                ALIVE
//         1201  mailer                 yes
//
// (ERRORS: the callers' outcomes other than a reply, summed; the errors line
// names them, then the servers' and mailboxes' problem counters. P50/P99:
// handler time, the histogram bucket's upper bound; "-": nothing sampled.
// CHILD/RESTARTS/LAST EXIT: the launcher's child running that pid, "-"
// without one. Rows without a PID: launcher children with no process.)
//
// JSON (`--json`): exactly one object, on one line, then a newline. Numbers
// are integers; every key below is always present (null where it says so).
//
//   {
//     "bus": "orders",
//     "taken_unix_ns": 1764030000000000000,
//     "launcher": null | {                    // null: not run by `shmbus launch`
//       "pid": 4242, "config": "/abs/path/shmbus.toml", "phase": "running",
//                                             // starting | running | draining | stopping
//       "started_unix_ns": 0, "failed_services": ["name", …]
//     },
//     "launcher_problem": null | "why the status could not be read",
//     "services": [ {                         // sorted by name
//       "name": "mailer",
//       "registered": true,                   // false: only the launcher knows it
//       "servers_live": 2,                    // servers alive and not leaving
//       "depth": 0, "dead_letters": 0,
//       "counters": {                         // servers' counters, summed (departed ones too)
//         "calls", "casts", "replies", "expired_skipped", "late_replies", "caller_gone",
//         "bad_messages", "replies_too_large", "redeliveries", "dead_lettered",
//         "dead_letters_dropped",
//         "sender_aborted", "mailbox_full", "mailbox_redelivered", "mailbox_bad_records"
//                                             // (the service's mailboxes: ring level)
//       },
//       "outcomes": {                         // caller-side outcomes other than a reply,
//         "timeout_not_started": 0, "timeout_in_progress": 0, "server_crashed": 0,
//         "bad_message": 0, "record_too_large": 0, "mailbox_full": 0,
//         "too_many_in_flight": 0, "bad_options": 0, "timeout_unknown": 0
//                                             // always these; any other Errc name when not 0
//       },
//       "errors": 3,                          // the outcomes summed
//       "latency_us": {"p50": 128, "p99": 1024, "samples": 19},
//                                             // handler time (1 message in 8 sampled):
//                                             // upper bound of the histogram bucket; 0 with
//                                             // no samples; null: above 16384 us (open bucket)
//       "servers": [ {
//         "pid": 1201, "alive": true, "leaving": false,
//         "state": "running",                 // running | leaving | dead
//         "joined_unix_ns": 0, "uptime_s": 302,
//         "child": "mailer.0" | null,         // the launcher child running it
//         "restarts": 0 | null,               // that child's restarts; null without one
//         "calls": 60, "casts": 15, "replies": 60
//       } ],
//       "children": [ {                       // every launcher child of this service
//         "name": "mailer.2", "pid": 0,       // pid 0: no process runs
//         "state": "failed",                  // running | exited | failed | stopped
//         "restarts": 5, "started_unix_ns": 0,
//         "serving": false,                   // a live server of this service has its pid
//         "last_exit": null | {"code": 1} | {"signal": 9}
//       } ]
//     } ],
//     "processes": [ {"pid": 1201, "label": "mailer", "alive": true, "slot": 3} ]
//                                             // the process table, without ps itself
//   }
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "bus_snapshot.hpp"
#include "json_string.hpp"

namespace shmbus::tools {

[[nodiscard]] std::string render_ps_text(const BusSnapshot& snapshot);
[[nodiscard]] std::string render_ps_json(const BusSnapshot& snapshot);

// "<128us", "<2ms", ">16ms", "-" (nothing sampled): latency_quantile's bound.
[[nodiscard]] std::string latency_text(std::chrono::microseconds bound);

// The SERVICE column's width: 12, or the longest service name.
[[nodiscard]] std::size_t service_column_width(const BusSnapshot& snapshot) noexcept;

// The caller-side outcomes other than a reply, summed.
[[nodiscard]] std::uint64_t caller_errors(const ServiceInfo& service) noexcept;

}  // namespace shmbus::tools
