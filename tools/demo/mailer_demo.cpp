// shmbus_demo — the main job of `./tools/dev demo`.
//
// `shmbus launch` brings up the bus of tools/examples/demo.toml: a `mailer`
// service, a pool of worker processes under a supervisor. The demo puts the
// mail templates into the bus's state segment, sends a burst of SendEmail
// calls and casts (each with its own id), kills one worker with SIGKILL
// mid-burst — the launcher restarts it — and then accounts for every id: a
// file in the Maildir, a typed error its sender got, or a dead letter.
// Nothing may be lost. SIGTERM to the launcher then drains, stops the
// workers and removes the bus; the demo checks /dev/shm is clean. The last
// line: `summary: sent=N delivered=N errors=N restarts=N lost=N`.
//
//   shmbus_demo [--config FILE [--bus NAME]] [--maildir DIR] [--messages N]
//
// --bus: the bus name a --config other than demo.toml gives (default "demo").
//
// Exit status 0 when nothing was lost and the launcher shut down cleanly.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include <shmbus/schemas/launcher_generated.h>
#include <shmbus/schemas/mail_template_generated.h>

#include "launcher_process.hpp"
#include "ledger.hpp"
#include "mail_burst.hpp"
#include "shmbus/shmbus.hpp"
#include "spawn.hpp"

namespace mailer = shmbus::examples::mailer;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

namespace {

// The config's bus name: "demo", or --bus NAME for a copy of the config that
// names another (the demo test's own name: parallel runs never share a bus).
std::string g_bus = "demo";
const char* const kService = "mailer";

std::string option(int argc, char** argv, const char* name, std::string fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}

// Polls `done` every few milliseconds until it holds or `timeout` passes.
template <class Predicate>
bool wait_for(std::chrono::milliseconds timeout, Predicate done) {
  const auto until = Steady::now() + timeout;
  while (!done()) {
    if (Steady::now() >= until) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

std::optional<shmbus::ServiceInfo> service_info(const shmbus::Bus& bus) {
  for (auto& info : bus.services()) {
    if (info.name == kService) return info;
  }
  return std::nullopt;
}

std::vector<int> live_server_pids(const shmbus::Bus& bus) {
  std::vector<int> pids;
  if (auto info = service_info(bus)) {
    for (const auto& server : info->servers) {
      if (server.alive && !server.leaving) pids.push_back(server.pid);
    }
  }
  return pids;
}

// The three templates the mailer renders, kept in the state segment. The
// digest's body is 64 KiB: the workers read it in place, no request carries it.
bool put_templates(shmbus::Bus& bus) {
  auto state = bus.state(shmbus::StateAccess::read_write);
  if (!state) {
    std::fprintf(stderr, "demo: %s\n", state.error().message().c_str());
    return false;
  }
  std::string digest = "Hello {{name}},\n\nyour weekly digest:\n";
  while (digest.size() < 64 * 1024) digest += "- a line of news for {{email}}, kept in shared memory\n";
  const std::pair<const char*, std::pair<std::string, std::string>> templates[] = {
      {"mail.welcome", {"Welcome, {{name}}", "Hello {{name}},\n\nwelcome aboard. (mail {{id}})"}},
      {"mail.invoice", {"Your invoice {{id}}", "Dear {{name}},\n\nyour invoice {{id}} is attached."}},
      {"mail.digest", {"Your digest", digest}},
  };
  for (const auto& [key, text] : templates) {
    auto put = (*state).begin_put(key, text.second.size() + text.first.size() + 256);
    if (!put) {
      std::fprintf(stderr, "demo: %s\n", put.error().message().c_str());
      return false;
    }
    auto builder = put->builder();
    mailer::FinishMailTemplateBuffer(
        builder, mailer::CreateMailTemplateDirect(builder, text.first.c_str(), text.second.c_str()));
    auto ref = put->publish<mailer::MailTemplate>(builder, mailer::MailTemplateIdentifier());
    if (!ref) {
      std::fprintf(stderr, "demo: %s\n", ref.error().message().c_str());
      return false;
    }
    std::printf("  state: put %-13s %6zu bytes (a MailTemplate the workers read in place)\n", key,
                static_cast<std::size_t>(builder.GetSize()));
  }
  return true;
}

// Restarts the launcher made, from the status it publishes in the state segment.
std::uint64_t launcher_restarts(shmbus::Bus& bus) {
  auto state = bus.state();
  if (!state) return 0;
  auto view = state->get("shmbus.launcher");
  if (!view) return 0;
  const auto bytes = view->bytes();
  flatbuffers::Verifier verifier(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  if (!shmbus::launcher::VerifyLauncherStatusBuffer(verifier)) return 0;
  const auto* status = shmbus::launcher::GetLauncherStatus(bytes.data());
  std::uint64_t restarts = 0;
  if (status->children() != nullptr) {
    for (const auto* child : *status->children()) restarts += child->restarts();
  }
  return restarts;
}

bool bus_left_in_dev_shm() {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", error)) {
    const std::string name = entry.path().filename().string();
    if (name == "shmbus." + g_bus || name.rfind("shmbus." + g_bus + ".", 0) == 0) {
      return true;
    }
  }
  return false;
}

struct Result {
  shmbus::demo::Ledger ledger;
  std::uint64_t restarts = 0;
};

// Everything done attached to the bus: templates, burst, kill, ledger. The
// bus is detached when this returns, before the launcher is asked to stop.
std::optional<Result> run_on_bus(const shmbus::demo::BurstPlan& plan, const std::string& maildir) {
  auto bus = shmbus::Bus::attach(g_bus, {.label = "demo-client"});
  if (!bus) {
    std::fprintf(stderr, "demo: %s\n", bus.error().message().c_str());
    return std::nullopt;
  }
  if (!put_templates(*bus)) return std::nullopt;
  auto mailer_service = bus->service(kService);
  if (!mailer_service) {
    std::fprintf(stderr, "demo: %s\n", mailer_service.error().message().c_str());
    return std::nullopt;
  }
  std::printf("burst: %llu messages to '%s' (odd ids cast, even ids called, %zu calls in flight)\n",
              static_cast<unsigned long long>(plan.messages), kService, plan.calls_in_flight);
  int killed = 0;
  std::size_t pool = 0;  // live servers just before the kill
  Steady::time_point killed_at{};
  std::thread watcher;
  double restart_ms = -1;  // kill → the pool whole again; -1: not within 5 s
  const auto started = Steady::now();
  auto outcomes = shmbus::demo::send_burst(
      *mailer_service, plan,
      [&](std::uint64_t sent) {
        std::printf("  burst: %5llu/%llu sent\n", static_cast<unsigned long long>(sent),
                    static_cast<unsigned long long>(plan.messages));
        std::fflush(stdout);
      },
      [&] {
        const auto pids = live_server_pids(*bus);
        if (pids.empty()) return;
        killed = pids.front();
        pool = pids.size();
        killed_at = Steady::now();
        ::kill(killed, SIGKILL);
        std::printf("kill -9 worker pid %d, mid-burst\n", killed);
        std::fflush(stdout);
        // Timed from its own attachment while the burst goes on: the replacement's
        // server is live in the registry, the killed pid gone from it.
        watcher = std::thread([&, killed_pid = killed, pool_size = pool, since = killed_at] {
          auto watch = shmbus::Bus::attach(g_bus, {.label = "demo-watch"});
          if (!watch) return;
          if (wait_for(5s, [&] {
                const auto now = live_server_pids(*watch);
                return now.size() >= pool_size &&
                       std::find(now.begin(), now.end(), killed_pid) == now.end();
              })) {
            restart_ms = std::chrono::duration<double, std::milli>(Steady::now() - since).count();
          }
        });
      });
  if (watcher.joinable()) watcher.join();
  const double burst_s = std::chrono::duration<double>(Steady::now() - started).count();
  std::printf("burst: done in %.2f s: %llu calls (%zu replied Sent), %llu casts (%zu accepted)\n",
              burst_s, static_cast<unsigned long long>(outcomes.calls), outcomes.calls_sent.size(),
              static_cast<unsigned long long>(outcomes.casts), outcomes.casts_accepted.size());
  if (killed != 0) {
    if (restart_ms >= 0) {
      std::printf("restart: the launcher replaced worker %d; the pool had %zu live servers again "
                  "%.1f ms after the kill\n", killed, pool, restart_ms);
    } else {
      std::printf("restart: NOT seen within 5 s of the kill\n");
    }
  }
  // Casts are asynchronous: wait until each accepted one reached the Maildir
  // or the dead-letter list (the queue drained).
  std::printf("waiting for the accepted casts to reach the Maildir...\n");
  const bool settled = wait_for(30s, [&] {
    auto info = service_info(*bus);
    if (!info || info->depth != 0) return false;
    std::uint64_t missing = 0;
    for (auto id : outcomes.casts_accepted) missing += shmbus::demo::delivered(maildir, id) ? 0 : 1;
    return missing <= info->dead_letters;
  });
  if (!settled) std::printf("  (not all within 30 s: the ledger below says which)\n");
  std::printf("what `shmbus ps %s` shows now:\n", g_bus.c_str());
  std::fflush(stdout);
  (void)std::system((shmbus::demo::own_directory() + "/shmbus ps " + g_bus + " | sed 's/^/  ps │ /'").c_str());
  const auto dead = shmbus::demo::take_dead_letters(*bus, kService);
  return Result{shmbus::demo::reconcile(plan.messages, outcomes, maildir, dead),
                launcher_restarts(*bus)};
}

void print_ledger(const shmbus::demo::Ledger& ledger) {
  std::printf("ledger, by message id:\n  delivered  %6llu  (a file new/<id> in the Maildir)\n",
              static_cast<unsigned long long>(ledger.delivered));
  std::printf("  errors     %6llu  (a typed outcome the sender got, or a dead letter)\n",
              static_cast<unsigned long long>(ledger.errors));
  for (const auto& [kind, count] : ledger.errors_by_kind) {
    std::printf("    %-20s %llu%s\n", kind.c_str(), static_cast<unsigned long long>(count),
                kind == "rejected"         ? "  (calls naming the template 'mail.missing')"
                : kind == "server_crashed" ? "  (calls the killed worker was running)"
                                           : "");
  }
  std::printf("  lost       %6llu  (neither: must be 0)\n", static_cast<unsigned long long>(ledger.lost));
  for (std::size_t i = 0; i < ledger.lost_ids.size() && i < 10; ++i) {
    std::printf("    lost id %llu\n", static_cast<unsigned long long>(ledger.lost_ids[i]));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string config = option(argc, argv, "--config", SHMBUS_DEMO_CONFIG);
  g_bus = option(argc, argv, "--bus", g_bus);
  std::string maildir = option(argc, argv, "--maildir", "");
  shmbus::demo::BurstPlan plan;
  plan.messages = std::strtoull(option(argc, argv, "--messages", "3000").c_str(), nullptr, 10);
  plan.kill_at = plan.messages / 2;
  if (maildir.empty()) {
    char pattern[] = "/tmp/shmbus-demo-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) {
      std::perror("demo: mkdtemp");
      return 1;
    }
    maildir = std::string(pattern) + "/Maildir";
  }
  std::printf("shmbus demo: a pool of mailer workers behind one name, supervised by `shmbus launch`\n"
              "  config  %s\n  maildir %s\n",
              config.c_str(), maildir.c_str());
  std::fflush(stdout);
  // A bus left by a demo that was killed: removed only if no process uses it.
  if (auto used = shmbus::Bus::in_use(g_bus); used && !*used) (void)shmbus::Bus::remove(g_bus);

  auto launcher = shmbus::demo::LauncherProcess::start(shmbus::demo::own_directory() + "/shmbus",
                                                       config, {{"SHMBUS_DEMO_MAILDIR", maildir}});
  if (!launcher) return 1;
  if (!launcher->wait_for_line("ready: bus", 20s)) {
    std::fprintf(stderr, "demo: the launcher did not get ready (its output is above)\n");
    return 1;
  }
  const auto result = run_on_bus(plan, maildir);
  if (result) print_ledger(result->ledger);
  std::printf("shutting down: SIGTERM to the launcher (drain, stop the workers, remove the bus)\n");
  std::fflush(stdout);
  const int launcher_status = launcher->stop(30s);
  launcher.reset();
  const bool left = bus_left_in_dev_shm();
  std::printf("launcher exited with status %d; /dev/shm: %s\n", launcher_status,
              left ? "segments of the bus are LEFT" : "nothing left of the bus");
  if (!result) return 1;
  const auto& ledger = result->ledger;
  std::printf("summary: sent=%llu delivered=%llu errors=%llu restarts=%llu lost=%llu\n",
              static_cast<unsigned long long>(ledger.sent),
              static_cast<unsigned long long>(ledger.delivered),
              static_cast<unsigned long long>(ledger.errors),
              static_cast<unsigned long long>(result->restarts),
              static_cast<unsigned long long>(ledger.lost));
  return ledger.lost == 0 && launcher_status == 0 && !left ? 0 : 1;
}
