// shm_file.hpp — raw access to /dev/shm files, for tests that plant segment
// states (half-built, foreign, another layout) or read a live segment's words.
//
// Every planted file is a PlantedFile: unlinked at scope exit, also when the
// test failed, so no test leaves a /dev/shm file behind.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace shmbus::test {

[[nodiscard]] inline std::string shm_path(const std::string& bus) { return "/dev/shm/shmbus." + bus; }
[[nodiscard]] inline std::string shm_path(const std::string& bus, const std::string& mailbox) {
  return shm_path(bus) + "." + mailbox;
}

[[nodiscard]] inline bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

[[nodiscard]] inline std::vector<std::byte> read_bytes(const std::string& path) {
  std::vector<std::byte> out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    out.resize(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    out.resize(done);
  }
  ::close(fd);
  return out;
}

// A file under /dev/shm that this test created and removes at scope exit.
class PlantedFile {
 public:
  // Creates (or truncates) `path` with mode 0600 and writes `bytes`.
  PlantedFile(std::string path, std::span<const std::byte> bytes) : path_(std::move(path)) {
    const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << "cannot create " << path_;
    if (fd < 0) return;
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    EXPECT_EQ(done, bytes.size());
    ::close(fd);
  }
  PlantedFile(const PlantedFile&) = delete;
  PlantedFile& operator=(const PlantedFile&) = delete;
  ~PlantedFile() { ::unlink(path_.c_str()); }

  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// A shared read-write mapping of a whole existing file (a live or planted
// segment). Empty when the file cannot be mapped.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path, std::size_t grow_to = 0) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    if (grow_to > 0 && ::ftruncate(fd, static_cast<off_t>(grow_to)) != 0) {
      ::close(fd);
      return;
    }
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      void* base = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE,
                          MAP_SHARED, fd, 0);
      if (base != MAP_FAILED) {
        base_ = static_cast<std::byte*>(base);
        size_ = static_cast<std::size_t>(st.st_size);
      }
    }
    ::close(fd);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (base_ != nullptr) ::munmap(base_, size_);
  }

  [[nodiscard]] bool ok() const noexcept { return base_ != nullptr; }
  [[nodiscard]] std::byte* data() const noexcept { return base_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  template <class T>
  [[nodiscard]] T& at(std::size_t offset) const noexcept {
    return *reinterpret_cast<T*>(base_ + offset);
  }

 private:
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace shmbus::test
