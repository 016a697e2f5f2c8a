#include "bus/control.hpp"

#include <string>

#include "process/process_table.hpp"
#include "process/robust_mutex.hpp"

namespace shmbus::detail {

namespace {

layout::ProcessTableHeader& table_header(std::span<std::byte> segment) noexcept {
  return *reinterpret_cast<layout::ProcessTableHeader*>(segment.data() +
                                                        sizeof(layout::SegmentHeader));
}

}  // namespace

std::uint64_t control_segment_size(const ControlOptions& options) noexcept {
  return layout::control_layout(options.max_processes, options.calls_per_process,
                                options.max_reply)
      .total_size;
}

void initialize_control(std::span<std::byte> segment, const ControlOptions& options,
                        std::uint32_t segment_mode) noexcept {
  ProcessTable::initialize(segment, options.max_processes, segment_mode);
  const auto l = layout::control_layout(options.max_processes, options.calls_per_process,
                                        options.max_reply);
  auto& header = table_header(segment);
  header.registry_offset = l.registry_offset;
  header.calls_offset = l.calls_offset;
  header.doorbells_offset = l.doorbells_offset;
  header.pins_offset = l.pins_offset;
  header.calls_per_process = options.calls_per_process;
  header.call_stride = l.call_stride;
  header.max_reply = options.max_reply;
  auto& registry = *reinterpret_cast<layout::RegistryHeader*>(segment.data() + l.registry_offset);
  RobustMutex::initialize(registry.mutex);
  registry.capacity = layout::kMaxServices;
}

Result<ControlView> ControlView::open(std::span<std::byte> segment) {
  if (segment.size() < layout::kControlSlotsOffset) {
    return fail(Errc::size_too_small, "control segment shorter than its headers");
  }
  const auto& header = table_header(segment);
  const std::uint32_t processes = header.capacity;
  const std::uint32_t calls = header.calls_per_process;
  const std::uint32_t max_reply = header.max_reply;
  if (processes == 0 || processes > layout::kMaxProcesses || calls == 0 ||
      calls > layout::kMaxCallsPerProcess || max_reply > layout::kMaxReplyBytes) {
    return fail(Errc::not_a_segment, "control segment counts out of range (processes " +
                                         std::to_string(processes) + ", calls " +
                                         std::to_string(calls) + ")");
  }
  const auto l = layout::control_layout(processes, calls, max_reply);
  if (header.registry_offset != l.registry_offset || header.calls_offset != l.calls_offset ||
      header.doorbells_offset != l.doorbells_offset || header.pins_offset != l.pins_offset ||
      header.call_stride != l.call_stride) {
    return fail(Errc::not_a_segment, "control segment offsets disagree with its counts");
  }
  if (segment.size() < l.total_size) {
    return fail(Errc::size_too_small, "control segment has " + std::to_string(segment.size()) +
                                          " bytes, its counts need " +
                                          std::to_string(l.total_size));
  }
  ControlView view;
  view.registry_ = reinterpret_cast<layout::RegistryHeader*>(segment.data() + l.registry_offset);
  view.services_ = reinterpret_cast<layout::ServiceEntry*>(segment.data() + l.registry_offset +
                                                           sizeof(layout::RegistryHeader));
  view.doorbells_ = reinterpret_cast<layout::ProcessDoorbell*>(segment.data() + l.doorbells_offset);
  view.pins_ = reinterpret_cast<layout::PinLine*>(segment.data() + l.pins_offset);
  view.calls_ = segment.data() + l.calls_offset;
  view.max_processes_ = processes;
  view.calls_per_process_ = calls;
  view.call_stride_ = l.call_stride;
  view.max_reply_ = max_reply;
  return view;
}

}  // namespace shmbus::detail
