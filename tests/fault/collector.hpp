// collector.hpp — a consumer thread that receives, checks and records every delivery.
//
// The test's main thread spawns and kills processes and waits (bounded) on what
// the collector has seen; the collector keeps receiving in the meantime, the
// way a real server would. Each delivery is released (done) before it is
// recorded, so once a record shows up here the mailbox counters include it.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "fault/stamped_record.hpp"
#include "shmbus/mailbox.hpp"

namespace shmbus::test {

struct Received {
  std::optional<Stamp> stamp;  // nullopt: the payload failed its checksum
  RecordInfo info;
};

class Collector {
 public:
  explicit Collector(Receiver receiver, WaitMode mode = WaitMode::park)
      : receiver_(std::move(receiver)), mode_(mode), thread_([this] { run(); }) {}
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;
  ~Collector() {
    stop_.store(true);
    thread_.join();
  }

  [[nodiscard]] std::vector<Received> all() const {
    std::lock_guard lock(mutex_);
    return got_;
  }
  // The intact records of `producer`, in arrival order.
  [[nodiscard]] std::vector<Received> from(std::uint32_t producer) const {
    std::lock_guard lock(mutex_);
    std::vector<Received> out;
    for (const Received& r : got_) {
      if (r.stamp && r.stamp->producer == producer) out.push_back(r);
    }
    return out;
  }
  [[nodiscard]] std::size_t count_from(std::uint32_t producer) const {
    std::lock_guard lock(mutex_);
    const auto it = counts_.find(producer);
    return it == counts_.end() ? 0 : it->second;
  }
  [[nodiscard]] bool has(Stamp stamp) const {
    std::lock_guard lock(mutex_);
    return stamps_.count(key(stamp)) != 0;
  }
  [[nodiscard]] std::size_t torn() const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(
        std::count_if(got_.begin(), got_.end(), [](const Received& r) { return !r.stamp; }));
  }

 private:
  void run() {
    using namespace std::chrono_literals;
    while (!stop_.load()) {
      auto delivery = receiver_.receive(deadline_in(100ms), mode_);
      if (!delivery) continue;
      Received r{read_stamp(delivery->payload()), delivery->info()};
      delivery->done();
      std::lock_guard lock(mutex_);
      got_.push_back(r);
      if (r.stamp) {
        ++counts_[r.stamp->producer];
        stamps_.insert(key(*r.stamp));
      }
    }
  }

  static std::uint64_t key(Stamp s) { return (std::uint64_t{s.producer} << 32) | s.index; }

  Receiver receiver_;
  WaitMode mode_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<Received> got_;
  std::map<std::uint32_t, std::size_t> counts_;  // intact records per producer
  std::set<std::uint64_t> stamps_;               // key() of every intact record
  std::thread thread_;                           // last: starts after every other member is built
};

// Whether `got` is exactly records 0 … count-1 of one producer, in order,
// each once, first deliveries.
[[nodiscard]] inline ::testing::AssertionResult exactly_in_order(const std::vector<Received>& got,
                                                                 std::size_t count) {
  if (got.size() != count) {
    return ::testing::AssertionFailure() << got.size() << " records arrived, expected " << count;
  }
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i].stamp->index != i) {
      return ::testing::AssertionFailure()
             << "arrival " << i << " is record " << got[i].stamp->index
             << " (lost, duplicated or out of order)";
    }
    if (got[i].info.redelivered || got[i].info.deliveries != 1) {
      return ::testing::AssertionFailure()
             << "record " << i << " redelivered=" << got[i].info.redelivered
             << " deliveries=" << int{got[i].info.deliveries};
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace shmbus::test
