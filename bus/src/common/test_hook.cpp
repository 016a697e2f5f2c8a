#include "shmbus/detail/test_hook.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace shmbus::detail {

std::atomic<bool> g_test_hooks_armed{false};

namespace {
char g_stop_at[64];
std::atomic<long> g_stop_after{0};
int g_report_fd = -1;

void report_and_stop(const char* name) noexcept {
  char line[96];
  const int n = std::snprintf(line, sizeof line, "reached %s\n", name);
  if (g_report_fd >= 0 && n > 0) (void)!::write(g_report_fd, line, static_cast<std::size_t>(n));
  // Block every signal but SIGKILL's: the test kills us here.
  sigset_t none;
  sigemptyset(&none);
  for (;;) ::sigsuspend(&none);
}
}  // namespace

void test_hook_reached(const char* name) noexcept {
  if (g_stop_at[0] != '\0') {
    if (std::strcmp(name, g_stop_at) == 0) report_and_stop(name);
    return;
  }
  if (g_stop_after.fetch_sub(1, std::memory_order_relaxed) == 1) report_and_stop(name);
}

void arm_test_hook(const char* stop_at, long stop_after, int report_fd) noexcept {
  std::snprintf(g_stop_at, sizeof g_stop_at, "%s", stop_at == nullptr ? "" : stop_at);
  g_stop_after.store(stop_after, std::memory_order_relaxed);
  g_report_fd = report_fd;
  g_test_hooks_armed.store(true, std::memory_order_relaxed);
}

}  // namespace shmbus::detail
