// launch_fields.cpp — typed, range-checked reads of one TOML table.
#include "launch_fields.hpp"

#include <algorithm>
#include <cmath>

#include "launch_values.hpp"

namespace shmbus::tools {

namespace {

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

std::string size_text(std::uint64_t bytes) {
  if (bytes >= (1u << 30) && bytes % (1u << 30) == 0) return std::to_string(bytes >> 30) + " GiB";
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " B";
}

}  // namespace

void Reader::fail(const toml::source_region& at, const std::string& what, bool with_column) const {
  std::string where = path_ + ":" + std::to_string(at.begin.line == 0 ? 1 : at.begin.line);
  if (with_column && at.begin.column != 0) where += ":" + std::to_string(at.begin.column);
  throw ConfigError{where + ": " + what};
}

Fields::Fields(const Reader& reader, const toml::table& table, std::string context,
               const std::vector<std::string>& known)
    : reader_(reader), table_(table), context_(std::move(context)) {
  for (auto&& [key, value] : table_) {
    const std::string name(key.str());
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string what = "unknown key '" + name + "'";
    if (const std::string close = nearest(name, known); !close.empty()) {
      what += " (did you mean '" + close + "'?)";
    }
    const toml::source_region& at = key.source().begin.line != 0 ? key.source() : value.source();
    reader_.fail(at, context_.empty() ? what : context_ + ": " + what);
  }
}

void Fields::fail(const toml::node* at, const std::string& what) const {
  reader_.fail(at != nullptr ? at->source() : table_.source(),
               context_.empty() ? what : context_ + ": " + what, at != nullptr);
}

void Fields::missing(const char* key) const {
  fail(nullptr, std::string("missing required field '") + key + "'");
}

std::optional<std::string> Fields::text(const char* key) const {
  const toml::node* node = get(key);
  if (node == nullptr) return std::nullopt;
  const auto* value = node->as_string();
  if (value == nullptr) fail(node, std::string(key) + " must be a string, not " + type_name(*node));
  return value->get();
}

std::optional<bool> Fields::boolean(const char* key) const {
  const toml::node* node = get(key);
  if (node == nullptr) return std::nullopt;
  const auto* value = node->as_boolean();
  if (value == nullptr)
    fail(node, std::string(key) + " must be true or false, not " + type_name(*node));
  return value->get();
}

std::optional<std::uint64_t> Fields::integer(const char* key, std::uint64_t min,
                                             std::uint64_t max) const {
  const toml::node* node = get(key);
  if (node == nullptr) return std::nullopt;
  const auto* value = node->as_integer();
  if (value == nullptr)
    fail(node, std::string(key) + " must be an integer, not " + type_name(*node));
  const std::int64_t n = value->get();
  if (n < 0 || static_cast<std::uint64_t>(n) < min || static_cast<std::uint64_t>(n) > max) {
    fail(node, std::string(key) + " must be in " + std::to_string(min) + " … " +
                   std::to_string(max) + ", not " + std::to_string(n));
  }
  return static_cast<std::uint64_t>(n);
}

std::optional<std::uint64_t> Fields::power_of_two(const char* key, std::uint64_t min,
                                                  std::uint64_t max) const {
  const auto n = integer(key, min, max);
  if (n && (*n & (*n - 1)) != 0) {
    fail(get(key), std::string(key) + " must be a power of two (" + std::to_string(min) + " … " +
                       std::to_string(max) + "), not " + std::to_string(*n));
  }
  return n;
}

std::optional<std::uint64_t> Fields::size(const char* key, std::uint64_t min,
                                          std::uint64_t max) const {
  const toml::node* node = get(key);
  if (node == nullptr) return std::nullopt;
  std::optional<std::uint64_t> bytes;
  if (const auto* number = node->as_integer(); number != nullptr && number->get() >= 0) {
    bytes = static_cast<std::uint64_t>(number->get());
  } else if (const auto* text = node->as_string()) {
    bytes = parse_size(text->get());
  }
  if (!bytes) {
    fail(node, std::string(key) +
                   " must be a size: integer bytes or \"N\", \"NKiB\", \"NMiB\", \"NGiB\"");
  }
  if (*bytes < min || *bytes > max) {
    fail(node, std::string(key) + " must be in " + size_text(min) + " … " + size_text(max) +
                   ", not " + size_text(*bytes));
  }
  return bytes;
}

std::optional<std::chrono::milliseconds> Fields::seconds(const char* key) const {
  const toml::node* node = get(key);
  if (node == nullptr) return std::nullopt;
  double value = -1;
  if (const auto* number = node->as_integer()) {
    value = static_cast<double>(number->get());
  } else if (const auto* real = node->as_floating_point()) {
    value = real->get();
  } else {
    fail(node, std::string(key) + " must be a number of seconds, not " + type_name(*node));
  }
  if (!(value > 0 && value <= 86400)) {
    fail(node, std::string(key) + " must be seconds in (0, 86400]");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(value * 1000)));
}

std::string Fields::required_text(const char* key) const {
  auto value = text(key);
  if (!value) missing(key);
  return *value;
}

std::uint64_t Fields::required_integer(const char* key, std::uint64_t min,
                                       std::uint64_t max) const {
  auto value = integer(key, min, max);
  if (!value) missing(key);
  return *value;
}

std::uint64_t Fields::required_size(const char* key, std::uint64_t min, std::uint64_t max) const {
  auto value = size(key, min, max);
  if (!value) missing(key);
  return *value;
}

}  // namespace shmbus::tools
