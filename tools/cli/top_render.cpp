// top_render.cpp — rates, interval latency and the frame text of `shmbus top`.
#include "top_render.hpp"

#include <time.h>

#include <algorithm>

#include <fmt/format.h>

#include "ps_render.hpp"

namespace shmbus::tools {

namespace {

std::uint64_t minus(std::uint64_t now, std::uint64_t before) noexcept {
  return now >= before ? now - before : now;
}

const ServiceRow* find_service(const BusSnapshot* snapshot, const std::string& name) {
  if (snapshot == nullptr) return nullptr;
  for (const auto& row : snapshot->services) {
    if (row.info.name == name) return &row;
  }
  return nullptr;
}

const ServerRow* find_server(const ServiceRow* service, const ServerInfo& server) {
  if (service == nullptr) return nullptr;
  for (const auto& row : service->servers) {
    if (row.info.pid == server.pid && row.info.joined_unix_ns == server.joined_unix_ns) return &row;
  }
  return nullptr;
}

std::string rate_text(std::uint64_t count, double seconds) {
  if (seconds <= 0) return "-";
  return fmt::format("{:.1f}", static_cast<double>(count) / seconds);
}

std::string clock_text(std::uint64_t unix_ns) {
  const time_t seconds = static_cast<time_t>(unix_ns / 1'000'000'000u);
  tm parts{};
  ::gmtime_r(&seconds, &parts);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &parts);
  return text;
}

std::string exit_text(const LauncherChild& child) {
  if (!child.has_exited) return "";
  if (child.last_exit_signal != 0) return fmt::format("signal {}", child.last_exit_signal);
  return fmt::format("exit {}", child.last_exit_code);
}

}  // namespace

ServerCounters counters_delta(const ServerCounters& now, const ServerCounters& before) noexcept {
  ServerCounters d;
  d.calls = minus(now.calls, before.calls);
  d.casts = minus(now.casts, before.casts);
  d.replies = minus(now.replies, before.replies);
  d.expired_skipped = minus(now.expired_skipped, before.expired_skipped);
  d.late_replies = minus(now.late_replies, before.late_replies);
  d.caller_gone = minus(now.caller_gone, before.caller_gone);
  d.redelivered = minus(now.redelivered, before.redelivered);
  d.dead_lettered = minus(now.dead_lettered, before.dead_lettered);
  d.dead_letters_dropped = minus(now.dead_letters_dropped, before.dead_letters_dropped);
  d.bad_messages = minus(now.bad_messages, before.bad_messages);
  d.replies_too_large = minus(now.replies_too_large, before.replies_too_large);
  d.busy_ns = minus(now.busy_ns, before.busy_ns);
  for (std::size_t i = 0; i < d.latency.size(); ++i) {
    d.latency[i] = minus(now.latency[i], before.latency[i]);
  }
  return d;
}

std::string render_top(const BusSnapshot& now, const BusSnapshot* before,
                       const std::string& interval_text) {
  const double seconds =
      before == nullptr
          ? 0.0
          : std::chrono::duration<double>(now.taken - before->taken).count();
  std::string out = fmt::format("shmbus top | bus {} | {} UTC | ", now.bus,
                                clock_text(now.taken_unix_ns));
  if (now.launcher) {
    out += fmt::format("launcher {} (pid {})", now.launcher->phase, now.launcher->pid);
  } else {
    out += "no launcher";
  }
  out += fmt::format(" | every {} | q: quit\n", interval_text);
  if (!now.launcher_problem.empty()) out += "launcher status unreadable: " + now.launcher_problem + "\n";
  if (now.launcher && !now.launcher->failed_services.empty()) {
    out += "FAILED services:";
    for (const auto& name : now.launcher->failed_services) out += " " + name;
    out += "\n";
  }
  out += "\n";
  if (now.services.empty()) {
    out += "no services\n";
    return out;
  }
  const std::size_t width = service_column_width(now);
  out += fmt::format("{:<{}} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>5} {:>9}\n", "SERVICE",
                     width, "SERVERS", "CALL/S", "CAST/S", "ERR/S", "P50", "P99", "DEPTH", "DEAD",
                     "RESTARTS");
  const auto& children = now.launcher ? now.launcher->children : std::vector<LauncherChild>{};
  for (const auto& row : now.services) {
    const ServiceInfo& s = row.info;
    const ServiceRow* earlier = find_service(before, s.name);
    std::string calls = "-", casts = "-", errors = "-", p50 = "-", p99 = "-";
    if (earlier != nullptr && seconds > 0) {
      const ServerCounters d = counters_delta(s.totals, earlier->info.totals);
      calls = rate_text(d.calls, seconds);
      casts = rate_text(d.casts, seconds);
      errors = rate_text(minus(caller_errors(s), caller_errors(earlier->info)), seconds);
      p50 = latency_text(latency_quantile(d, 0.50));
      p99 = latency_text(latency_quantile(d, 0.99));
    }
    std::uint64_t restarts = 0;
    for (const std::size_t i : row.children) restarts += children[i].restarts;
    const std::string servers =
        row.registered ? fmt::format("{}/{}", row.live_servers(), row.servers.size()) : "-";
    out += fmt::format("{:<{}} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>5} {:>9}\n", s.name,
                       width, servers, calls, casts, errors, p50, p99, s.depth, s.dead_letters,
                       row.children.empty() ? std::string("-") : std::to_string(restarts));
    for (const auto& server : row.servers) {
      const ServerInfo& i = server.info;
      const LauncherChild* child = server.child ? &children[*server.child] : nullptr;
      std::string line = fmt::format(
          "    {:>8}  {:<12} {:<8} up {:<9}", i.pid, child ? child->name : "-", server.state,
          short_duration(i.joined_unix_ns == 0 || i.joined_unix_ns > now.taken_unix_ns
                             ? 0
                             : now.taken_unix_ns - i.joined_unix_ns));
      if (child) line += fmt::format(" restarts {:<3}", child->restarts);
      if (const ServerRow* old = find_server(earlier, i); old != nullptr && seconds > 0) {
        line += fmt::format(" calls/s {:<7} casts/s {}",
                            rate_text(minus(i.counters.calls, old->info.counters.calls), seconds),
                            rate_text(minus(i.counters.casts, old->info.counters.casts), seconds));
      }
      out += line + "\n";
    }
    for (const std::size_t index : row.children) {
      const LauncherChild& c = children[index];
      const bool listed = std::any_of(row.servers.begin(), row.servers.end(),
                                      [&](const ServerRow& r) { return r.child && *r.child == index; });
      if (listed) continue;
      out += fmt::format("    {:>8}  {:<12} {:<8} {:<12} restarts {}\n",
                         c.pid > 0 ? std::to_string(c.pid) : "-", c.name, c.state, exit_text(c),
                         c.restarts);
    }
  }
  return out;
}

}  // namespace shmbus::tools
