// bus_probe.hpp — a second attachment of a bus whose private parts a test can
// reach: the control segment's call slots and registry (ControlView), the
// process table, this attachment's own CallSlots, and a service's pool
// mailbox (whose '~' name Bus::open_mailbox refuses), for tests that plant
// call-slot words or forge the records a server receives.
//
// A probe is a process of the bus like any other (it takes a process slot,
// so its reference is alive while it exists and dead once it is gone), and
// it uses only the library's own types: nothing here guesses a layout.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <chrono>
#include <memory>
#include <string>

#include "bus/bus_core.hpp"
#include "bus/mailbox_factory.hpp"
#include "process/process_table.hpp"
#include "registry/registry.hpp"
#include "segment/segment.hpp"
#include "shmbus/mailbox.hpp"
#include "shmbus/wait.hpp"

namespace shmbus::test {

class BusProbe {
 public:
  // Attaches to `bus` (which must exist) as BusCore does for Bus::attach;
  // fails the test (fatally: check HasFatalFailure) when it cannot.
  explicit BusProbe(const std::string& bus, std::string_view label = "probe") {
    auto control = detail::Segment::attach(detail::control_shm_name(bus),
                                           layout::SegmentKind::control,
                                           deadline_in(std::chrono::seconds(2)), Errc::no_such_bus);
    if (!control) {
      ADD_FAILURE() << "probe: " << control.error().message();
      return;
    }
    auto core = std::make_shared<detail::BusCore>(bus, std::move(*control));
    if (auto joined = core->join(label); !joined) {
      ADD_FAILURE() << "probe: " << joined.error().message();
      return;
    }
    core_ = std::move(core);
  }

  [[nodiscard]] bool ok() const noexcept { return core_ != nullptr; }
  [[nodiscard]] detail::BusCore& core() const noexcept { return *core_; }
  // For the library calls that keep the core alive (BlobPool::loan, …).
  [[nodiscard]] const std::shared_ptr<detail::BusCore>& shared_core() const noexcept { return core_; }
  [[nodiscard]] const detail::ControlView& control() const noexcept { return core_->control(); }
  [[nodiscard]] detail::ProcessTable& table() const noexcept { return core_->table(); }
  [[nodiscard]] detail::CallSlots& call_slots() const noexcept { return core_->call_slots(); }
  [[nodiscard]] detail::Registry& registry() const noexcept { return core_->registry(); }
  [[nodiscard]] ProcessRef self() const noexcept { return core_->table().self(); }

  // Call slot `index` of the process `caller` (any process of the bus).
  [[nodiscard]] layout::CallSlotHeader& call_slot(ProcessRef caller, std::uint32_t index) const {
    return control().call_slot(layout::ref_slot(caller.value), index);
  }

  // The pool mailbox of service `service`, opened through this probe.
  [[nodiscard]] Result<Mailbox> pool(const std::string& service) const {
    return detail::MailboxFactory::open(core_, detail::pool_shm_name(*core_, service),
                                        service + "~pool");
  }
  // Its dead-letter mailbox, to produce into as a server does.
  [[nodiscard]] Result<Mailbox> dead_letters(const std::string& service) const {
    return detail::MailboxFactory::open(core_, detail::dead_letter_shm_name(*core_, service),
                                        service + "~dead");
  }

 private:
  std::shared_ptr<detail::BusCore> core_;
};

}  // namespace shmbus::test
