// stream_peer.hpp — the common part of the peers that copy a message through
// a kernel byte stream (a Unix domain socket, a pipe): one descriptor per
// direction end, a private pre-touched buffer on each side, exact-length
// writes and reads (fd_io.hpp). The concrete peers only create the channel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "peers/fd_io.hpp"
#include "peers/peer.hpp"
#include "support/pattern.hpp"

namespace shmbus::bench::peers {

class StreamPeer {
 public:
  explicit StreamPeer(TransportSpec spec) : spec_(spec) {}
  StreamPeer(const StreamPeer&) = delete;
  StreamPeer& operator=(const StreamPeer&) = delete;
  ~StreamPeer() {
    close_fd(read_fd_);
    close_fd(write_fd_);
  }

  // Parent, after fork: keeps the writing end, fills its buffer with the pattern.
  [[nodiscard]] std::string become_sender() {
    close_fd(read_fd_);
    if (!set_wait(write_fd_, spec_.wait)) return "fcntl(O_NONBLOCK) failed";
    buffer_.assign(spec_.bytes, std::byte{0});
    fill_pattern(buffer_);
    return {};
  }
  // Child, after fork: keeps the reading end, pre-touches its buffer.
  [[nodiscard]] std::string become_receiver() {
    close_fd(write_fd_);
    if (!set_wait(read_fd_, spec_.wait)) return "fcntl(O_NONBLOCK) failed";
    buffer_.assign(spec_.bytes, std::byte{1});
    return {};
  }

  // One message: word 0 of the private buffer = seq, then one write of it all.
  [[nodiscard]] bool send(std::uint64_t seq, PeerDeadline /*deadline*/) noexcept {
    std::memcpy(buffer_.data(), &seq, sizeof(seq));
    return write_exact(write_fd_, buffer_);
  }

  // Reads exactly one message into the private buffer, then hands it out.
  template <class OnMessage>
  [[nodiscard]] bool receive(PeerDeadline /*deadline*/, OnMessage&& on_message) {
    if (!read_exact(read_fd_, buffer_)) return false;
    const std::span<const std::byte> payload(buffer_);
    on_message(word0(payload), payload);
    return true;
  }

 protected:
  TransportSpec spec_;
  int read_fd_ = -1;
  int write_fd_ = -1;

 private:
  std::vector<std::byte> buffer_;
};

}  // namespace shmbus::bench::peers
