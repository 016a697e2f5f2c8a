// -----------------------------------------------------------------------------
// detail/test_hook.hpp — named kill points for fault-injection tests
// -----------------------------------------------------------------------------
//
// `SHMBUS_TEST_HOOK(ring_after_claim)` marks a point where a fault test may
// stop this process (it reports "reached <name>" on a pipe and then blocks
// until the test kills it with SIGKILL). Compiled whenever tests are built
// (SHMBUS_TEST_HOOKS), in every build type; unarmed it is one relaxed load.
#pragma once

#include <atomic>

namespace shmbus::detail {

extern std::atomic<bool> g_test_hooks_armed;

// Slow path: compares `name` with the armed point (or counts hook passages for
// random kill points) and, on a match, reports and blocks for ever.
void test_hook_reached(const char* name) noexcept;

// Arms the hooks of this process. `stop_at` is a hook name, or "" with
// `stop_after` > 0 to stop at the stop_after-th passage of any hook. The report
// "reached <name>\n" is written to `report_fd`. Used by tests/support only.
void arm_test_hook(const char* stop_at, long stop_after, int report_fd) noexcept;

}  // namespace shmbus::detail

#if defined(SHMBUS_TEST_HOOKS)
#define SHMBUS_TEST_HOOK(name)                                                       \
  do {                                                                               \
    if (::shmbus::detail::g_test_hooks_armed.load(std::memory_order_relaxed))        \
        [[unlikely]] {                                                               \
      ::shmbus::detail::test_hook_reached(#name);                                    \
    }                                                                                \
  } while (false)
#else
#define SHMBUS_TEST_HOOK(name) \
  do {                         \
  } while (false)
#endif
