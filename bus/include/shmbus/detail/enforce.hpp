// -----------------------------------------------------------------------------
// detail/enforce.hpp — bugs are not errors
// -----------------------------------------------------------------------------
//
// SHMBUS_ENFORCE(cond, msg): always on; aborts with file:line and the message.
// SHMBUS_ASSERT(cond, msg): debug builds only; "cannot happen with correct use".
// Never use either on data another process wrote: that is a typed error
// (bad_message, bad_ref, not_a_segment), counted, and the process stays up.
#pragma once

namespace shmbus::detail {
[[noreturn]] void enforce_failed(const char* expr, const char* msg, const char* file,
                                 int line) noexcept;
}  // namespace shmbus::detail

#define SHMBUS_ENFORCE(cond, msg)                                                     \
  do {                                                                                \
    if (!(cond)) [[unlikely]] {                                                       \
      ::shmbus::detail::enforce_failed(#cond, msg, __FILE__, __LINE__);               \
    }                                                                                 \
  } while (false)

#if defined(NDEBUG)
#define SHMBUS_ASSERT(cond, msg) \
  do {                           \
  } while (false)
#else
#define SHMBUS_ASSERT(cond, msg) SHMBUS_ENFORCE(cond, msg)
#endif
