#include "process/liveness.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace shmbus::detail {

std::optional<std::uint64_t> process_start_time(pid_t pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::FILE* file = std::fopen(path, "re");
  if (file == nullptr) return std::nullopt;
  char buf[1024];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, file);
  std::fclose(file);
  buf[n] = '\0';
  // comm (field 2) may hold spaces and parentheses: parse after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] == '\0') return std::nullopt;
  p += 2;  // field 3: state
  if (*p == 'Z' || *p == 'X' || *p == 'x') return std::nullopt;
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return std::nullopt;
    ++p;
  }
  return std::strtoull(p, nullptr, 10);
}

bool process_alive(pid_t pid, std::uint64_t start_time) noexcept {
  if (pid <= 0) return false;
  const auto now = process_start_time(pid);
  return now.has_value() && *now == start_time;
}

namespace {
struct flock byte_lock(short type, std::uint64_t byte) noexcept {
  struct flock lock {};
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = static_cast<off_t>(byte);
  lock.l_len = 1;
  lock.l_pid = 0;  // required for OFD locks
  return lock;
}
}  // namespace

bool ofd_try_lock(int fd, std::uint64_t byte) noexcept {
  struct flock lock = byte_lock(F_WRLCK, byte);
  return ::fcntl(fd, F_OFD_SETLK, &lock) == 0;
}

void ofd_unlock(int fd, std::uint64_t byte) noexcept {
  struct flock lock = byte_lock(F_UNLCK, byte);
  (void)::fcntl(fd, F_OFD_SETLK, &lock);  // unlocking an unheld byte is not an error
}

bool ofd_is_locked(int fd, std::uint64_t byte) noexcept {
  struct flock lock = byte_lock(F_WRLCK, byte);
  if (::fcntl(fd, F_OFD_GETLK, &lock) != 0) return true;  // cannot tell: assume alive
  return lock.l_type != F_UNLCK;
}

}  // namespace shmbus::detail
