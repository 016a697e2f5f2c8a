// uds.hpp — the Unix domain socket peer: a SOCK_STREAM socketpair(AF_UNIX)
// with the largest send and receive buffers an unprivileged process may ask
// for (net.core.wmem_max / rmem_max; the kernel doubles what is set), one
// exact-length write per message and exact-length reads (stream_peer.hpp).
//
// Why SOCK_STREAM: SOCK_SEQPACKET keeps message boundaries but refuses a
// message larger than the send buffer (EMSGSIZE), and the payloads go to 64 MiB.
#pragma once

#include <sys/socket.h>

#include <string>

#include "peers/stream_peer.hpp"

namespace shmbus::bench::peers {

class UdsPeer : public StreamPeer {
 public:
  static constexpr const char* kName = "uds";
  using StreamPeer::StreamPeer;

  [[nodiscard]] std::string open() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return "socketpair failed";
    write_fd_ = fds[0];
    read_fd_ = fds[1];
    const int snd = static_cast<int>(read_sysctl("/proc/sys/net/core/wmem_max", 1 << 20));
    const int rcv = static_cast<int>(read_sysctl("/proc/sys/net/core/rmem_max", 1 << 20));
    (void)::setsockopt(write_fd_, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
    (void)::setsockopt(read_fd_, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    socklen_t len = sizeof(sndbuf_);
    (void)::getsockopt(write_fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf_, &len);
    len = sizeof(rcvbuf_);
    (void)::getsockopt(read_fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf_, &len);
    return {};
  }

  void describe(TransportFacts& facts) const {
    facts["sndbuf_bytes"] = sndbuf_;
    facts["rcvbuf_bytes"] = rcvbuf_;
  }

 private:
  int sndbuf_ = 0;
  int rcvbuf_ = 0;
};

}  // namespace shmbus::bench::peers
