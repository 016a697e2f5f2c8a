#include "dead_letter_ops.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include <flatbuffers/reflection.h>
#include <fmt/format.h>

#include "shmbus/client.hpp"

namespace shmbus::tools {

namespace {

constexpr std::size_t kAllLetters = std::numeric_limits<std::size_t>::max();
// How long a letter the list shows waiting may take to become ours: a server
// moving a letter in holds the head for an instant.
constexpr auto kTakeTimeout = std::chrono::seconds(2);

std::string hex(std::span<const std::byte> bytes, std::size_t max_bytes) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < max_bytes; ++i) {
    out += fmt::format("{}{:02x}", i == 0 ? "" : " ", static_cast<unsigned>(bytes[i]));
  }
  if (bytes.size() > max_bytes) out += " …";
  return out;
}

std::string hex_dump(std::span<const std::byte> bytes) {
  std::string out;
  for (std::size_t at = 0; at < bytes.size(); at += 16) {
    out += fmt::format("{:08x}  {}\n", at, hex(bytes.subspan(at, std::min<std::size_t>(16, bytes.size() - at)), 16));
  }
  return out;
}

bool has_schema(const ServiceInfo& service) {
  return !service.options.schema.path.empty() && !service.options.schema.request_type.empty();
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

// ---- LetterText ------------------------------------------------------------------------------

LetterText LetterText::for_service(const ServiceInfo& service) {
  LetterText text;
  if (!has_schema(service)) return text;
  const ServiceSchema& s = service.options.schema;
  auto loaded = load_schema(s.path, s.request_type, s.reply_type);
  if (!loaded) {
    text.note_ = "messages shown as hex: " + loaded.error().message();
    return text;
  }
  flatbuffers::Parser& parser = *loaded->parser;
  if (!parser.SetRootType(s.request_type.c_str())) {
    text.note_ = "messages shown as hex: no root type " + s.request_type;
    return text;
  }
  // The binary schema drives the reflection verifier: bytes another process
  // wrote are verified before GenerateText reads them.
  parser.Serialize();
  const std::uint8_t* bfbs = parser.builder_.GetBufferPointer();
  text.reflection_.assign(bfbs, bfbs + parser.builder_.GetSize());
  text.schema_ = std::make_shared<LoadedSchema>(std::move(*loaded));
  return text;
}

std::optional<std::string> LetterText::json(std::span<const std::byte> bytes, int indent) const {
  if (!schema_ || bytes.empty()) return std::nullopt;
  // A private, aligned copy: the verifier checks alignment, and nothing changes it meanwhile.
  std::vector<std::uint64_t> words((bytes.size() + 7) / 8);
  std::memcpy(words.data(), bytes.data(), bytes.size());
  const auto* data = reinterpret_cast<const std::uint8_t*>(words.data());
  const auto& id = schema_->request_identifier;
  if (id[0] != 0 && (bytes.size() < 8 || std::memcmp(data + 4, id.data(), 4) != 0)) return std::nullopt;
  const reflection::Schema* schema = reflection::GetSchema(reflection_.data());
  if (schema->root_table() == nullptr ||
      !flatbuffers::Verify(*schema, *schema->root_table(), data, bytes.size())) {
    return std::nullopt;
  }
  flatbuffers::Parser& parser = *schema_->parser;
  parser.opts.indent_step = indent;
  std::string out;
  if (!flatbuffers::GenerateText(parser, data, &out)) return std::nullopt;
  return trimmed(std::move(out));
}

std::string LetterText::preview(std::span<const std::byte> bytes, std::size_t width) const {
  if (auto text = json(bytes, -1)) {
    return text->size() <= width ? *text : text->substr(0, width > 1 ? width - 1 : 0) + "…";
  }
  return bytes.empty() ? "(empty)" : "hex " + hex(bytes, width / 3 > 4 ? width / 3 - 2 : 4);
}

std::string LetterText::full(std::span<const std::byte> bytes) const {
  if (auto text = json(bytes, 2)) return *text + "\n";
  return hex_dump(bytes);
}

// ---- list and show ---------------------------------------------------------------------------

Outcome<ServiceInfo> find_service(const Bus& bus, std::string_view name) {
  for (auto& info : bus.services()) {
    if (info.name == name) return std::move(info);
  }
  return tl::unexpected(failure_of(
      {Errc::no_such_service, "no service '" + std::string(name) + "' on bus '" + bus.name() + "'"}));
}

namespace {

std::string size_text(const PeekedRecord& letter) {
  if (letter.info.loaned && letter.info.ref_error != Errc{}) {
    return fmt::format("loan:{}", to_string(letter.info.ref_error));
  }
  return std::to_string(letter.payload.size());
}

}  // namespace

std::string render_letter_list(const std::vector<PeekedRecord>& letters, const LetterText& text) {
  std::string out = fmt::format("{:>8}  {:>10}  {:>8}  {}\n", "ID", "DELIVERIES", "SIZE", "MESSAGE");
  for (const auto& letter : letters) {
    std::string preview = text.preview(letter.payload, 60);
    if (letter.in_flight) preview = "(being requeued or dropped) " + preview;
    out += fmt::format("{:>8}  {:>10}  {:>8}  {}\n", letter.info.position, letter.info.correlation,
                       size_text(letter), preview);
  }
  return out;
}

std::string render_letter(const PeekedRecord& letter, const LetterText& text) {
  std::string out = fmt::format("dead letter {}: {} deliveries, {} bytes{}{}\n", letter.info.position,
                                letter.info.correlation, size_text(letter), letter.info.loaned ? ", loaned" : "",
                                letter.in_flight ? ", being requeued or dropped" : "");
  return out + text.full(letter.payload);
}

// ---- requeue and drop ------------------------------------------------------------------------

namespace {

// The oldest letter no live receiver holds, if any.
Outcome<std::optional<PeekedRecord>> oldest_waiting(Bus& bus, const std::string& service) {
  auto letters = bus.peek_dead_letters(service, kAllLetters);
  if (!letters) return tl::unexpected(failure_of(letters.error()));
  for (auto& letter : *letters) {
    if (!letter.in_flight) return std::optional<PeekedRecord>(std::move(letter));
  }
  return std::optional<PeekedRecord>();
}

// Takes the oldest letter: first one a dead tool held (recover), else the
// head; try_receive also hands out a letter our entry inherited.
Expected<Delivery> take_oldest(Receiver& receiver) {
  const Deadline give_up = deadline_in(kTakeTimeout);
  for (;;) {
    if (auto delivery = receiver.recover()) return delivery;
    if (auto delivery = receiver.try_receive()) return delivery;
    if (Clock::now() >= give_up) return tl::unexpected(Errc::empty);
    receiver.wait_until_ready(deadline_in(std::chrono::milliseconds(10)));
  }
}

// Ends the tool while it holds `delivery`. A taken record cannot be put back,
// and releasing it would drop it: a process that ends holding a record is what
// the ring's crash path handles (layout/ring.hpp), so the next receiver of
// the list takes it over, first in line. Nothing is lost; the list counts it
// again once it was taken over.
[[noreturn]] void exit_keeping(const Delivery& delivery, int status, const std::string& why) {
  std::fflush(stdout);
  std::fprintf(stderr, "shmbus: %s; dead letter %llu stays in the list, first in line\n", why.c_str(),
               static_cast<unsigned long long>(delivery.info().position));
  std::fflush(stderr);
  std::_Exit(status);
}

// Casts a copy of `payload` to the service: in the ring, or as a loan when
// it is larger than the service's max_record.
Expected<void> cast_copy(Bus& bus, Service& service, const ServiceInfo& info,
                         std::span<const std::byte> payload, Deadline deadline) {
  if (payload.size() <= info.options.max_record) return service.cast(payload, {.deadline = deadline});
  auto loan = bus.loan(payload.size(), {.deadline = deadline});
  if (!loan) return tl::unexpected(loan.error());
  std::memcpy(loan->bytes().data(), payload.data(), payload.size());
  if (auto sized = loan->set_payload(0, payload.size()); !sized) return sized;
  return service.cast(std::move(*loan), {.deadline = deadline});
}

}  // namespace

namespace {

// One run of requeue or drop: the letters up to `last`, oldest first.
class Drain {
 public:
  Drain(Bus& bus, const ServiceInfo& info, const DrainOptions& options, std::uint64_t last,
        std::optional<Service> service, Receiver receiver)
      : bus_(bus), info_(info), options_(options), last_(last), service_(std::move(service)),
        receiver_(std::move(receiver)) {}

  Outcome<std::uint64_t> run() {
    std::uint64_t handled = 0;
    for (;;) {
      auto next = oldest_waiting(bus_, info_.name);
      if (!next) return tl::unexpected(next.error());
      if (!*next || (*next)->info.position > last_) return handled;
      if (auto done = handle(**next); !done) return tl::unexpected(done.error());
      ++handled;
    }
  }

 private:
  // Requeue casts the listed copy first, and takes the letter from the list
  // only once the service accepted it: a cast that fails leaves the list as
  // it was, and a tool killed in between leaves a duplicate, never a loss.
  Outcome<void> handle(const PeekedRecord& listed) {
    if (options_.requeue) {
      if (listed.info.ref_error != Errc{}) {
        return tl::unexpected(failure_of({listed.info.ref_error,
            fmt::format("dead letter {} is a loan that does not resolve; it cannot be requeued (drop it)",
                        listed.info.position)}));
      }
      if (auto cast = cast_back(listed.payload); !cast) {
        return tl::unexpected(failure_of({cast.error(),
            fmt::format("cannot cast dead letter {} back to {} (it stays in the list)", listed.info.position,
                        info_.name)}));
      }
    }
    auto delivery = take_oldest(receiver_);
    if (!delivery) {
      return tl::unexpected(failure_of({Errc::empty, fmt::format("dead letter {} could not be taken in {} s",
                                                                 listed.info.position, kTakeTimeout.count())}));
    }
    if (delivery->info().position != listed.info.position) settle_other(*delivery, listed);
    const RecordInfo letter = delivery->info();
    const std::size_t size = delivery->payload().size();
    delivery->done();  // a requeued letter is in the service's mailbox already
    std::printf("%s %llu (%zu bytes, %llu deliveries)\n", options_.requeue ? "requeued" : "dropped",
                static_cast<unsigned long long>(letter.position), size,
                static_cast<unsigned long long>(letter.correlation));
    return {};
  }

  // Another receiver of the list (a second tool) took the listed letter
  // meanwhile and we got another one: handle it as ours if it is in range
  // (the listed one, if requeued, now exists twice: at least once), else
  // leave it in the list.
  void settle_other(const Delivery& delivery, const PeekedRecord& listed) {
    const std::uint64_t got = delivery.info().position;
    if (got > last_) {
      exit_keeping(delivery, static_cast<int>(Errc::too_many_consumers),
                   fmt::format("another receiver took dead letter {} meanwhile", listed.info.position));
    }
    if (!options_.requeue) return;
    if (delivery.info().loaned && delivery.info().ref_error != Errc{}) {
      exit_keeping(delivery, static_cast<int>(delivery.info().ref_error), "its loan no longer resolves");
    }
    if (auto cast = cast_back(delivery.payload()); !cast) {
      exit_keeping(delivery, static_cast<int>(cast.error()),
                   std::string("cannot cast it back to ") + info_.name + ": " + to_string(cast.error()));
    }
  }

  Expected<void> cast_back(std::span<const std::byte> payload) {
    return cast_copy(bus_, *service_, info_, payload, deadline_in(options_.room_wait));
  }

  Bus& bus_;
  const ServiceInfo& info_;
  const DrainOptions& options_;
  std::uint64_t last_;
  std::optional<Service> service_;
  Receiver receiver_;
};

}  // namespace

Outcome<std::uint64_t> drain_dead_letters(Bus& bus, const ServiceInfo& info, const DrainOptions& options) {
  auto listed = bus.peek_dead_letters(info.name, kAllLetters);
  if (!listed) return tl::unexpected(failure_of(listed.error()));
  std::optional<std::uint64_t> last = options.upto;
  if (!last && !listed->empty()) last = listed->back().info.position;
  if (!last) return 0;
  std::optional<Service> service;
  if (options.requeue) {
    auto found = bus.service(info.name);
    if (!found) return tl::unexpected(failure_of(found.error()));
    service.emplace(std::move(*found));
  }
  auto receiver = bus.dead_letters(info.name);
  if (!receiver) return tl::unexpected(failure_of(receiver.error()));
  return Drain(bus, info, options, *last, std::move(service), std::move(*receiver)).run();
}

}  // namespace shmbus::tools
