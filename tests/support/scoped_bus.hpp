// scoped_bus.hpp — unique bus names, a bus removed at scope exit, scaled counts.
#pragma once

#include <cstdint>
#include <string>

#include "shmbus/bus.hpp"

namespace shmbus::test {

// "t<pid>_<test name>_<counter>", cut to a valid bus name: tests running in
// parallel (ctest -j) never share a bus.
[[nodiscard]] std::string unique_bus_name();

// `n` scaled by SHMBUS_STRESS_SCALE (default 1), at least 1.
[[nodiscard]] long scaled(long n);

// Creates a bus and removes its segments when it goes out of scope, also when
// the test failed. Aborts the test binary if the bus cannot be created.
class ScopedBus {
 public:
  static ScopedBus create(CreateOptions options = {});
  static ScopedBus create(const std::string& name, CreateOptions options = {});
  ScopedBus(ScopedBus&&) noexcept = default;
  ~ScopedBus();

  [[nodiscard]] Bus& bus() noexcept { return bus_; }
  [[nodiscard]] Bus* operator->() noexcept { return &bus_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  // Creates a mailbox or aborts.
  [[nodiscard]] Mailbox mailbox(const std::string& name, MailboxOptions options = {});

 private:
  ScopedBus(std::string name, Bus bus) : name_(std::move(name)), bus_(std::move(bus)) {}
  std::string name_;
  Bus bus_;
};

}  // namespace shmbus::test
