// control.hpp — the parts of the control segment after the process table
// (layout/control.hpp): laid out by the creator, validated by every attacher.
#pragma once

#include <cstdint>
#include <span>

#include "shmbus/error.hpp"
#include "shmbus/layout/control.hpp"

namespace shmbus::detail {

struct ControlOptions {
  std::uint32_t max_processes;
  std::uint32_t calls_per_process;
  std::uint32_t max_reply;
};

// Bytes of a control segment for `options`.
[[nodiscard]] std::uint64_t control_segment_size(const ControlOptions& options) noexcept;

// Lays out the process table, the registry (its robust mutex) and the call
// slots over a zero-filled segment of control_segment_size(options) bytes.
void initialize_control(std::span<std::byte> segment, const ControlOptions& options,
                        std::uint32_t segment_mode) noexcept;

// The registry and call slots of a mapped control segment. Bounds come from
// the creator's counts, re-derived here and checked against the mapping.
class ControlView {
 public:
  // Fails with not_a_segment (offsets that disagree with the counts) or
  // size_too_small (a mapping shorter than the counts need).
  [[nodiscard]] static Result<ControlView> open(std::span<std::byte> segment);

  [[nodiscard]] layout::RegistryHeader& registry() const noexcept { return *registry_; }
  [[nodiscard]] layout::ServiceEntry& service(std::uint32_t i) const noexcept { return services_[i]; }
  // Call slot `index` of process slot `process`; both must be in range.
  [[nodiscard]] layout::CallSlotHeader& call_slot(std::uint32_t process,
                                                  std::uint32_t index) const noexcept {
    return *reinterpret_cast<layout::CallSlotHeader*>(
        calls_ + (std::uint64_t{process} * calls_per_process_ + index) * call_stride_);
  }
  [[nodiscard]] std::byte* reply_area(layout::CallSlotHeader& slot) const noexcept {
    return reinterpret_cast<std::byte*>(&slot) + sizeof(layout::CallSlotHeader);
  }
  [[nodiscard]] layout::ProcessDoorbell& doorbell(std::uint32_t process) const noexcept {
    return doorbells_[process];
  }
  [[nodiscard]] layout::PinLine& pins(std::uint32_t process) const noexcept { return pins_[process]; }
  [[nodiscard]] std::uint32_t max_processes() const noexcept { return max_processes_; }
  [[nodiscard]] std::uint32_t calls_per_process() const noexcept { return calls_per_process_; }
  [[nodiscard]] std::uint32_t max_reply() const noexcept { return max_reply_; }

 private:
  layout::RegistryHeader* registry_ = nullptr;
  layout::ServiceEntry* services_ = nullptr;
  layout::ProcessDoorbell* doorbells_ = nullptr;
  layout::PinLine* pins_ = nullptr;
  std::byte* calls_ = nullptr;
  std::uint32_t max_processes_ = 0;
  std::uint32_t calls_per_process_ = 0;
  std::uint32_t call_stride_ = 0;
  std::uint32_t max_reply_ = 0;
};

}  // namespace shmbus::detail
