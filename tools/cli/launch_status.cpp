// launch_status.cpp — progress lines and the launcher's status value.
#include "launch_status.hpp"

#include <flatbuffers/flatbuffers.h>
#include <string.h>
#include <unistd.h>

#include <cstdio>

#include "shmbus/schemas/launcher_generated.h"

namespace shmbus::tools {

namespace {

namespace fb = shmbus::launcher;

std::uint64_t unix_ns_now() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// A steady-clock instant as Unix time (the status is read by other processes).
std::uint64_t unix_ns_of(std::chrono::steady_clock::time_point at) {
  if (at == std::chrono::steady_clock::time_point{}) return 0;
  const auto ago = std::chrono::steady_clock::now() - at;
  return unix_ns_now() - static_cast<std::uint64_t>(
                             std::chrono::duration_cast<std::chrono::nanoseconds>(ago).count());
}

fb::ChildState state_of(ChildState state) {
  switch (state) {
    case ChildState::running:
      return fb::ChildState::Running;
    case ChildState::exited:
      return fb::ChildState::Exited;
    case ChildState::failed:
      return fb::ChildState::Failed;
    case ChildState::stopped:
      return fb::ChildState::Stopped;
  }
  return fb::ChildState::Exited;
}

}  // namespace

std::string describe_exit(const ExitStatus& exit) {
  if (exit.signal == 0) return "code " + std::to_string(exit.code);
  const char* name = ::sigabbrev_np(exit.signal);
  return name != nullptr ? std::string("killed by SIG") + name
                         : "killed by signal " + std::to_string(exit.signal);
}

std::string describe_duration(std::chrono::milliseconds duration) {
  const auto ms = duration.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  char text[32];
  std::snprintf(text, sizeof text, "%g s", static_cast<double>(ms) / 1000.0);
  return text;
}

std::vector<std::string> EventPrinter::take(const ChildEvent& event) {
  std::vector<std::string> lines;
  const std::string exit = event.exit ? describe_exit(*event.exit) : "unknown exit";
  const ChildInfo& child = children_[event.name];
  auto held = held_.find(event.name);
  std::string before;  // the held exit this event completes
  if (held != held_.end()) {
    before = event.name + ": exited (" +
             (held->second.exit ? describe_exit(*held->second.exit) : "unknown exit") + "); ";
    held_.erase(held);
  }
  switch (event.kind) {
    case ChildEvent::Kind::started:
      lines.push_back(event.name + ": started as pid " + std::to_string(event.pid));
      break;
    case ChildEvent::Kind::exited: {
      const bool restart_follows =
          child.restart == Restart::permanent ||
          (child.restart == Restart::transient && !(event.exit && event.exit->normal()));
      if (restart_follows) {
        held_[event.name] = event;  // completed by restarted or failed
      } else {
        lines.push_back(event.name + ": exited (" + exit + "); not restarted (" +
                        (child.restart == Restart::temporary ? "temporary" : "transient") + ")");
      }
      break;
    }
    case ChildEvent::Kind::restarted:
      lines.push_back((before.empty() ? event.name + ": " : before) + "restarted as pid " +
                      std::to_string(event.pid) + " (restart " + std::to_string(event.restarts) +
                      ")");
      break;
    case ChildEvent::Kind::failed:
      lines.push_back((before.empty() ? event.name + ": " : before) + "not restarted: failed");
      lines.push_back("service '" + child.service + "' failed: " + event.name + " exceeded " +
                      std::to_string(child.max_restarts) + " restarts in " +
                      describe_duration(child.within) + " (last exit: " + exit + ")");
      failed_.insert(child.service);
      break;
    case ChildEvent::Kind::stopped:
      lines.push_back(before + event.name + ": stopped (" + exit + ")");
      break;
  }
  return lines;
}

std::vector<std::string> EventPrinter::flush() {
  std::vector<std::string> lines;
  for (const auto& [name, event] : held_) {
    lines.push_back(name + ": exited (" +
                    (event.exit ? describe_exit(*event.exit) : "unknown exit") + ")");
  }
  held_.clear();
  return lines;
}

void StatusPublisher::publish(LaunchPhase phase, const std::vector<ChildStatus>& children,
                              const std::set<std::string>& failed_services) {
  if (started_unix_ns_ == 0) started_unix_ns_ = unix_ns_now();
  auto build = [&](flatbuffers::FlatBufferBuilder& builder) {
    std::vector<flatbuffers::Offset<fb::Child>> rows;
    for (const auto& child : children) {
      const ExitStatus last = child.last_exit.value_or(ExitStatus{});
      rows.push_back(fb::CreateChildDirect(
          builder, child.name.c_str(), service_of_[child.name].c_str(), child.pid,
          state_of(child.state), child.restarts, unix_ns_of(child.started_at), last.code,
          last.signal, child.last_exit.has_value()));
    }
    std::vector<flatbuffers::Offset<flatbuffers::String>> failed;
    for (const auto& service : failed_services) failed.push_back(builder.CreateString(service));
    const auto root = fb::CreateLauncherStatusDirect(builder, static_cast<int>(::getpid()),
                                                     config_path_.c_str(), started_unix_ns_,
                                                     static_cast<fb::Phase>(phase), &rows, &failed);
    fb::FinishLauncherStatusBuffer(builder, root);
  };
  // Built once to learn its size, then in place in the state segment, so
  // readers get it verified as a LauncherStatus ("SHLS": StateView::root).
  flatbuffers::FlatBufferBuilder sizing(1024);
  build(sizing);
  auto published = [&]() -> Result<StateRef> {
    auto tx = state_.begin_put(kLauncherStatusKey, sizing.GetSize() + 256);
    if (!tx) return tl::unexpected(tx.error());
    auto builder = tx->builder();
    build(builder);
    return tx->publish<fb::LauncherStatus>(builder, fb::LauncherStatusIdentifier());
  }();
  if (!published && !warned_) {
    warned_ = true;
    std::fprintf(stderr, "shmbus: cannot publish the launcher status: %s\n",
                 published.error().message().c_str());
  }
}

}  // namespace shmbus::tools
