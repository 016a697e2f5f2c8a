// peer.hpp — what a transport must offer to be measured by the one-way
// harness (support/one_way.hpp): the shmbus paths and the peers alike.
//
// A transport moves messages of one fixed size from the parent (the sender,
// the timing side) to a forked child (the receiver), in one of two ways of
// waiting. Its life:
//
//   Transport t(spec);                // parent, before fork
//   t.open()                          // parent, before fork: create the channel,
//                                     // buffers, bus… "" or why it cannot run
//   -- fork --
//   t.become_receiver()               // child: keep the receiving end, attach,
//                                     // pre-touch; "" or why not
//   t.become_sender()                 // parent: keep the sending end; "" or why not
//   t.send(seq, deadline)             // parent: one message whose word 0 is seq
//   t.receive(deadline, on_message)   // child: waits for one message and calls
//                                     // on_message(seq, payload) while the
//                                     // payload is valid; false on error/timeout
//   t.describe(counters)              // parent: setup facts worth reporting
//
// Payloads follow support/pattern.hpp (word 0 = sequence number, the rest a
// known pattern written before the timed loop). A peer that copies (socket,
// pipe, message queue) keeps one private, pre-touched buffer on each side; a
// zero-copy peer hands out memory it owns. Issue 7's peers (Boost
// message_queue, ZeroMQ, iceoryx) implement the same members beside uds.hpp
// and pipe.hpp, and register with the same harness.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "peers/fd_io.hpp"

namespace shmbus::bench::peers {

using PeerClock = std::chrono::steady_clock;
using PeerDeadline = PeerClock::time_point;

// What a benchmark asks of a transport.
struct TransportSpec {
  std::size_t bytes = 64;  // payload size, a multiple of 8, >= 64
  PeerWait wait = PeerWait::busy_poll;
  bool stream = false;  // many messages in flight (throughput), not one at a time
};

// Extra facts a transport reports as Google Benchmark counters (buffer sizes…).
using TransportFacts = std::map<std::string, double>;

}  // namespace shmbus::bench::peers
