// A global check of the fault suite: no test leaves a /dev/shm file of its
// buses behind (ScopedBus and DetachedBus remove theirs, also on failure).
// Children are reaped by test::Child; their buses are the test's.
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace shmbus::test {
namespace {

class NoShmLeftovers : public ::testing::Environment {
 public:
  void TearDown() override {
    // unique_bus_name() starts with "t<pid>_": only this binary's buses.
    const std::string prefix = "shmbus.t" + std::to_string(::getpid()) + "_";
    std::vector<std::string> left;
    if (DIR* dir = ::opendir("/dev/shm")) {
      while (const dirent* entry = ::readdir(dir)) {
        if (std::string(entry->d_name).rfind(prefix, 0) == 0) left.emplace_back(entry->d_name);
      }
      ::closedir(dir);
    }
    for (const auto& file : left) ADD_FAILURE() << "left behind: /dev/shm/" << file;
  }
};

[[maybe_unused]] auto* const registered = ::testing::AddGlobalTestEnvironment(new NoShmLeftovers);

}  // namespace
}  // namespace shmbus::test
