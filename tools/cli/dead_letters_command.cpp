// shmbus dead-letters — a service's dead letters (casts that killed
// max_deliveries servers) from the shell:
//
//   shmbus dead-letters BUS SERVICE                  list: ID, deliveries, size, message
//   shmbus dead-letters show BUS SERVICE ID          the whole message (JSON or hex)
//   shmbus dead-letters requeue BUS SERVICE (--all | --upto ID)
//   shmbus dead-letters drop BUS SERVICE (--all | --upto ID)
//
// Listing takes nothing (Bus::peek_dead_letters). Requeue and drop work from
// the oldest letter on. The logic lives in dead_letter_ops.cpp.
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "command.hpp"
#include "dead_letter_ops.hpp"
#include "shmbus/bus.hpp"

namespace shmbus::tools {

namespace {

struct LetterOptions {
  std::string bus, service;
  std::uint64_t id = 0;
  bool all = false;
  std::optional<std::uint64_t> upto;
  long wait_ms = 5000;
};

struct Target {
  Bus bus;
  ServiceInfo service;
};

Outcome<Target> open_target(const LetterOptions& o) {
  auto bus = Bus::attach(o.bus, {.label = "shmbus dead-letters"});
  if (!bus) return tl::unexpected(failure_of(bus.error()));
  auto service = find_service(*bus, o.service);
  if (!service) return tl::unexpected(service.error());
  return Target{std::move(*bus), std::move(*service)};
}

Outcome<std::vector<PeekedRecord>> letters_of(Target& target) {
  auto letters = target.bus.peek_dead_letters(target.service.name, static_cast<std::size_t>(-1));
  if (!letters) return tl::unexpected(failure_of(letters.error()));
  return std::move(*letters);
}

int run_list(const LetterOptions& o) {
  if (o.bus.empty() || o.service.empty()) {
    std::fprintf(stderr, "shmbus: dead-letters needs BUS and SERVICE (see --help)\n");
    return kExitUsage;
  }
  auto target = open_target(o);
  if (!target) return report_failure(target.error());
  auto letters = letters_of(*target);
  if (!letters) return report_failure(letters.error());
  if (letters->empty()) {
    std::printf("no dead letters for %s\n", o.service.c_str());
    return 0;
  }
  const LetterText text = LetterText::for_service(target->service);
  if (!text.note().empty()) std::fprintf(stderr, "shmbus: %s\n", text.note().c_str());
  std::fputs(render_letter_list(*letters, text).c_str(), stdout);
  return 0;
}

int run_show(const LetterOptions& o) {
  auto target = open_target(o);
  if (!target) return report_failure(target.error());
  auto letters = letters_of(*target);
  if (!letters) return report_failure(letters.error());
  for (const auto& letter : *letters) {
    if (letter.info.position != o.id) continue;
    const LetterText text = LetterText::for_service(target->service);
    if (!text.note().empty()) std::fprintf(stderr, "shmbus: %s\n", text.note().c_str());
    std::fputs(render_letter(letter, text).c_str(), stdout);
    return 0;
  }
  return fail_with({Errc::empty, "no dead letter " + std::to_string(o.id) + " for " + o.service});
}

int run_drain(const LetterOptions& o, bool requeue) {
  if (o.all == o.upto.has_value()) {
    std::fprintf(stderr, "shmbus: give exactly one of --all and --upto ID\n");
    return kExitUsage;
  }
  auto target = open_target(o);
  if (!target) return report_failure(target.error());
  const DrainOptions options{requeue, o.upto, std::chrono::milliseconds(o.wait_ms)};
  auto handled = drain_dead_letters(target->bus, target->service, options);
  if (!handled) return report_failure(handled.error());
  std::printf("%s %llu dead letter%s of %s\n", requeue ? "requeued" : "dropped",
              static_cast<unsigned long long>(*handled), *handled == 1 ? "" : "s", o.service.c_str());
  return 0;
}

void add_target(CLI::App* sub, LetterOptions& o) {
  sub->add_option("bus", o.bus, "the bus name")->required();
  sub->add_option("service", o.service, "the service name")->required();
}

void add_range(CLI::App* sub, LetterOptions& o) {
  auto* all = sub->add_flag("--all", o.all, "every letter listed now (letters that arrive meanwhile wait)");
  auto* upto = sub->add_option("--upto", o.upto, "the letters up to and including this ID");
  all->excludes(upto);
}

}  // namespace

Command add_dead_letters_command(CLI::App& app) {
  auto o = std::make_shared<LetterOptions>();
  auto* letters = app.add_subcommand(
      "dead-letters",
      "List, show, requeue or drop a service's dead letters (casts that killed max_deliveries servers). "
      "`dead-letters BUS SERVICE` lists them without taking any: ID (position in the list), "
      "deliveries, size, the message as JSON (when the service registered a schema) or hex");
  letters->add_option("bus", o->bus, "the bus name");
  letters->add_option("service", o->service, "the service name");

  auto* list = letters->add_subcommand("list", "List the letters (the same as without a subcommand)");
  add_target(list, *o);
  auto* show = letters->add_subcommand("show", "Print one letter's whole message (JSON or hex)");
  add_target(show, *o);
  show->add_option("id", o->id, "the letter's ID, as listed")->required();
  auto* requeue = letters->add_subcommand(
      "requeue",
      "Cast letters back to the service, oldest first; each is removed from the list only after its "
      "cast was accepted (at least once: a tool killed in between leaves a duplicate, never a loss). "
      "A letter that cannot be cast back stops the run and stays first in line");
  add_target(requeue, *o);
  add_range(requeue, *o);
  // At most a day: a larger wait would overflow the deadline into the past.
  requeue->add_option("--wait-ms", o->wait_ms, "how long to wait for room in the service's mailbox")
      ->check(CLI::Range(0L, 86'400'000L));
  auto* drop = letters->add_subcommand("drop", "Discard letters, oldest first");
  add_target(drop, *o);
  add_range(drop, *o);

  return {letters, [o, show, requeue, drop] {
            if (show->parsed()) return run_show(*o);
            if (requeue->parsed()) return run_drain(*o, true);
            if (drop->parsed()) return run_drain(*o, false);
            return run_list(*o);
          }};
}

}  // namespace shmbus::tools
