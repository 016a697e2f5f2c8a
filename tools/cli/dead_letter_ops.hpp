// dead_letter_ops.hpp — what `shmbus dead-letters` does, apart from parsing:
// list and show a service's dead letters without taking them
// (Bus::peek_dead_letters), and requeue or drop them oldest first.
//
// A letter's ID is its position in the service's dead-letter ring: stable
// while it waits, and growing with every letter, so "--upto ID" names the
// letters listed up to and including that line.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "schema_files.hpp"
#include "shmbus/bus.hpp"
#include "state_transfer.hpp"  // ToolFailure, Outcome

namespace shmbus::tools {

// Turns a letter's bytes into text: JSON when the service registered a
// schema that loads and the bytes verify as its request type, else hex.
class LetterText {
 public:
  // For `service` (its registered schema, if any). Never fails: a schema that
  // does not load leaves hex, and note() says why.
  static LetterText for_service(const ServiceInfo& service);

  // One line: compact JSON or the first bytes in hex, at most ~`width` chars.
  [[nodiscard]] std::string preview(std::span<const std::byte> bytes, std::size_t width) const;
  // The whole message: indented JSON, or a hex dump (16 bytes a line).
  [[nodiscard]] std::string full(std::span<const std::byte> bytes) const;
  // Why messages show as hex although the service has a schema ("" if not).
  [[nodiscard]] const std::string& note() const noexcept { return note_; }

 private:
  // JSON of `bytes` if they verify as the request type; nullopt otherwise.
  [[nodiscard]] std::optional<std::string> json(std::span<const std::byte> bytes, int indent) const;

  std::shared_ptr<LoadedSchema> schema_;  // null: hex only
  std::vector<std::uint8_t> reflection_;  // the schema as a binary schema, for the verifier
  std::string note_;
};

// The service's entry in the registry, or no_such_service.
[[nodiscard]] Outcome<ServiceInfo> find_service(const Bus& bus, std::string_view name);

// `dead-letters BUS SERVICE`: one line per letter, oldest first.
[[nodiscard]] std::string render_letter_list(const std::vector<PeekedRecord>& letters,
                                             const LetterText& text);
// `dead-letters show`: the header line and the whole message.
[[nodiscard]] std::string render_letter(const PeekedRecord& letter, const LetterText& text);

struct DrainOptions {
  bool requeue = false;                 // cast each letter back; else drop it
  std::optional<std::uint64_t> upto{};  // the last ID to take; unset: all listed now
  std::chrono::milliseconds room_wait{5000};  // how long a requeue waits for room in the mailbox
};

// drain_dead_letters()
//
// Takes the service's letters oldest first, up to `options.upto` (or up to
// the newest letter listed when it starts: letters that arrive meanwhile,
// e.g. a requeued letter that killed its server again, wait for the next
// run). Requeue casts each letter's listed copy back to the service (a loan
// when it is above the service's max_record) and only then takes it from
// the list: at least once — a tool killed in between leaves a duplicate,
// never a loss. Drop takes it and lets it go. Prints one line per letter on
// stdout; returns how many it handled. A cast refused (mailbox_full after
// room_wait, record_too_large, pool_exhausted…) stops the run with that
// Errc, the letter still first in the list. A second tool taking letters of
// the same list at once: see Drain::settle_other in dead_letter_ops.cpp.
[[nodiscard]] Outcome<std::uint64_t> drain_dead_letters(Bus& bus, const ServiceInfo& service,
                                                        const DrainOptions& options);

}  // namespace shmbus::tools
