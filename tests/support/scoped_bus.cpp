#include "support/scoped_bus.hpp"

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>

#include <gtest/gtest.h>

namespace shmbus::test {

std::string unique_bus_name() {
  static std::atomic<int> counter{0};
  std::string test = "x";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    test = info->name();
  }
  std::string name = "t" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + test;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-') ch = '_';
  }
  return name.substr(0, 48);
}

long scaled(long n) {
  double scale = 1.0;
  if (const char* env = std::getenv("SHMBUS_STRESS_SCALE")) scale = std::atof(env);
  if (!(scale > 0)) scale = 1.0;
  const long value = static_cast<long>(static_cast<double>(n) * scale);
  return value < 1 ? 1 : value;
}

ScopedBus ScopedBus::create(CreateOptions options) { return create(unique_bus_name(), options); }

ScopedBus ScopedBus::create(const std::string& name, CreateOptions options) {
  auto bus = Bus::create(name, options);
  if (!bus) {
    std::fprintf(stderr, "ScopedBus: %s\n", bus.error().message().c_str());
    std::abort();
  }
  return ScopedBus(name, std::move(*bus));
}

ScopedBus::~ScopedBus() {
  if (!name_.empty()) (void)Bus::remove(name_);
}

Mailbox ScopedBus::mailbox(const std::string& name, MailboxOptions options) {
  auto mailbox = bus_.create_mailbox(name, options);
  if (!mailbox) {
    std::fprintf(stderr, "ScopedBus::mailbox: %s\n", mailbox.error().message().c_str());
    std::abort();
  }
  return std::move(*mailbox);
}

}  // namespace shmbus::test
