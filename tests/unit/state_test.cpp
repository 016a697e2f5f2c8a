// The state segment in one process (state.hpp, layout/state.hpp): put, get,
// remove, list, usage; two-phase puts; FlatBuffers built in place; state_full;
// refs (stale, forged); the read-only mapping; the per-process pin limit.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "shmbus/layout/state.hpp"
#include "shmbus/schemas/envelope_generated.h"
#include "shmbus/schemas/state_ref_generated.h"
#include "shmbus/state.hpp"
#include "support/child.hpp"
#include "support/scoped_bus.hpp"
#include "support/wait_until.hpp"
#include "support/state_pattern.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;

std::vector<std::byte> bytes_of(const std::string& text) {
  std::vector<std::byte> out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}
std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

struct StateBus {
  explicit StateBus(std::uint64_t capacity = 1u << 20)
      : bus(test::ScopedBus::create({.state_capacity = capacity})),
        writer(bus->state(StateAccess::read_write).value()),
        reader(bus->state().value()) {}
  test::ScopedBus bus;
  State writer;
  State reader;
};

TEST(StateLayout, MatchesItsDiagram) {
  EXPECT_EQ(sizeof(layout::StateHeader), 256u);
  EXPECT_EQ(sizeof(layout::KeyEntry), 16u);
  EXPECT_EQ(sizeof(layout::VersionSlot), 128u);
  EXPECT_EQ(layout::kStateKeysOffset, 384u);
  EXPECT_EQ(layout::kStateVersionsOffset, 4480u);
  EXPECT_EQ(layout::kStateDataOffset, 139264u);
  EXPECT_EQ(layout::state_handle(5, 7), (5u << 16) | 7u);
  static_assert(sizeof(wire::StateRef) == 8);
}

TEST(State, PutGetRemoveListAndUsage) {
  StateBus s;
  ASSERT_TRUE(s.writer.put("greeting", bytes_of("hello")));
  ASSERT_TRUE(s.writer.put("routes", bytes_of("a->b")));
  auto view = s.reader.get("greeting");
  ASSERT_TRUE(view) << to_string(view.error());
  EXPECT_EQ(text_of(view->bytes()), "hello");
  EXPECT_EQ(view->key(), "greeting");
  const std::uint64_t first = view->version();
  ASSERT_TRUE(s.writer.put("greeting", bytes_of("hello again")));
  EXPECT_EQ(text_of(view->bytes()), "hello") << "a pinned version never changes";
  auto again = s.reader.get("greeting");
  ASSERT_TRUE(again);
  EXPECT_EQ(text_of(again->bytes()), "hello again");
  EXPECT_GT(again->version(), first);

  auto listed = s.reader.list();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].key == "routes" ? listed[1].size : listed[0].size, 11u);

  StateUsage usage = s.reader.usage();
  EXPECT_EQ(usage.keys, 2u);
  EXPECT_EQ(usage.live, 2u);
  EXPECT_EQ(usage.retired, 1u) << "the first greeting is pinned by `view`";
  view = std::move(again);  // unpins the first version
  ASSERT_TRUE(s.writer.reclaim());
  usage = s.reader.usage();
  EXPECT_EQ(usage.retired, 0u);
  EXPECT_EQ(usage.free_bytes, usage.capacity - usage.live_bytes);

  ASSERT_TRUE(s.writer.remove("routes"));
  EXPECT_EQ(s.reader.get("routes").error(), Errc::no_such_key);
  EXPECT_EQ(s.writer.remove("routes").error().code, Errc::no_such_key);
  EXPECT_EQ(s.reader.get("").error(), Errc::bad_options);
  EXPECT_EQ(s.reader.get(std::string(64, 'k')).error(), Errc::bad_options);
  ASSERT_TRUE(s.writer.put("routes", bytes_of("b->c")));  // reuses the tombstone
  EXPECT_EQ(text_of(s.reader.get("routes")->bytes()), "b->c");
}

TEST(State, ManyKeysProbeAndStayDistinct) {
  StateBus s;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(s.writer.put("key" + std::to_string(i), bytes_of(std::to_string(i * 7))));
  }
  for (int i = 0; i < 200; i += 2) ASSERT_TRUE(s.writer.remove("key" + std::to_string(i)));
  for (int i = 0; i < 200; ++i) {
    auto view = s.reader.get("key" + std::to_string(i));
    if (i % 2 == 0) {
      EXPECT_EQ(view.error(), Errc::no_such_key) << i;
    } else {
      ASSERT_TRUE(view) << i;
      EXPECT_EQ(text_of(view->bytes()), std::to_string(i * 7));
    }
  }
  EXPECT_EQ(s.reader.list().size(), 100u);
}

TEST(State, TwoPhasePutPublishesAbortsAndAbortsOnDestruction) {
  StateBus s;
  {
    auto tx = s.writer.begin_put("k", 5);
    ASSERT_TRUE(tx);
    std::memcpy(tx->bytes().data(), "first", 5);
    EXPECT_EQ(s.reader.get("k").error(), Errc::no_such_key) << "invisible before publish";
    EXPECT_EQ(s.reader.usage().writing, 1u);
    auto ref = tx->publish();
    ASSERT_TRUE(ref);
    EXPECT_EQ(tx->publish().error().code, Errc::stale_ref) << "a transaction publishes once";
  }
  {
    auto tx = s.writer.begin_put("k", 6);
    ASSERT_TRUE(tx);
    std::memcpy(tx->bytes().data(), "second", 6);
    tx->abort();
  }
  {
    auto tx = s.writer.begin_put("k", 5);
    ASSERT_TRUE(tx);
    std::memcpy(tx->bytes().data(), "third", 5);
  }  // destroyed unpublished
  EXPECT_EQ(text_of(s.reader.get("k")->bytes()), "first");
  const StateUsage usage = s.reader.usage();
  EXPECT_EQ(usage.writing, 0u);
  EXPECT_EQ(usage.aborts, 2u);
  EXPECT_EQ(usage.free_bytes, usage.capacity - usage.live_bytes);
}

TEST(State, FlatBufferIsBuiltInsideTheSegmentAndReadInPlace) {
  StateBus s;
  auto tx = s.writer.begin_put("envelope", 4096);
  ASSERT_TRUE(tx);
  auto builder = tx->builder();
  builder.Finish(wire::CreateEnvelope(builder, wire::MessageKind::Cast, 42, 7, 0,
                                      builder.CreateString("mailer")),
                 wire::EnvelopeIdentifier());
  const auto* built = builder.GetBufferPointer();
  const auto* span_begin = reinterpret_cast<const std::uint8_t*>(tx->bytes().data());
  EXPECT_GE(built, span_begin);
  EXPECT_LE(built + builder.GetSize(), span_begin + 4096);
  const std::string state_file = "/dev/shm/shmbus." + s.bus.name() + ".~state";
  EXPECT_NE(test::mapping_of(built).find(state_file), std::string::npos)
      << "built outside the state segment: " << test::mapping_of(built);

  auto ref = tx->publish<wire::Envelope>(builder, wire::EnvelopeIdentifier());
  ASSERT_TRUE(ref) << ref.error().message();
  auto view = s.reader.get("envelope");
  ASSERT_TRUE(view);
  const std::string where = test::mapping_of(view->bytes().data());
  EXPECT_NE(where.find(state_file), std::string::npos) << where;
  EXPECT_NE(where.find(" r--s "), std::string::npos) << "readers map read-only: " << where;
  EXPECT_EQ(view->bytes().size(), builder.GetSize());
  auto root = view->root<wire::Envelope>(wire::EnvelopeIdentifier());
  ASSERT_TRUE(root);
  EXPECT_EQ((*root)->correlation_id(), 42u);
  EXPECT_EQ((*root)->service()->str(), "mailer");
  EXPECT_EQ(view->root<wire::Envelope>("MAIL").error(), Errc::bad_message);
  EXPECT_EQ(std::uintptr_t(view->bytes().data()) % 8, 0u);
}

TEST(State, UnverifiableFlatBufferIsRefusedAndNothingChanges) {
  StateBus s;
  auto tx = s.writer.begin_put("envelope", 256);
  ASSERT_TRUE(tx);
  auto builder = tx->builder();
  builder.Finish(builder.CreateString("not an envelope"), "XXXX");
  auto ref = tx->publish<wire::Envelope>(builder, wire::EnvelopeIdentifier());
  ASSERT_FALSE(ref);
  EXPECT_EQ(ref.error().code, Errc::bad_message);
  tx->abort();
  EXPECT_EQ(s.reader.get("envelope").error(), Errc::no_such_key);

  auto small = s.writer.begin_put("envelope", 64);  // a builder that outgrows its span
  ASSERT_TRUE(small);
  auto grown = small->builder();
  grown.Finish(grown.CreateString(std::string(1000, 'x')));
  EXPECT_EQ(small->publish(grown).error().code, Errc::record_too_large);
}

TEST(State, FullPutSaysWhatHoldsTheSpaceAndChangesNothing) {
  StateBus s(128u << 10);
  const std::vector<std::byte> big(60u << 10, std::byte{1});
  ASSERT_TRUE(s.writer.put("a", big));
  auto pinned = s.reader.get("a");
  ASSERT_TRUE(pinned);
  ASSERT_TRUE(s.writer.put("a", std::vector<std::byte>(60u << 10, std::byte{2})));
  const StateUsage before = s.reader.usage();
  auto full = s.writer.put("b", std::vector<std::byte>(30u << 10, std::byte{3}));
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, Errc::state_full);
  EXPECT_NE(full.error().detail.find("live 61440 B"), std::string::npos) << full.error().detail;
  EXPECT_NE(full.error().detail.find("retired (still pinned) 61440 B"), std::string::npos)
      << full.error().detail;
  const StateUsage after = s.reader.usage();
  EXPECT_EQ(after.live_bytes, before.live_bytes);
  EXPECT_EQ(after.retired_bytes, before.retired_bytes);
  EXPECT_EQ(after.full, before.full + 1);
  EXPECT_EQ(s.reader.get("b").error(), Errc::no_such_key);
  EXPECT_EQ(pinned->bytes()[0], std::byte{1});
  EXPECT_EQ(s.reader.get("a")->bytes()[0], std::byte{2});
  EXPECT_EQ(s.writer.begin_put("c", 1u << 20).error().code, Errc::bad_options);

  pinned = s.reader.get("a");  // the old version is no longer pinned
  EXPECT_TRUE(s.writer.put("b", std::vector<std::byte>(30u << 10, std::byte{3})));
}

TEST(State, RefsResolveStaleOrBad) {
  StateBus s;
  auto first = s.writer.put("k", bytes_of("v1"));
  ASSERT_TRUE(first);
  const wire::StateRef on_wire(first->handle);  // as a message would carry it
  auto resolved = s.reader.resolve(StateRef{on_wire.handle()});
  ASSERT_TRUE(resolved);
  EXPECT_EQ(text_of(resolved->bytes()), "v1");
  EXPECT_EQ(State::ref(*resolved), *first);
  ASSERT_TRUE(s.writer.put("k", bytes_of("v2")));
  EXPECT_TRUE(s.reader.resolve(*first)) << "retired, still there while pinned by `resolved`";
  resolved = s.reader.get("k");
  ASSERT_TRUE(s.writer.reclaim());
  EXPECT_EQ(s.reader.resolve(*first).error(), Errc::stale_ref);

  const std::uint64_t version = first->handle >> 16;
  for (std::uint64_t forged : {std::uint64_t{0}, std::uint64_t{1},  // version 0
                               (version << 16) | 0xffff,             // slot out of range
                               (std::uint64_t{1} << 40) << 16,       // never issued
                               ~std::uint64_t{0}}) {
    EXPECT_EQ(s.reader.resolve(StateRef{forged}).error(), Errc::bad_ref) << forged;
  }
}

TEST(State, ReadOnlyMappingCannotBeWrittenOrMadeWritable) {
  StateBus s;
  ASSERT_TRUE(s.writer.put("k", bytes_of("value")));
  auto view = s.reader.get("k");
  ASSERT_TRUE(view);
  const long page = ::sysconf(_SC_PAGESIZE);
  void* at = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(view->bytes().data()) &
                                     ~static_cast<std::uintptr_t>(page - 1));
  errno = 0;
  EXPECT_NE(::mprotect(at, static_cast<std::size_t>(page), PROT_READ | PROT_WRITE), 0);
  EXPECT_EQ(errno, EACCES);
  EXPECT_FALSE(s.reader.writable());
  EXPECT_EQ(s.reader.put("k", bytes_of("x")).error().code, Errc::permission_denied);
  EXPECT_EQ(s.reader.begin_put("k", 1).error().code, Errc::permission_denied);
  EXPECT_EQ(s.reader.remove("k").error().code, Errc::permission_denied);
  EXPECT_EQ(s.reader.reclaim().error().code, Errc::permission_denied);
  EXPECT_EQ(text_of(view->bytes()), "value");
}

TEST(State, SixteenthViewIsTooManyInFlight) {
  StateBus s;
  ASSERT_TRUE(s.writer.put("k", bytes_of("v")));
  std::vector<StateView> views;
  for (int i = 0; i < 15; ++i) {
    auto view = (i % 2 == 0 ? s.reader : s.writer).get("k");  // both mappings share the cells
    ASSERT_TRUE(view) << i;
    views.push_back(std::move(*view));
  }
  EXPECT_EQ(s.reader.get("k").error(), Errc::too_many_in_flight);
  EXPECT_EQ(s.reader.resolve(views[0].ref()).error(), Errc::too_many_in_flight);
  views.pop_back();
  EXPECT_TRUE(s.reader.get("k"));
}

TEST(State, CapacityOutOfRangeIsBadOptions) {
  auto bus = Bus::create(test::unique_bus_name(), {.state_capacity = 1024});
  ASSERT_FALSE(bus);
  EXPECT_EQ(bus.error().code, Errc::bad_options);
}

TEST(State, PatternValuesRoundTrip) {
  StateBus s(4u << 20);
  auto tx = s.writer.begin_put("big", 1u << 20);
  ASSERT_TRUE(tx);
  test::fill_pattern(tx->bytes(), 77);
  ASSERT_TRUE(tx->publish());
  auto view = s.reader.get("big");
  ASSERT_TRUE(view);
  EXPECT_EQ(test::check_pattern(view->bytes()), 77u);
}

// Found in review: a forked child shares the parent's process slot and pin
// line; a state call there would clear the parent's pins. It is refused
// (the child dies), and the parent's view stays intact.
TEST(State, AForkedChildCannotTouchTheParentsPins) {
  StateBus s;
  const std::string a(1000, 'A');
  ASSERT_TRUE(s.writer.put("k", bytes_of(a)));
  auto view = s.reader.get("k");
  ASSERT_TRUE(view);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    (void)s.reader.get("no-such-key");  // must not reach the parent's pin line
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status)) << "a state call in a forked child was allowed";
  ASSERT_TRUE(s.writer.put("k", bytes_of(std::string(1000, 'B'))));
  ASSERT_TRUE(s.writer.put("j", bytes_of(std::string(1000, 'C'))));
  EXPECT_EQ(text_of(view->bytes()), a) << "a live view's bytes were reused";
}

// Found in review: a writer killed in the middle of its pin scan leaves a
// version `reclaiming`; it is intact, and a ref to it resolves at once.
TEST(State, ARefResolvesWhileTheWriterThatWasScanningIsDead) {
  StateBus s;
  auto ref1 = s.writer.put("k", bytes_of("one"));
  ASSERT_TRUE(ref1);
  {
    auto pinned = s.reader.get("k");
    ASSERT_TRUE(pinned);
    ASSERT_TRUE(s.writer.put("k", bytes_of("two")));  // v1 retired, kept by `pinned`
  }
  test::Child writer = test::Child::spawn("state_put", {"--bus", s.bus.name(), "--key", "other",
                                                        "--size", "64", "--stop-at",
                                                        "state_reclaim_marked"});
  ASSERT_TRUE(test::wait_until(10s, [&] { return writer.reached("state_reclaim_marked"); }))
      << writer.output();
  writer.kill_9();
  (void)writer.wait();
  auto during = s.reader.resolve(*ref1);
  ASSERT_TRUE(during) << to_string(during.error());
  EXPECT_EQ(text_of(during->bytes()), "one");
}

}  // namespace
}  // namespace shmbus
