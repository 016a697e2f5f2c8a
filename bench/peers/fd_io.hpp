// fd_io.hpp — exact-length reads and writes on a byte-stream descriptor, the
// way a message peer over a socket or a pipe moves one message.
//
// Two ways to wait, as the shmbus receivers have: PeerWait::busy_poll puts the
// descriptor in O_NONBLOCK and spins on EAGAIN (one system call per poll, no
// sleep), PeerWait::park leaves it blocking (the kernel parks the thread in
// the read or write and wakes it when bytes or room arrive). A message is
// framed by its known length: the reader asks for exactly that many bytes and
// loops over short reads; nothing is read ahead.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

namespace shmbus::bench::peers {

enum class PeerWait : std::uint8_t { busy_poll, park };

// Sets or clears O_NONBLOCK as `wait` asks. False when fcntl refuses.
[[nodiscard]] inline bool set_wait(int fd, PeerWait wait) noexcept {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return false;
  const int want = wait == PeerWait::busy_poll ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  return want == flags || ::fcntl(fd, F_SETFL, want) == 0;
}

// Writes all of `bytes`. On a non-blocking descriptor it spins on EAGAIN.
// False on any other error (the peer closed its end, …).
[[nodiscard]] inline bool write_exact(int fd, std::span<const std::byte> bytes) noexcept {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

// Reads exactly `into.size()` bytes. On a non-blocking descriptor, after an
// EAGAIN it spins on poll(fd, POLLIN, 0) until bytes are there: poll reads
// the pipe's or socket's state without its lock, where a spinning read()
// would contend for the lock the writer holds while it copies (measured:
// a 64 KiB message over a pipe took 8x longer with a read() spin). False at
// end of file or on any other error.
[[nodiscard]] inline bool read_exact(int fd, std::span<std::byte> into) noexcept {
  std::size_t done = 0;
  while (done < into.size()) {
    const ssize_t n = ::read(fd, into.data() + done, into.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      struct pollfd p {
        .fd = fd, .events = POLLIN, .revents = 0
      };
      while (::poll(&p, 1, 0) == 0) {
      }
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

// One integer from a /proc/sys file (a system limit), or `fallback`.
[[nodiscard]] inline long read_sysctl(const char* path, long fallback) noexcept {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fallback;
  char buf[32] = {};
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return fallback;
  char* end = nullptr;
  const long value = std::strtol(buf, &end, 10);
  return end != buf && value > 0 ? value : fallback;
}

// Closes a descriptor once; -1 afterwards.
inline void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace shmbus::bench::peers
