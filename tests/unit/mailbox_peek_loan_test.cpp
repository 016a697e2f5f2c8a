// Mailbox::peek of loaned records: the block's bytes are copied, and the copy
// is checked afterwards against the block's word as well as the cell — a
// block moved to the dead letters can be freed and loaned again while the
// original's cell still says taken (its mover has not released it yet).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "blobs/blob_pool.hpp"
#include "support/bus_probe.hpp"
#include "support/scoped_bus.hpp"
#include "wait/futex.hpp"

namespace shmbus {
namespace {

constexpr std::size_t kBlock = std::size_t{4} << 20;  // a copy long enough to race with

CreateOptions one_big_block() {
  CreateOptions options;
  options.blob_classes = {{kBlock, 1}};
  return options;
}

bool every_byte_is(const std::vector<std::byte>& bytes, std::byte value) {
  return std::all_of(bytes.begin(), bytes.end(), [&](std::byte b) { return b == value; });
}

TEST(MailboxPeekLoan, CopiesTheBlockOfALoanedCast) {
  auto bus = test::ScopedBus::create(one_big_block());
  ASSERT_TRUE(bus->register_service("frames", {}));
  auto service = bus->service("frames").value();
  auto loan = bus->loan(1000).value();
  std::memset(loan.payload().data(), 0x5a, 1000);
  ASSERT_TRUE(service.cast(std::move(loan)));
  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  auto pool = probe.pool("frames").value();
  const auto records = pool.peek(8);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_TRUE(records[0].info.loaned);
  EXPECT_EQ(records[0].info.ref_error, Errc{});
  EXPECT_EQ(records[0].payload.size(), 1000u);
  EXPECT_TRUE(every_byte_is(records[0].payload, std::byte{0x5a}));
}

// A server moves a loaned cast to the dead letters while a tool peeks at the
// service's mailbox; the letter is dropped and its block loaned again and
// rewritten before the server releases the original. A copy that overlapped
// any of it is stale_ref (empty), never bytes of the next loan.
TEST(MailboxPeekLoan, ABlockFreedAndLoanedAgainDuringTheCopyIsNeverReturned) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the copy races with the next loaner by design (a seqlock read): "
                  "ThreadSanitizer reports it, the re-check discards it";
#endif
  auto bus = test::ScopedBus::create(one_big_block());
  ASSERT_TRUE(bus->register_service("frames", {}));
  auto service = bus->service("frames").value();
  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  auto* blobs = probe.core().blobs().value();
  const std::uint32_t index = *probe.registry().find("frames");
  auto pool = probe.pool("frames").value();
  auto dead = probe.dead_letters("frames").value();
  auto receiver = pool.receiver().value();
  auto letters = bus->dead_letters("frames").value();
  const int rounds = static_cast<int>(test::scaled(60));
  int wrong = 0, stale = 0, whole = 0;
  for (int round = 0; round < rounds; ++round) {
    const auto before = static_cast<std::byte>(2 * round + 1);
    const auto after = static_cast<std::byte>(2 * round + 2);
    auto loan = bus->loan(kBlock).value();
    std::memset(loan.payload().data(), std::to_integer<int>(before), kBlock);
    ASSERT_TRUE(service.cast(std::move(loan)));
    auto original = receiver.try_receive();
    ASSERT_TRUE(original);
    std::atomic<bool> peeking{false};
    std::vector<PeekedRecord> seen;
    std::thread peeker([&] {
      peeking.store(true);
      seen = pool.peek(1);
    });
    while (!peeking.load()) std::this_thread::yield();
    // Start at a different point of the copy each round (not a wait: any
    // interleaving must pass, this only makes the bad ones likely).
    for (int spin = 0; spin < (round % 30) * 100; ++spin) detail::cpu_relax();
    const bool moved = blobs->move_to_dead_letters(dead, *original, index);
    auto letter = letters.try_receive();
    const bool dropped = letter.has_value();
    if (letter) letter->done();  // frees the block: the letter held it
    auto again = bus->loan(kBlock);
    if (again) std::memset(again->payload().data(), std::to_integer<int>(after), kBlock);
    peeker.join();
    ASSERT_TRUE(moved && dropped && again) << "round " << round;
    ASSERT_EQ(seen.size(), 1u) << "the original is still taken by its mover";
    const PeekedRecord& record = seen[0];
    if (record.info.ref_error == Errc::stale_ref && record.payload.empty()) {
      ++stale;
    } else if (record.info.ref_error == Errc{} && record.payload.size() == kBlock &&
               every_byte_is(record.payload, before)) {
      ++whole;
    } else {
      ++wrong;
    }
    original->done();  // the word moved on: frees nothing
  }
  EXPECT_EQ(wrong, 0) << "copies returned with bytes of the next loan (" << whole << " whole, "
                      << stale << " stale)";
}

// A process that writes the pool's header and class line after this one
// mapped the pool (a block count past the descriptors, a data offset far
// past the mapping) moves no read: a loan's block is read where open() found
// it, as a receiver's and a peek's reads must be.
TEST(MailboxPeekLoan, AForgedPoolHeaderWrittenAfterOpenMovesNoRead) {
  auto bus = test::ScopedBus::create(one_big_block());
  ASSERT_TRUE(bus->register_service("frames", {}));
  auto service = bus->service("frames").value();
  auto loan = bus->loan(64).value();
  std::memset(loan.payload().data(), 0x33, 64);
  ASSERT_TRUE(service.cast(std::move(loan)));
  test::BusProbe probe(bus.name());
  ASSERT_TRUE(probe.ok());
  ASSERT_TRUE(probe.core().blobs());  // mapped and checked now
  auto pool = probe.pool("frames").value();

  const std::string path = "/dev/shm/" + detail::blob_pool_shm_name(bus.name());
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  void* base = ::mmap(nullptr, layout::kBlobDescriptorsOffset, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(base, MAP_FAILED);
  auto* bytes = static_cast<std::byte*>(base);
  auto& header = *reinterpret_cast<layout::BlobPoolHeader*>(bytes + sizeof(layout::SegmentHeader));
  auto& line = *reinterpret_cast<layout::BlobClassLine*>(bytes + layout::kBlobClassesOffset);
  const layout::BlobPoolHeader real_header = header;
  const layout::BlobClassLine real_line = line;
  header.total_blocks = 1000;
  line.data_offset = std::uint64_t{1} << 40;
  const auto records = pool.peek(4);
  header = real_header;
  line = real_line;
  ::munmap(base, layout::kBlobDescriptorsOffset);

  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].info.ref_error, Errc{});
  EXPECT_EQ(records[0].payload, std::vector<std::byte>(64, std::byte{0x33}));
}

}  // namespace
}  // namespace shmbus
