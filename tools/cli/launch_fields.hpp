// launch_fields.hpp — reading one TOML table of a launcher config, every
// failure a ConfigError that names the file, line and column.
//
// Internal to launch_config.cpp (toml++ throws, so this reader throws too;
// load_launch_config() catches and returns a Result).
#pragma once

#include <toml++/toml.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shmbus::tools {

// "demo.toml:12:1: [[service]] 'mailer': unknown key 'server' (did you mean 'servers'?)"
struct ConfigError {
  std::string what;
};

// Turns a position and a sentence into a ConfigError for one file.
class Reader {
 public:
  explicit Reader(std::string display_path) : path_(std::move(display_path)) {}
  [[noreturn]] void fail(const toml::source_region& at, const std::string& what,
                         bool with_column = true) const;

 private:
  std::string path_;
};

// One table: unknown keys are refused when it is opened; getters check type
// and range and return nullopt for an absent key.
class Fields {
 public:
  Fields(const Reader& reader, const toml::table& table, std::string context,
         const std::vector<std::string>& known);

  [[nodiscard]] const Reader& reader() const noexcept { return reader_; }
  [[nodiscard]] const std::string& context() const noexcept { return context_; }
  [[nodiscard]] int line() const noexcept { return static_cast<int>(table_.source().begin.line); }

  [[nodiscard]] const toml::node* get(const char* key) const { return table_.get(key); }
  [[nodiscard]] std::optional<std::string> text(const char* key) const;
  [[nodiscard]] std::optional<bool> boolean(const char* key) const;
  [[nodiscard]] std::optional<std::uint64_t> integer(const char* key, std::uint64_t min,
                                                     std::uint64_t max) const;
  [[nodiscard]] std::optional<std::uint64_t> power_of_two(const char* key, std::uint64_t min,
                                                          std::uint64_t max) const;
  // Integer bytes or "N", "NKiB", "NMiB", "NGiB".
  [[nodiscard]] std::optional<std::uint64_t> size(const char* key, std::uint64_t min,
                                                  std::uint64_t max) const;
  // Seconds (integer or float) > 0 and ≤ one day.
  [[nodiscard]] std::optional<std::chrono::milliseconds> seconds(const char* key) const;

  [[nodiscard]] std::string required_text(const char* key) const;
  [[nodiscard]] std::uint64_t required_integer(const char* key, std::uint64_t min,
                                               std::uint64_t max) const;
  [[nodiscard]] std::uint64_t required_size(const char* key, std::uint64_t min,
                                            std::uint64_t max) const;

  // "<context>: <what>" at `at` (or at the table when null).
  [[noreturn]] void fail(const toml::node* at, const std::string& what) const;
  [[noreturn]] void missing(const char* key) const;

 private:
  const Reader& reader_;
  const toml::table& table_;
  std::string context_;
};

}  // namespace shmbus::tools
