#include <gtest/gtest.h>

#include <system_error>

#include "shmbus/error.hpp"

namespace shmbus {
namespace {

TEST(Errc, ValuesAreStable) {
  // CLI exit codes and counter indices: never renumber.
  EXPECT_EQ(static_cast<int>(Errc::no_such_bus), 1);
  EXPECT_EQ(static_cast<int>(Errc::mailbox_full), 8);
  EXPECT_EQ(static_cast<int>(Errc::timeout_unknown), 19);
  EXPECT_EQ(static_cast<int>(Errc::system_error), 26);
}

TEST(Errc, IsAStdErrorCodeWithItsOwnCategory) {
  const std::error_code code = Errc::mailbox_full;
  EXPECT_EQ(code.category().name(), std::string("shmbus"));
  EXPECT_EQ(code, Errc::mailbox_full);
  EXPECT_FALSE(code.message().empty());
}

TEST(Errc, NamesMatchTheDesignVocabulary) {
  EXPECT_STREQ(to_string(Errc::timeout_not_started), "timeout_not_started");
  EXPECT_STREQ(to_string(Errc::record_too_large), "record_too_large");
  EXPECT_STREQ(to_string(Errc::layout_mismatch), "layout_mismatch");
}

TEST(Error, MessageStartsWithTheCodeName) {
  const Error error{Errc::no_such_bus, "no bus named 'x'"};
  EXPECT_EQ(error.message(), "no_such_bus: no bus named 'x'");
}

}  // namespace
}  // namespace shmbus
