// launch_support.hpp — what the launch tests share: a temporary config
// directory, bus presence, the launcher's status value.
#pragma once

#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "shmbus/bus.hpp"
#include "shmbus/schemas/launcher_generated.h"

namespace shmbus::test {

// A temporary directory for a test's config files, removed at the end.
class ConfigDir {
 public:
  ConfigDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "shmbus_launch_XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~ConfigDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ConfigDir(const ConfigDir&) = delete;
  ConfigDir& operator=(const ConfigDir&) = delete;

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  // Writes `text` to `name` in the directory; returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    const std::string file = path_ + "/" + name;
    std::ofstream(file) << text;
    return file;
  }
  [[nodiscard]] std::string read(const std::string& name) const {
    std::ifstream in(path_ + "/" + name);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  std::string path_;
};

[[nodiscard]] inline bool bus_exists(const std::string& name) {
  auto buses = Bus::list();
  return buses && std::find(buses->begin(), buses->end(), name) != buses->end();
}

// The restarts the launcher's status value ("shmbus.launcher") shows for
// `child`, or nullopt when the value or the child is not there.
[[nodiscard]] inline std::optional<std::uint32_t> status_restarts(Bus& bus,
                                                                  const std::string& child) {
  auto state = bus.state();
  if (!state) return std::nullopt;
  auto view = state->get("shmbus.launcher");
  if (!view) return std::nullopt;
  auto status = view->root<launcher::LauncherStatus>("SHLS");
  if (!status || (*status)->children() == nullptr) return std::nullopt;
  for (const auto* row : *(*status)->children()) {
    if (row->name() != nullptr && row->name()->str() == child) return row->restarts();
  }
  return std::nullopt;
}

}  // namespace shmbus::test
