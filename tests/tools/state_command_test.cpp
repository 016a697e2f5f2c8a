// shmbus state put|get|ls|rm, run as a user runs them; a separate worker
// process reads what the tool put.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/state_pattern.hpp"
#include "support/wait_until.hpp"
#include "tools/tool_run.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A directory for the test's files, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "shmbus-state-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void write_file(const std::string& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* data = reinterpret_cast<const std::byte*>(text.data());
  return {data, data + text.size()};
}

// Every byte value, zeros and newlines included, in a non-repeating order.
std::vector<std::byte> binary_bytes(std::size_t n) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 131 + i / 256) & 0xff);
  return out;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

#define SKIP_WITHOUT_TOOL() \
  if (std::string(SHMBUS_CLI).empty()) GTEST_SKIP() << "built without the shmbus tool"

TEST(StateCommand, PutOfALargeFileShowsProgressAndAWorkerProcessReadsEveryByte) {
  SKIP_WITHOUT_TOOL();
  auto bus = test::ScopedBus::create({.state_capacity = 128u << 20});
  TempDir dir;
  constexpr std::size_t kSize = 64u << 20;
  constexpr std::uint64_t kSeed = 7;
  {
    std::vector<std::byte> value(kSize);
    test::fill_pattern(value, kSeed);
    write_file(dir.file("big.bin"), value);
  }
  const auto put = test::run_tool({"state", "put", bus.name(), "big", dir.file("big.bin"), "--progress"}, 60s);
  ASSERT_EQ(put.status, 0) << put.out;
  EXPECT_NE(put.out.find("100.0%"), std::string::npos) << put.out;
  EXPECT_GE(count_of(put.out, "%"), 2u) << "no progress step before 100%: " << put.out;
  EXPECT_NE(put.out.find("MiB/s"), std::string::npos) << put.out;
  EXPECT_NE(put.out.find("put big: 67108864 bytes, version "), std::string::npos) << put.out;

  test::Child worker = test::Child::spawn(
      "tools_state_check", {"--bus", bus.name(), "--key", "big", "--size", std::to_string(kSize),
                            "--seed", std::to_string(kSeed)});
  EXPECT_EQ(worker.wait(30s), 0) << worker.output();
  EXPECT_TRUE(worker.printed("checked 67108864 bytes")) << worker.output();
}

TEST(StateCommand, GetRoundTripsABinaryValueToAFileAndToStandardOutput) {
  SKIP_WITHOUT_TOOL();
  auto bus = test::ScopedBus::create();
  TempDir dir;
  const std::vector<std::byte> value = binary_bytes(100'003);
  write_file(dir.file("in.bin"), value);
  const auto put = test::run_tool({"state", "put", bus.name(), "blob", dir.file("in.bin")});
  ASSERT_EQ(put.status, 0) << put.out;
  EXPECT_NE(put.out.find("100.0%"), std::string::npos) << "no final line without a terminal: " << put.out;

  const auto get = test::run_tool({"state", "get", bus.name(), "blob", "-o", dir.file("out.bin")});
  ASSERT_EQ(get.status, 0) << get.out;
  EXPECT_TRUE(read_file(dir.file("out.bin")) == value);

  // Read while it writes: 100 kB do not fit in a pipe.
  test::Child to_stdout = test::Child::exec(SHMBUS_CLI, {"state", "get", bus.name(), "blob"});
  EXPECT_TRUE(test::wait_until(30s, [&] { return to_stdout.output().size() >= value.size(); }))
      << to_stdout.output().size() << " bytes of " << value.size();
  ASSERT_EQ(to_stdout.wait(30s), 0);
  const std::string& out = to_stdout.output();
  const auto* data = reinterpret_cast<const std::byte*>(out.data());
  EXPECT_TRUE(std::vector<std::byte>(data, data + out.size()) == value) << out.size() << " bytes";

  const auto missing = test::run_tool({"state", "get", bus.name(), "nothing"});
  EXPECT_EQ(missing.status, static_cast<int>(Errc::no_such_key)) << missing.out;
}

TEST(StateCommand, LsShowsKeysSizesAndUsageAndRmRemovesOnce) {
  SKIP_WITHOUT_TOOL();
  auto bus = test::ScopedBus::create();
  TempDir dir;
  write_file(dir.file("v"), binary_bytes(4096));
  ASSERT_EQ(test::run_tool({"state", "put", bus.name(), "routes", dir.file("v")}).status, 0);

  const auto ls = test::run_tool({"state", "ls", bus.name()});
  ASSERT_EQ(ls.status, 0) << ls.out;
  EXPECT_NE(ls.out.find("routes"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("4096"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("capacity 8388608 bytes"), std::string::npos) << ls.out;
  const auto json = test::run_tool({"state", "ls", bus.name(), "--json"});
  ASSERT_EQ(json.status, 0) << json.out;
  EXPECT_NE(json.out.find(R"({"key":"routes","size":4096,"version":)"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find(R"("capacity":8388608)"), std::string::npos) << json.out;

  const auto rm = test::run_tool({"state", "rm", bus.name(), "routes"});
  EXPECT_EQ(rm.status, 0) << rm.out;
  EXPECT_EQ(bus->state().value().list().size(), 0u);
  const auto again = test::run_tool({"state", "rm", bus.name(), "routes"});
  EXPECT_EQ(again.status, static_cast<int>(Errc::no_such_key)) << again.out;
  EXPECT_NE(again.out.find("no_such_key"), std::string::npos) << again.out;
}

TEST(StateCommand, PutOfAFileThatCannotBeReadExits66AndPublishesNothing) {
  SKIP_WITHOUT_TOOL();
  auto bus = test::ScopedBus::create();
  TempDir dir;
  const auto missing = test::run_tool({"state", "put", bus.name(), "k", dir.file("no-such-file")});
  EXPECT_EQ(missing.status, 66) << missing.out;
  EXPECT_NE(missing.out.find("cannot open"), std::string::npos) << missing.out;
  const auto directory = test::run_tool({"state", "put", bus.name(), "k", dir.file("")});
  EXPECT_EQ(directory.status, 66) << directory.out;
  // A file shorter than its size (sysfs says 4096 bytes, gives a few): the
  // reserved value is aborted.
  if (fs::exists("/sys/devices/system/cpu/online")) {
    const auto shorter = test::run_tool({"state", "put", bus.name(), "k", "/sys/devices/system/cpu/online"});
    EXPECT_EQ(shorter.status, 66) << shorter.out;
    EXPECT_NE(shorter.out.find("it shrank while read"), std::string::npos) << shorter.out;
  }
  // A read error (no page at address 0).
  const auto unreadable = test::run_tool({"state", "put", bus.name(), "k", "/proc/self/mem"});
  EXPECT_EQ(unreadable.status, 66) << unreadable.out;
  auto state = bus->state().value();
  EXPECT_TRUE(state.list().empty());
  EXPECT_EQ(state.usage().writing, 0u);
  EXPECT_EQ(state.usage().puts, 0u);
  EXPECT_EQ(state.usage().free_bytes, state.usage().capacity);
}

TEST(StateCommand, PutBeyondTheCapacityFailsWithStateFullAndItsDetail) {
  SKIP_WITHOUT_TOOL();
  auto bus = test::ScopedBus::create({.state_capacity = 1u << 20});
  TempDir dir;
  write_file(dir.file("v"), binary_bytes(700'000));
  ASSERT_EQ(test::run_tool({"state", "put", bus.name(), "a", dir.file("v")}).status, 0);
  const auto full = test::run_tool({"state", "put", bus.name(), "b", dir.file("v")});
  EXPECT_EQ(full.status, static_cast<int>(Errc::state_full)) << full.out;
  EXPECT_NE(full.out.find("state_full"), std::string::npos) << full.out;
  EXPECT_EQ(bus->state().value().list().size(), 1u);
  // An endless stream is read up to about the capacity, not into all memory.
  const auto endless = test::run_tool({"state", "put", bus.name(), "z", "/dev/zero"}, 10s);
  EXPECT_EQ(endless.status, static_cast<int>(Errc::state_full)) << endless.out;
  EXPECT_NE(endless.out.find("/dev/zero holds more than the state segment's capacity"),
            std::string::npos)
      << endless.out;
  EXPECT_EQ(bus->state().value().list().size(), 1u);
}

}  // namespace
}  // namespace shmbus
