#include "shmbus/detail/enforce.hpp"

#include <cstdio>
#include <cstdlib>

namespace shmbus::detail {

void enforce_failed(const char* expr, const char* msg, const char* file, int line) noexcept {
  std::fprintf(stderr, "shmbus: %s:%d: %s (%s)\n", file, line, msg, expr);
  std::fflush(stderr);
  std::abort();
}

}  // namespace shmbus::detail
