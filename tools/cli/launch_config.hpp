// launch_config.hpp — the config file of `shmbus launch`, read and checked whole
// before anything starts.
//
// The format (TOML). Sizes are integer bytes or strings "N", "NKiB", "NMiB",
// "NGiB"; durations are seconds (integer or float). `${VAR}` in `command` and
// `env` strings expands from the launcher's environment (`${CONFIG_DIR}`: the
// config file's directory); an unknown variable is a config error.
//
//   [bus]
//   name = "demo"               # required: [A-Za-z0-9_-]{1,48}
//   mode = "0660"               # octal string; default "0600" ("0660" with group)
//   group = "mail"              # optional: every segment is chgrp'd to it
//   trusted = false             # receivers skip the FlatBuffers verifier
//   max_processes = 256         # 1 … 1024
//   max_in_flight = 64          # calls in flight per process, 1 … 4096
//   max_reply = "1KiB"          # reply bytes a call slot holds, 0 … 1 MiB
//   state_capacity = "8MiB"     # bytes of state values
//   blob_classes = [ { size = "64KiB", count = 32 }, { size = "1MiB", count = 8 } ]
//   mailbox_capacity = 1024     # default for every service (power of two)
//   max_record = "4KiB"         # default for every service
//   drain_grace = 5.0           # seconds to drain the queues at shut-down
//   on_failure = "keep_others"  # or "shut_down": stop everything when a service fails
//
//   [[service]]
//   name = "mailer"                                   # required, unique
//   command = ["shmbus_mailer_worker", "--maildir", "${MAILDIR}"]   # required argv
//   servers = 4                                       # 1 … 64, default 1
//   restart = "permanent"                             # permanent | transient | temporary
//   max_restarts = 3                                  # within `within` seconds, then failed
//   within = 5.0
//   shutdown_grace = 2.0                              # seconds, SIGTERM → SIGKILL
//   max_deliveries = 3                                # 1 … 250
//   mailbox_capacity = 1024                           # power of two, 2 … 2^24
//   max_record = "4KiB"                               # 1 B … 64 MiB
//   dead_letter_capacity = 64                         # power of two
//   partitions = 0                                    # keyed routing: 0 or 2 … 64, power of two
//   schema = "examples/mailer.fbs"                    # optional: the request's .fbs
//   request = "shmbus.examples.mailer.SendEmail"      # required with schema
//   reply = "shmbus.examples.mailer.EmailSent"        # required with schema
//   request_id = "MAIL"                               # optional: default from the schema
//   reply_id = "MALR"                                 #   files' file_identifier
//   env = { KEY = "value" }
//
// A command's program without '/' is looked up in the directory of the shmbus
// binary (the example workers are installed beside it), then in PATH; with a
// '/' and relative, it is relative to the config file's directory. A schema
// path is looked up in $SHMBUS_SCHEMA_PATH (':'-separated), the installed
// share/shmbus/schemas, then the source tree's schemas/ (a build tree), and
// relative to the config file's directory; it is parsed (FlatBuffers' Parser)
// and must define `request` and `reply` as tables. Without `schema` the
// service is untyped (any bytes), unless `request`/`reply` are given with
// both ids. The schema hash registered is the one a worker's
// ServiceSchema::of<Request, Reply>(request_id, reply_id) computes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "shmbus/bus.hpp"
#include "shmbus/error.hpp"
#include "shmbus/registry.hpp"
#include "shmbus/supervisor.hpp"

namespace shmbus::tools {

struct ServiceConfig {
  std::string name;
  int line = 0;                      // of its [[service]] table
  std::vector<std::string> command;  // expanded; argv[0] resolved
  std::uint32_t servers = 1;
  Restart restart = Restart::permanent;
  std::uint32_t max_restarts = 3;
  std::chrono::milliseconds within{5000};
  std::chrono::milliseconds shutdown_grace{2000};
  std::vector<std::pair<std::string, std::string>> env;  // expanded
  ServiceOptions options;                                // sizes and schema, as registered
};

struct LaunchConfig {
  std::string path;  // absolute
  std::string dir;   // the file's directory (${CONFIG_DIR})
  std::string bus;
  CreateOptions create;        // mode, trusted and the bus's sizes
  std::optional<gid_t> group;  // segments are chgrp'd to it
  std::string group_name;
  std::chrono::milliseconds drain_grace{5000};
  OnFailure on_failure = OnFailure::keep_others;
  std::vector<ServiceConfig> services;
};

// Reads and checks the whole config. Fails with bad_options; the detail is
// "<path>:<line>[:<column>]: <what is wrong>" for a syntax error, an unknown
// key (with the nearest known one), a missing field, a value of the wrong
// type or out of range, an unknown ${VAR}, a duplicate service, a program or
// schema file that cannot be found. A file that cannot be read fails with
// system_error. Nothing is created here.
[[nodiscard]] Result<LaunchConfig> load_launch_config(const std::string& path);

}  // namespace shmbus::tools
