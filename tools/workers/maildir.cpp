#include "maildir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shmbus::examples {

namespace {

std::string failure(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

}  // namespace

std::string Maildir::prepare(const std::string& root) {
  for (const std::string& dir : {root, root + "/tmp", root + "/new", root + "/cur"}) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return failure("mkdir", dir);
  }
  return {};
}

std::string Maildir::deliver(std::string_view name, std::string_view text) const {
  const std::string tmp = root_ + "/tmp/" + std::string(name);
  const std::string done = root_ + "/new/" + std::string(name);
  // O_TRUNC: a tmp file left by a server killed mid-write is simply rewritten.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return failure("open", tmp);
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string error = failure("write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return error;
    }
    written += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), done.c_str()) != 0) {
    const std::string error = failure("rename", tmp);
    ::unlink(tmp.c_str());
    return error;
  }
  return {};
}

}  // namespace shmbus::examples
