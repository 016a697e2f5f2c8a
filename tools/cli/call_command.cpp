// call_command.cpp — `shmbus call` and `shmbus cast`: send a service a
// message written as JSON, from the shell.
//
//   shmbus call BUS SERVICE JSON [--timeout 5s] [--key N] [--raw [--hex]]
//   shmbus cast BUS SERVICE JSON [--timeout 5s] [--key N] [--raw]
//
// JSON is the argument itself, @FILE, or - (stdin). It is parsed against the
// .fbs the service registered (its request type; unknown fields and values
// of the wrong type are errors, exit 65, and nothing is sent). The reply is
// verified and printed as JSON on stdout. --raw sends the input's bytes as
// they are and writes the reply's bytes as they are (--hex: as hex), for
// services without a schema. A call that ends without a reply prints
// "shmbus: call failed: <errc>: <what happened>" and exits with the Errc value.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <memory>
#include <sstream>
#include <string>
#include <variant>

#include <CLI/CLI.hpp>

#include "command.hpp"
#include "json_message.hpp"
#include "schema_files.hpp"
#include "shmbus/shmbus.hpp"

namespace shmbus::tools {

namespace {

struct CallArgs {
  std::string bus;
  std::string service;
  std::string input;           // JSON text, @file or -
  std::string timeout = "5s";
  std::optional<std::uint64_t> key;
  bool raw = false;
  bool hex = false;
};

// The longest --timeout: a day (longer would overflow the deadline's clock
// arithmetic long before it mattered).
constexpr double kMaxTimeoutMs = 86'400'000;

// "5s", "1.5s", "250ms", "2" (seconds) → milliseconds; nullopt if malformed,
// negative, not finite, or above a day.
std::optional<std::chrono::milliseconds> parse_timeout(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::string unit = text.substr(used);
  double ms = 0;
  if (unit == "ms") {
    ms = value;
  } else if (unit.empty() || unit == "s") {
    ms = value * 1000;
  } else {
    return std::nullopt;
  }
  if (!(ms >= 0 && ms <= kMaxTimeoutMs)) return std::nullopt;  // also NaN and inf
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

struct Input {
  std::string bytes;
  std::string source;  // the file name, for parser errors; empty for an argument
};

// The message as given: the argument, the file after '@', or stdin for '-'.
// Fails (exit 66) when the file cannot be read.
std::optional<Input> read_input(const std::string& arg) {
  if (arg == "-") {
    std::ostringstream all;
    all << std::cin.rdbuf();
    return Input{all.str(), "<stdin>"};
  }
  if (arg.size() > 1 && arg.front() == '@') {
    std::ifstream file(arg.substr(1), std::ios::binary);
    if (!file) {
      std::fprintf(stderr, "shmbus: cannot read %s\n", arg.substr(1).c_str());
      return std::nullopt;
    }
    return Input{std::string(std::istreambuf_iterator<char>(file), {}), arg.substr(1)};
  }
  return Input{arg, ""};
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// What each outcome other than a reply means, for the person at the shell.
std::string describe(Errc outcome, const CallArgs& args) {
  switch (outcome) {
    case Errc::timeout_not_started:
      return "no server of '" + args.service + "' took the call within " + args.timeout +
             " (it was not run and will not be)";
    case Errc::timeout_in_progress:
      return "a server was still running the call after " + args.timeout +
             " (its reply, if any, is dropped)";
    case Errc::server_crashed: return "the server running the call died; it is not run again";
    case Errc::bad_message:
      return "the service refused the message (not of its request type), or its reply is not "
             "of its reply type";
    case Errc::record_too_large:
      return "the message is larger than the service's max_record (or the reply than the "
             "bus's max_reply)";
    case Errc::mailbox_full:
      return "the service's mailbox had no room within " + args.timeout;
    case Errc::too_many_in_flight: return "this process has no free call slot";
    case Errc::bad_options: return "--key given, but the service has no partitions";
    default: return "the service did not reply";
  }
}

int call_failed(Errc outcome, const CallArgs& args) {
  std::fprintf(stderr, "shmbus: call failed: %s: %s\n", to_string(outcome),
               describe(outcome, args).c_str());
  return static_cast<int>(outcome);
}

// Everything a call and a cast share: attach, find the service and its
// schema, turn the input into the message. Returns an exit status on failure.
struct Prepared {
  std::optional<Bus> bus;
  std::optional<Service> service;
  ServiceSchema schema;             // as registered
  std::optional<LoadedSchema> loaded;  // when sending JSON
  std::vector<std::byte> message;
};

std::variant<Prepared, int> prepare(const CallArgs& args) {
  auto timeout = parse_timeout(args.timeout);
  if (!timeout) {
    std::fprintf(stderr,
                 "shmbus: --timeout %s: expected a duration such as 5s, 1.5s or 250ms "
                 "(at most 86400s)\n",
                 args.timeout.c_str());
    return kExitUsage;
  }
  auto input = read_input(args.input);
  if (!input) return kExitNoInput;

  Prepared prepared;
  auto bus = Bus::attach(args.bus, {.label = "shmbus-call"});
  if (!bus) return fail_with(bus.error());
  prepared.bus.emplace(std::move(*bus));
  const std::vector<ServiceInfo> services = prepared.bus->services();
  const auto info = std::find_if(services.begin(), services.end(),
                                 [&](const ServiceInfo& s) { return s.name == args.service; });
  if (info == services.end()) {
    return fail_with({Errc::no_such_service,
                      "bus '" + args.bus + "' has no service '" + args.service + "'"});
  }
  prepared.schema = info->options.schema;

  if (args.raw) {
    const auto bytes = as_bytes(input->bytes);
    prepared.message.assign(bytes.begin(), bytes.end());
  } else if (prepared.schema.request_type.empty()) {
    std::fprintf(stderr,
                 "shmbus: service '%s' has no schema (untyped bytes): send the bytes as they are "
                 "with --raw\n",
                 args.service.c_str());
    return kExitUsage;
  } else if (prepared.schema.path.empty()) {
    return fail_with({Errc::bad_options, "service '" + args.service + "' registered " +
                                             prepared.schema.request_type +
                                             " without the path of its .fbs: send a "
                                             "FlatBuffer with --raw"});
  } else {
    auto loaded = load_schema(prepared.schema.path, prepared.schema.request_type,
                              prepared.schema.reply_type);
    if (!loaded) return fail_with(loaded.error());
    auto message = json_to_message(*loaded->parser, prepared.schema.request_type,
                                   prepared.schema.request_identifier, input->bytes, input->source);
    if (!message) {
      if (message.error().code != Errc::bad_message) return fail_with(message.error());
      std::fprintf(stderr, "shmbus: request JSON does not fit %s: %s\n",
                   prepared.schema.request_type.c_str(), message.error().detail.c_str());
      return kExitData;
    }
    prepared.message = std::move(*message);
    prepared.loaded.emplace(std::move(*loaded));
  }

  auto service = prepared.bus->service(args.service);
  if (!service) return fail_with(service.error());
  prepared.service.emplace(std::move(*service));
  return prepared;
}

void write_hex(std::span<const std::byte> bytes) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    std::printf("%02x%s", static_cast<unsigned>(bytes[i]),
                (i + 1) % 16 == 0 || i + 1 == bytes.size() ? "\n" : " ");
  }
}

int run_call(const CallArgs& args) {
  auto prepared_or_status = prepare(args);
  if (auto* status = std::get_if<int>(&prepared_or_status)) return *status;
  auto& prepared = std::get<Prepared>(prepared_or_status);

  const auto timeout = *parse_timeout(args.timeout);
  auto reply = prepared.service->call(
      std::span<const std::byte>(prepared.message),
      {.deadline = deadline_in(timeout), .mode = WaitMode::spin_then_park, .key = args.key});
  if (!reply) return call_failed(reply.error(), args);

  if (args.raw || !prepared.loaded) {
    if (args.hex) {
      write_hex(reply->payload());
    } else {
      std::fwrite(reply->payload().data(), 1, reply->payload().size(), stdout);
    }
    return 0;
  }
  auto json = message_to_json(*prepared.loaded->parser, prepared.schema.reply_type,
                              prepared.schema.reply_identifier, reply->payload());
  if (!json) {
    std::fprintf(stderr, "shmbus: the reply is not a valid %s: %s\n",
                 prepared.schema.reply_type.c_str(), json.error().detail.c_str());
    return kExitData;
  }
  std::fputs(json->c_str(), stdout);
  return 0;
}

int run_cast(const CallArgs& args) {
  auto prepared_or_status = prepare(args);
  if (auto* status = std::get_if<int>(&prepared_or_status)) return *status;
  auto& prepared = std::get<Prepared>(prepared_or_status);

  const auto timeout = *parse_timeout(args.timeout);
  auto accepted = prepared.service->cast(std::span<const std::byte>(prepared.message),
                                         {.deadline = deadline_in(timeout),
                                          .mode = WaitMode::spin_then_park,
                                          .key = args.key});
  if (!accepted) {
    std::fprintf(stderr, "shmbus: cast failed: %s: %s\n", to_string(accepted.error()),
                 describe(accepted.error(), args).c_str());
    return static_cast<int>(accepted.error());
  }
  std::printf("cast accepted by %s (%zu bytes)\n", args.service.c_str(), prepared.message.size());
  return 0;
}

CLI::App* add_common(CLI::App* sub, CallArgs& args, bool is_call) {
  sub->add_option("bus", args.bus, "the bus's name")->required();
  sub->add_option("service", args.service, "the service's name")->required();
  sub->add_option("message", args.input,
                  "the message as JSON (the service's request type), @FILE, or - for stdin")
      ->required();
  sub->add_option("--timeout", args.timeout,
                  is_call ? "how long to wait for the reply: 5s, 1.5s, 250ms (default 5s)"
                          : "how long to wait for room in the mailbox (default 5s)");
  sub->add_option("--key", args.key, "routing key (services with partitions)");
  sub->add_flag("--raw", args.raw,
                is_call ? "send the input's bytes as they are; write the reply's bytes as they are"
                        : "send the input's bytes as they are");
  return sub;
}

}  // namespace

Command add_call_command(CLI::App& app) {
  auto args = std::make_shared<CallArgs>();
  auto* sub = add_common(
      app.add_subcommand("call", "call a service with a JSON message and print its reply as JSON"),
      *args, true);
  sub->add_flag("--hex", args->hex, "with --raw: write the reply as hex");
  return {sub, [args] { return run_call(*args); }};
}

Command add_cast_command(CLI::App& app) {
  auto args = std::make_shared<CallArgs>();
  auto* sub = add_common(
      app.add_subcommand("cast", "send a service a JSON message without waiting for a reply"),
      *args, false);
  return {sub, [args] { return run_cast(*args); }};
}

}  // namespace shmbus::tools
