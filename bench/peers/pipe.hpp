// pipe.hpp — the pipe peer: pipe2() with its capacity raised (F_SETPIPE_SZ) to
// fs.pipe-max-size, the most an unprivileged process may ask for, one
// exact-length write per message and exact-length reads (stream_peer.hpp).
// Plain write/read, no vmsplice: the pipe copies the bytes in and out.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "peers/stream_peer.hpp"

namespace shmbus::bench::peers {

class PipePeer : public StreamPeer {
 public:
  static constexpr const char* kName = "pipe";
  using StreamPeer::StreamPeer;

  [[nodiscard]] std::string open() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return "pipe2 failed";
    read_fd_ = fds[0];
    write_fd_ = fds[1];
    const long max = read_sysctl("/proc/sys/fs/pipe-max-size", 1 << 20);
    capacity_ = ::fcntl(write_fd_, F_SETPIPE_SZ, static_cast<int>(max));
    if (capacity_ < 0) capacity_ = ::fcntl(write_fd_, F_GETPIPE_SZ);
    return {};
  }

  void describe(TransportFacts& facts) const { facts["pipe_bytes"] = capacity_; }

 private:
  int capacity_ = 0;
};

}  // namespace shmbus::bench::peers
