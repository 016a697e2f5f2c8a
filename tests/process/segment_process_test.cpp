// Segment errors that need another process (a different uid, a dead creator)
// and the admin calls that answer for the whole host: list, remove, in_use.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "process/child_lines.hpp"
#include "support/shm_file.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/layout/segment_header.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using test::Child;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

AttachOptions ready_within(std::chrono::milliseconds timeout) {
  AttachOptions options;
  options.ready_timeout = timeout;
  return options;
}

// Removes a bus at scope exit, for tests that drop their own Bus early.
struct RemoveAtExit {
  std::string name;
  ~RemoveAtExit() { (void)Bus::remove(name); }
};

bool listed(const std::string& name) {
  auto names = Bus::list();
  EXPECT_TRUE(names) << names.error().message();
  return names && std::find(names->begin(), names->end(), name) != names->end();
}

TEST(SegmentErrors, AttachByAnotherUserToA0600BusIsPermissionDenied) {
  auto bus = test::ScopedBus::create();  // mode 0600, owned by root
  Child nobody = Child::spawn("attach_as_nobody", {"--bus", bus.name()});
  ASSERT_TRUE(test::wait_printed(nobody, "result "));
  const std::string result = test::line_after(nobody, "result ");
  EXPECT_TRUE(result.starts_with("permission_denied ")) << result;
  EXPECT_TRUE(contains(result, test::shm_path(bus.name()))) << result;
  EXPECT_EQ(nobody.wait(), 0);
  EXPECT_EQ(bus->processes().size(), 1u) << "the refused process took no slot";
}

TEST(SegmentModes, BusCreatedWithAnOpenModeAdmitsAnotherUser) {
  CreateOptions options;
  options.mode = 0666;
  auto bus = test::ScopedBus::create(options);
  Child nobody = Child::spawn("attach_as_nobody", {"--bus", bus.name()});
  ASSERT_TRUE(test::wait_printed(nobody, "result "));
  EXPECT_EQ(test::line_after(nobody, "result "), "ok");
  EXPECT_EQ(nobody.wait(), 0);
}

// The bytes of a real control segment whose header says "not ready yet,
// created by (pid, start_time)".
std::vector<std::byte> half_built_by(pid_t pid, std::uint64_t start_time) {
  auto helper = test::ScopedBus::create();
  auto bytes = test::read_bytes(test::shm_path(helper.name()));
  auto& header = *reinterpret_cast<layout::SegmentHeader*>(bytes.data());
  header.ready = 0;
  header.creator_pid = static_cast<std::uint32_t>(pid);
  header.creator_start_time = start_time;
  return bytes;
}

TEST(SegmentErrors, SegmentAbandonedByADeadCreatorIsRefusedAtOnceNamingGc) {
  auto helper = test::ScopedBus::create();
  Child creator = Child::spawn("attach", {"--bus", helper.name()});
  ASSERT_TRUE(test::wait_printed(creator, "ready"));
  const test::ProcStat stat = test::proc_stat(creator.pid());
  ASSERT_NE(stat.start_time, 0u);
  creator.kill_9();
  ASSERT_GE(creator.wait(), 0);

  const std::string name = test::unique_bus_name();
  test::PlantedFile planted(test::shm_path(name), half_built_by(creator.pid(), stat.start_time));
  const auto started = Clock::now();
  auto attached = Bus::attach(name, ready_within(5s));
  const auto took = Clock::now() - started;
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.error().code, Errc::not_a_segment);
  EXPECT_TRUE(contains(attached.error().detail, "shmbus gc")) << attached.error().detail;
  EXPECT_TRUE(contains(attached.error().detail, std::to_string(creator.pid())))
      << attached.error().detail;
  EXPECT_LT(took, 2s) << "an abandoned segment is refused at once, not at the 5 s deadline";

  auto created = Bus::create(name);
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, Errc::bus_exists);
  EXPECT_TRUE(contains(created.error().detail, "shmbus gc")) << created.error().detail;
}

TEST(SegmentErrors, SegmentHalfBuiltByALiveCreatorIsWaitedForNotAbandoned) {
  const test::ProcStat self = test::proc_stat(::getpid());
  const std::string name = test::unique_bus_name();
  test::PlantedFile planted(test::shm_path(name), half_built_by(::getpid(), self.start_time));
  const auto started = Clock::now();
  auto attached = Bus::attach(name, ready_within(300ms));
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.error().code, Errc::not_a_segment);
  EXPECT_TRUE(contains(attached.error().detail, "still being built")) << attached.error().detail;
  EXPECT_GE(Clock::now() - started, 300ms) << "a live creator's segment is waited for";
}

TEST(BusAdmin, ListShowsTheBusButNotItsMailboxes) {
  auto bus = test::ScopedBus::create();
  auto mailbox = bus.mailbox("m1");
  EXPECT_TRUE(listed(bus.name()));
  EXPECT_FALSE(listed(bus.name() + ".m1"));
  auto names = Bus::list();
  ASSERT_TRUE(names);
  EXPECT_TRUE(std::is_sorted(names->begin(), names->end()));
}

TEST(BusAdmin, RemoveDeletesControlAndMailboxSegments) {
  auto bus = test::ScopedBus::create();
  auto first = bus.mailbox("m1");
  MailboxOptions mpmc;
  mpmc.kind = layout::RingKind::mpmc;
  auto second = bus.mailbox("m2", mpmc);
  auto receiver = first.receiver().value();
  ASSERT_TRUE(test::file_exists(test::shm_path(bus.name(), "m1")));
  ASSERT_TRUE(Bus::remove(bus.name()));
  EXPECT_FALSE(test::file_exists(test::shm_path(bus.name())));
  EXPECT_FALSE(test::file_exists(test::shm_path(bus.name(), "m1")));
  EXPECT_FALSE(test::file_exists(test::shm_path(bus.name(), "m2")));
  EXPECT_FALSE(listed(bus.name()));
  auto attached = Bus::attach(bus.name());
  ASSERT_FALSE(attached);
  EXPECT_EQ(attached.error().code, Errc::no_such_bus);
  // A process that still maps the segments keeps working until it detaches.
  const std::vector<std::byte> payload(3);
  ASSERT_TRUE(first.try_send(payload));
  auto delivery = receiver.try_receive();
  ASSERT_TRUE(delivery);
  EXPECT_EQ(delivery->payload().size(), 3u);
  auto again = Bus::remove(bus.name());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::no_such_bus);
}

TEST(BusAdmin, InUseWhileAChildHoldsASlotAndNotOnceItIsKilled) {
  const std::string name = test::unique_bus_name();
  RemoveAtExit cleanup{name};
  {
    auto created = Bus::create(name);
    ASSERT_TRUE(created) << created.error().message();
  }  // detached: the bus exists with nobody in it
  auto idle = Bus::in_use(name);
  ASSERT_TRUE(idle) << idle.error().message();
  EXPECT_FALSE(*idle);

  Child child = Child::spawn("attach", {"--bus", name});
  ASSERT_TRUE(test::wait_printed(child, "ready"));
  EXPECT_TRUE(Bus::in_use(name).value());
  child.kill_9();
  // Dead as soon as it is a zombie: nobody has to reap it first.
  ASSERT_TRUE(test::wait_until(10s, [&] { return test::proc_stat(child.pid()).state == 'Z'; }));
  EXPECT_FALSE(Bus::in_use(name).value());
  EXPECT_GE(child.wait(), 0);
  EXPECT_TRUE(listed(name)) << "in_use takes no slot and removes nothing";
}

}  // namespace
}  // namespace shmbus
