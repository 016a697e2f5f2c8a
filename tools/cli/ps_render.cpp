// ps_render.cpp — the text table and the JSON object of `shmbus ps`
// (shapes: ps_render.hpp).
#include "ps_render.hpp"

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace shmbus::tools {

namespace {

// The outcomes a call can end in (client.hpp): always listed in JSON.
constexpr std::array kCallOutcomes = {
    Errc::timeout_not_started, Errc::timeout_in_progress, Errc::server_crashed,
    Errc::bad_message,         Errc::record_too_large,    Errc::mailbox_full,
    Errc::too_many_in_flight,  Errc::bad_options,         Errc::timeout_unknown,
};

bool is_call_outcome(std::size_t index) {
  for (const Errc e : kCallOutcomes) {
    if (static_cast<std::size_t>(e) == index) return true;
  }
  return false;
}

std::string outcome_name(std::size_t index) {
  const char* name = to_string(static_cast<Errc>(index));
  return std::string_view(name) == "unknown_error" ? fmt::format("errc_{}", index) : name;
}

// The service's other counters worth a person's attention when not zero, in
// the order ps prints them.
std::vector<std::pair<const char*, std::uint64_t>> problem_counters(const ServiceInfo& s) {
  return {{"expired_skipped", s.totals.expired_skipped},
          {"late_replies", s.totals.late_replies},
          {"caller_gone", s.totals.caller_gone},
          {"bad_messages", s.totals.bad_messages},
          {"replies_too_large", s.totals.replies_too_large},
          {"redeliveries", s.totals.redelivered},
          {"dead_lettered", s.totals.dead_lettered},
          {"dead_letters_dropped", s.totals.dead_letters_dropped},
          {"sender_aborted", s.mailboxes.sender_aborted},
          {"mailbox_full", s.mailboxes.full_refusals},
          {"mailbox_redelivered", s.mailboxes.redelivered},
          {"mailbox_bad_records", s.mailboxes.bad_messages}};
}

std::string exit_text(const LauncherChild& child) {
  if (!child.has_exited) return "-";
  if (child.last_exit_signal != 0) return fmt::format("signal {}", child.last_exit_signal);
  return fmt::format("exit {}", child.last_exit_code);
}

bool serving(const ServiceRow& service, const LauncherChild& child) {
  if (child.pid <= 0) return false;
  for (const auto& server : service.servers) {
    if (server.state == "running" && server.info.pid == child.pid) return true;
  }
  return false;
}

std::uint64_t uptime_ns(const BusSnapshot& snapshot, std::uint64_t since_unix_ns) {
  return since_unix_ns == 0 || since_unix_ns > snapshot.taken_unix_ns
             ? 0
             : snapshot.taken_unix_ns - since_unix_ns;
}

// A minimal JSON writer: commas and nesting tracked, values written by type.
class Json {
 public:
  Json& open(char bracket) {
    comma();
    out_ += bracket;
    first_ = true;
    return *this;
  }
  Json& close(char bracket) {
    out_ += bracket;
    first_ = false;
    return *this;
  }
  Json& key(std::string_view name) {
    comma();
    out_ += json_string(name);
    out_ += ':';
    first_ = true;  // the value follows without a comma
    return *this;
  }
  Json& value(std::uint64_t n) { return raw(fmt::format("{}", n)); }
  Json& value(std::int64_t n) { return raw(fmt::format("{}", n)); }
  Json& value(int n) { return raw(fmt::format("{}", n)); }
  Json& value(std::uint32_t n) { return raw(fmt::format("{}", n)); }
  Json& value(bool b) { return raw(b ? "true" : "false"); }
  Json& value(std::string_view text) { return raw(json_string(text)); }
  Json& value(const char* text) { return raw(json_string(text)); }
  Json& null() { return raw("null"); }
  template <class T>
  Json& field(std::string_view name, const T& v) {
    return key(name).value(v);
  }
  [[nodiscard]] std::string take() { return std::move(out_); }

 private:
  void comma() {
    if (!first_) out_ += ',';
    first_ = false;
  }
  Json& raw(std::string_view text) {
    comma();
    out_ += text;
    return *this;
  }
  std::string out_;
  bool first_ = true;
};

void latency_json(Json& json, const ServerCounters& counters, double q, const char* name) {
  const auto bound = latency_quantile(counters, q);
  json.key(name);
  if (bound == std::chrono::microseconds::max()) {
    json.null();
  } else {
    json.value(static_cast<std::uint64_t>(bound.count()));
  }
}

void service_json(Json& json, const BusSnapshot& snapshot, const ServiceRow& row) {
  const ServiceInfo& s = row.info;
  json.open('{')
      .field("name", s.name)
      .field("registered", row.registered)
      .field("servers_live", static_cast<std::uint64_t>(row.live_servers()))
      .field("depth", s.depth)
      .field("dead_letters", s.dead_letters);
  json.key("counters").open('{');
  json.field("calls", s.totals.calls).field("casts", s.totals.casts).field("replies", s.totals.replies);
  for (const auto& [name, n] : problem_counters(s)) json.field(name, n);
  json.close('}');
  json.key("outcomes").open('{');
  for (std::size_t i = 1; i < s.outcomes.size(); ++i) {
    if (is_call_outcome(i) || s.outcomes[i] != 0) json.field(outcome_name(i), s.outcomes[i]);
  }
  json.close('}');
  json.field("errors", caller_errors(s));
  std::uint64_t samples = 0;
  for (const std::uint64_t n : s.totals.latency) samples += n;
  json.key("latency_us").open('{');
  latency_json(json, s.totals, 0.50, "p50");
  latency_json(json, s.totals, 0.99, "p99");
  json.field("samples", samples).close('}');

  const auto& children = snapshot.launcher ? snapshot.launcher->children
                                           : std::vector<LauncherChild>{};
  json.key("servers").open('[');
  for (const auto& server : row.servers) {
    const ServerInfo& i = server.info;
    json.open('{')
        .field("pid", i.pid)
        .field("alive", i.alive)
        .field("leaving", i.leaving)
        .field("state", server.state)
        .field("joined_unix_ns", i.joined_unix_ns)
        .field("uptime_s", uptime_ns(snapshot, i.joined_unix_ns) / 1'000'000'000u);
    if (server.child) {
      json.field("child", children[*server.child].name)
          .field("restarts", children[*server.child].restarts);
    } else {
      json.key("child").null().key("restarts").null();
    }
    json.field("calls", i.counters.calls)
        .field("casts", i.counters.casts)
        .field("replies", i.counters.replies)
        .close('}');
  }
  json.close(']');
  json.key("children").open('[');
  for (const std::size_t index : row.children) {
    const LauncherChild& c = children[index];
    json.open('{')
        .field("name", c.name)
        .field("pid", c.pid)
        .field("state", c.state)
        .field("restarts", c.restarts)
        .field("started_unix_ns", c.started_unix_ns)
        .field("serving", serving(row, c));
    json.key("last_exit");
    if (!c.has_exited) {
      json.null();
    } else if (c.last_exit_signal != 0) {
      json.open('{').field("signal", c.last_exit_signal).close('}');
    } else {
      json.open('{').field("code", c.last_exit_code).close('}');
    }
    json.close('}');
  }
  json.close(']');
  json.close('}');
}

void service_text(std::string& out, const BusSnapshot& snapshot, const ServiceRow& row,
                  std::size_t width) {
  const ServiceInfo& s = row.info;
  const std::string servers =
      row.registered ? fmt::format("{}/{}", row.live_servers(), row.servers.size()) : "-";
  out += fmt::format("{:<{}} {:>8} {:>6} {:>5} {:>8} {:>7} {:>8} {:>7} {:>7} {:>7}\n",
                     s.name, width, servers, s.depth, s.dead_letters, s.totals.calls, s.totals.casts,
                     s.totals.replies, caller_errors(s),
                     latency_text(latency_quantile(s.totals, 0.50)),
                     latency_text(latency_quantile(s.totals, 0.99)));
  if (!row.registered) out += "  (not registered: the launcher runs it, no server joined yet)\n";
  std::string errors;
  for (std::size_t i = 1; i < s.outcomes.size(); ++i) {
    if (s.outcomes[i] == 0) continue;
    errors += fmt::format("{}{} {}", errors.empty() ? "" : ", ", outcome_name(i), s.outcomes[i]);
  }
  std::string problems;
  for (const auto& [name, n] : problem_counters(s)) {
    if (n != 0) problems += fmt::format("{}{} {}", problems.empty() ? "" : ", ", name, n);
  }
  if (!errors.empty() || !problems.empty()) {
    out += fmt::format("  errors: {}{}{}\n", errors, !errors.empty() && !problems.empty() ? "; " : "",
                       problems);
  }
  if (row.servers.empty() && row.children.empty()) {
    out += "  (no server)\n";
    return;
  }
  const auto& children = snapshot.launcher ? snapshot.launcher->children
                                           : std::vector<LauncherChild>{};
  out += fmt::format("  {:>8}  {:<13} {:<9} {:>8}  {:<10} {:>6} {:>7}  {}\n", "PID", "CHILD",
                     "STATE", "RESTARTS", "UPTIME", "CALLS", "CASTS", "LAST EXIT");
  for (const auto& server : row.servers) {
    const ServerInfo& i = server.info;
    const LauncherChild* child = server.child ? &children[*server.child] : nullptr;
    out += fmt::format("  {:>8}  {:<13} {:<9} {:>8}  {:<10} {:>6} {:>7}  {}\n", i.pid,
                       child ? child->name : "-", server.state,
                       child ? std::to_string(child->restarts) : "-",
                       short_duration(uptime_ns(snapshot, i.joined_unix_ns)), i.counters.calls,
                       i.counters.casts, child ? exit_text(*child) : "-");
  }
  // Children with no live server of this service: failed, restarting, stopped.
  for (const std::size_t index : row.children) {
    const LauncherChild& c = children[index];
    if (serving(row, c)) continue;
    const bool shown = std::any_of(row.servers.begin(), row.servers.end(), [&](const ServerRow& r) {
      return r.child && *r.child == index;
    });
    if (shown) continue;  // its process is listed above (leaving, dead)
    out += fmt::format("  {:>8}  {:<13} {:<9} {:>8}  {:<10} {:>6} {:>7}  {}\n",
                       c.pid > 0 ? std::to_string(c.pid) : "-", c.name, c.state, c.restarts,
                       c.pid > 0 ? short_duration(uptime_ns(snapshot, c.started_unix_ns)) : "-",
                       "-", "-", exit_text(c));
  }
}

}  // namespace

std::string latency_text(std::chrono::microseconds bound) {
  if (bound.count() == 0) return "-";
  if (bound == std::chrono::microseconds::max()) return ">16ms";
  if (bound.count() < 1000) return fmt::format("<{}us", bound.count());
  return fmt::format("<{}ms", bound.count() / 1000);
}

std::size_t service_column_width(const BusSnapshot& snapshot) noexcept {
  std::size_t width = 12;
  for (const auto& row : snapshot.services) width = std::max(width, row.info.name.size());
  return width;
}

std::uint64_t caller_errors(const ServiceInfo& service) noexcept {
  std::uint64_t sum = 0;
  for (const std::uint64_t n : service.outcomes) sum += n;
  return sum;
}

std::string render_ps_json(const BusSnapshot& snapshot) {
  Json json;
  json.open('{').field("bus", snapshot.bus).field("taken_unix_ns", snapshot.taken_unix_ns);
  json.key("launcher");
  if (snapshot.launcher) {
    const LauncherStatusView& l = *snapshot.launcher;
    json.open('{')
        .field("pid", l.pid)
        .field("config", l.config)
        .field("phase", l.phase)
        .field("started_unix_ns", l.started_unix_ns);
    json.key("failed_services").open('[');
    for (const auto& name : l.failed_services) json.value(name);
    json.close(']').close('}');
  } else {
    json.null();
  }
  json.key("launcher_problem");
  if (snapshot.launcher_problem.empty()) {
    json.null();
  } else {
    json.value(snapshot.launcher_problem);
  }
  json.key("services").open('[');
  for (const auto& row : snapshot.services) service_json(json, snapshot, row);
  json.close(']');
  json.key("processes").open('[');
  for (const auto& p : snapshot.processes) {
    json.open('{')
        .field("pid", p.pid)
        .field("label", p.label)
        .field("alive", p.alive)
        .field("slot", p.slot)
        .close('}');
  }
  json.close(']').close('}');
  return json.take() + "\n";
}

std::string render_ps_text(const BusSnapshot& snapshot) {
  std::string out = fmt::format("bus {}", snapshot.bus);
  if (snapshot.launcher) {
    const LauncherStatusView& l = *snapshot.launcher;
    out += fmt::format(" | launcher pid {} {}", l.pid, l.phase);
    if (l.started_unix_ns != 0) {
      out += fmt::format(" | up {}", short_duration(uptime_ns(snapshot, l.started_unix_ns)));
    }
    if (!l.config.empty()) out += fmt::format(" | {}", l.config);
    if (!l.failed_services.empty()) {
      out += "\nfailed services:";
      for (const auto& name : l.failed_services) out += " " + name;
    }
  } else {
    out += " | no launcher";
  }
  out += "\n";
  if (!snapshot.launcher_problem.empty()) {
    out += fmt::format("launcher status unreadable: {}\n", snapshot.launcher_problem);
  }
  out += "\n";
  if (snapshot.services.empty()) {
    out += "no services\n";
  } else {
    const std::size_t width = service_column_width(snapshot);
    out += fmt::format("{:<{}} {:>8} {:>6} {:>5} {:>8} {:>7} {:>8} {:>7} {:>7} {:>7}\n",
                       "SERVICE", width, "SERVERS", "DEPTH", "DEAD", "CALLS", "CASTS", "REPLIES",
                       "ERRORS", "P50", "P99");
    for (const auto& row : snapshot.services) service_text(out, snapshot, row, width);
  }
  out += "\nPROCESSES\n";
  out += fmt::format("  {:>8}  {:<20} {:>5}\n", "PID", "LABEL", "ALIVE");
  for (const auto& p : snapshot.processes) {
    out += fmt::format("  {:>8}  {:<20} {:>5}\n", p.pid, p.label.empty() ? "-" : p.label,
                       p.alive ? "yes" : "no");
  }
  return out;
}

}  // namespace shmbus::tools
