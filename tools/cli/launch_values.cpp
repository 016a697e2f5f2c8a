// launch_values.cpp — sizes, ${VAR}, program and schema look-ups for launch_config.cpp.
#include "launch_values.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "schema_files.hpp"

namespace shmbus::tools {

namespace {

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    const std::size_t end = std::min(text.find(separator, begin), text.size());
    if (end > begin) parts.emplace_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return parts;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t value = 0;
  std::size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    const std::uint64_t digit = static_cast<std::uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  if (i == 0) return std::nullopt;
  const std::string_view unit = text.substr(i);
  int shift = 0;
  if (unit == "KiB") {
    shift = 10;
  } else if (unit == "MiB") {
    shift = 20;
  } else if (unit == "GiB") {
    shift = 30;
  } else if (!unit.empty()) {
    return std::nullopt;
  }
  if (value > (std::numeric_limits<std::uint64_t>::max() >> shift)) return std::nullopt;
  return value << shift;
}

std::optional<std::string> expand_vars(std::string_view text, const std::string& config_dir,
                                       std::string& unknown) {
  std::string out;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t open = text.find("${", at);
    if (open == std::string_view::npos) break;
    out.append(text.substr(at, open - at));
    const std::size_t close = text.find('}', open + 2);
    if (close == std::string_view::npos) {
      unknown = std::string(text.substr(open));
      return std::nullopt;
    }
    const std::string name(text.substr(open + 2, close - open - 2));
    if (name == "CONFIG_DIR") {
      out += config_dir;
    } else if (const char* value = std::getenv(name.c_str()); value != nullptr) {
      out += value;
    } else {
      unknown = name;
      return std::nullopt;
    }
    at = close + 1;
  }
  out.append(text.substr(std::min(at, text.size())));
  return out;
}

std::string self_exe_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

std::optional<std::string> find_program(const std::string& program, const std::string& config_dir) {
  if (program.empty()) return std::nullopt;
  if (program.find('/') != std::string::npos) {
    const std::string path = program.front() == '/' ? program : config_dir + "/" + program;
    if (!is_executable_file(path)) return std::nullopt;
    return std::filesystem::path(path).lexically_normal().string();
  }
  std::vector<std::string> dirs;
  if (const std::string own = self_exe_dir(); !own.empty()) dirs.push_back(own);
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    for (auto& dir : split(path, ':')) dirs.push_back(std::move(dir));
  }
  for (const auto& dir : dirs) {
    const std::string candidate = dir + "/" + program;
    if (is_executable_file(candidate)) return candidate;
  }
  return std::nullopt;
}

std::optional<SchemaLocation> locate_schema_file(const std::string& path,
                                                 const std::string& config_dir) {
  if (path.empty()) return std::nullopt;
  if (path.front() == '/') {
    if (!is_file(path)) return std::nullopt;
    return SchemaLocation{path, false};
  }
  for (const auto& dir : schema_search_path()) {
    const auto candidate = dir / path;
    if (is_file(candidate.string()))
      return SchemaLocation{candidate.lexically_normal().string(), true};
  }
  const std::string beside = config_dir + "/" + path;
  if (!is_file(beside)) return std::nullopt;
  return SchemaLocation{std::filesystem::path(beside).lexically_normal().string(), false};
}

std::string nearest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = 3;
  for (const auto& candidate : candidates) {
    std::size_t distance = edit_distance(word, candidate);
    if (distance >= best_distance && word.size() >= 3 && candidate.starts_with(word)) distance = 2;
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

}  // namespace shmbus::tools
