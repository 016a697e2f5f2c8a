#include "gc.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>

#include "shmbus/bus.hpp"

namespace shmbus::tools {

namespace {

constexpr std::string_view kPrefix = "shmbus.";

// Seconds since the file's status last changed (creation, for a segment).
std::chrono::seconds age_of(const std::string& file) {
  struct stat st {};
  if (::stat(("/dev/shm/" + file).c_str(), &st) != 0) return std::chrono::seconds(0);
  return std::chrono::seconds(std::time(nullptr) - st.st_ctime);
}

bool remove_file(const std::string& file) { return ::unlink(("/dev/shm/" + file).c_str()) == 0; }

}  // namespace

Result<GcReport> collect_stale_buses(bool dry_run, std::chrono::seconds min_age,
                                     const std::vector<std::string>& only) {
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return fail(Errc::system_error, std::string("/dev/shm: ") + std::strerror(errno));
  // bus name -> its segment files (the control segment is "shmbus.<bus>").
  std::map<std::string, std::vector<std::string>> buses;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view file(entry->d_name);
    if (!file.starts_with(kPrefix)) continue;
    const std::string_view rest = file.substr(kPrefix.size());
    buses[std::string(rest.substr(0, rest.find('.')))].emplace_back(file);
  }
  ::closedir(dir);

  GcReport report;
  for (const auto& [bus, files] : buses) {
    if (!only.empty() && std::find(only.begin(), only.end(), bus) == only.end()) continue;
    const std::string control = std::string(kPrefix) + bus;
    bool has_control = false;
    std::chrono::seconds youngest = std::chrono::seconds::max();
    for (const auto& file : files) {
      has_control = has_control || file == control;
      youngest = std::min(youngest, age_of(file));
    }
    if (youngest < min_age) {
      report.kept.push_back("bus '" + bus + "' (created less than " +
                            std::to_string(min_age.count()) + " s ago)");
      continue;
    }
    std::string why;
    if (!has_control) {
      why = "(segments left without a control segment)";
    } else if (auto used = Bus::in_use(bus); used && *used) {
      report.kept.push_back("bus '" + bus + "' (in use)");
      continue;
    } else if (used) {
      why = "(no process attached)";
    } else if (used.error().code == Errc::not_a_segment) {
      why = "(abandoned half-built: " + used.error().detail + ")";
    } else {
      report.kept.push_back("bus '" + bus + "' (" + used.error().message() + ")");
      continue;
    }
    if (!dry_run) {
      for (const auto& file : files) (void)remove_file(file);
    }
    report.removed.push_back("bus '" + bus + "' " + why);
  }
  return report;
}

}  // namespace shmbus::tools
