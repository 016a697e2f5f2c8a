// Random segment headers under Bus::attach, random ring descriptors under
// Bus::open_mailbox. Every planted /dev/shm file is unlinked at scope exit.
//
// The attach rules (layout/segment_header.hpp, STYLE "Shared-memory layout
// rule" 5) decide every outcome from the planted bytes alone, so the tests
// predict the exact Errc (or success) and compare.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "fuzz/fuzz_support.hpp"
#include "process/liveness.hpp"
#include "shmbus/bus.hpp"
#include "shmbus/layout/process_table.hpp"
#include "shmbus/layout/ring.hpp"
#include "support/scoped_bus.hpp"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using layout::SegmentHeader;
using test::Fuzz;

std::string trace(const Fuzz& fuzz, long round) {
  return "round " + std::to_string(round) + " (SHMBUS_FUZZ_SEED=" + std::to_string(fuzz.seed()) +
         ")";
}

template <class T>
T read_at(const std::vector<std::byte>& bytes, std::size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}
template <class T>
void write_at(std::vector<std::byte>& bytes, std::size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

// A segment header: random bytes, made more plausible one field at a time so
// every check of the attach path is reached.
void plant_header(Fuzz& fuzz, std::vector<std::byte>& bytes, layout::SegmentKind kind) {
  if (bytes.size() < sizeof(SegmentHeader)) return;
  const auto level = fuzz.in(0, 5);
  if (level == 0) return;  // all random
  if (level == 1) {        // all zero: "still being built"
    std::memset(bytes.data(), 0, sizeof(SegmentHeader));
    return;
  }
  write_at(bytes, offsetof(SegmentHeader, magic), layout::kMagic);
  if (level == 2) return;
  write_at(bytes, offsetof(SegmentHeader, layout_version),
           fuzz.chance(6) ? fuzz.u32_edge() : layout::kLayoutVersion);
  write_at(bytes, offsetof(SegmentHeader, kind),
           fuzz.chance(6) ? fuzz.pick<std::uint32_t>({0, 1, 2, 3, 4, 0xffffffffu})
                          : static_cast<std::uint32_t>(kind));
  write_at(bytes, offsetof(SegmentHeader, total_size),
           fuzz.chance(6) ? fuzz.pick<std::uint64_t>(
                                {0, bytes.size() + 1, bytes.size() - 1, ~std::uint64_t{0}})
                          : std::uint64_t{bytes.size()});
  const pid_t self = ::getpid();
  const std::uint64_t start = detail::process_start_time(self).value_or(0);
  switch (fuzz.in(0, 3)) {  // creator: this (live) process, a dead one, garbage
    case 0:
      write_at<std::uint32_t>(bytes, offsetof(SegmentHeader, creator_pid),
                              static_cast<std::uint32_t>(self));
      write_at(bytes, offsetof(SegmentHeader, creator_start_time), start);
      break;
    case 1:
      write_at<std::uint32_t>(bytes, offsetof(SegmentHeader, creator_pid),
                              static_cast<std::uint32_t>(self));
      write_at(bytes, offsetof(SegmentHeader, creator_start_time), start + 1);
      break;
    default:
      break;
  }
  write_at(bytes, offsetof(SegmentHeader, ready),
           level >= 4 ? std::uint32_t{1} : fuzz.pick<std::uint32_t>({0, 1, 2, 0xffffffffu}));
}

// What Bus::attach must answer for these bytes (nullopt: it attaches).
std::optional<Errc> expected_attach(const std::vector<std::byte>& bytes) {
  // Too short: "still being built" until the deadline, then not_a_segment.
  if (bytes.size() < sizeof(SegmentHeader)) return Errc::not_a_segment;
  const auto magic = read_at<std::uint64_t>(bytes, offsetof(SegmentHeader, magic));
  const auto ready = read_at<std::uint32_t>(bytes, offsetof(SegmentHeader, ready));
  if (magic != layout::kMagic) return Errc::not_a_segment;  // bad magic, or building (0, 0)
  if (read_at<std::uint32_t>(bytes, offsetof(SegmentHeader, layout_version)) !=
      layout::kLayoutVersion) {
    return Errc::layout_mismatch;
  }
  if (ready == 0) return Errc::not_a_segment;  // building (live creator) or abandoned
  if (read_at<std::uint32_t>(bytes, offsetof(SegmentHeader, kind)) !=
      static_cast<std::uint32_t>(layout::SegmentKind::control)) {
    return Errc::not_a_segment;
  }
  if (read_at<std::uint64_t>(bytes, offsetof(SegmentHeader, total_size)) != bytes.size()) {
    return Errc::size_too_small;
  }
  if (bytes.size() < layout::kControlSlotsOffset + sizeof(layout::ProcessSlot)) {
    return Errc::size_too_small;
  }
  const auto capacity = read_at<std::uint32_t>(bytes, sizeof(SegmentHeader));
  const std::uint64_t fits =
      (bytes.size() - layout::kControlSlotsOffset) / sizeof(layout::ProcessSlot);
  if (capacity == 0 || fits == 0) return Errc::too_many_processes;
  return std::nullopt;  // nobody else holds a lock byte of a planted file: slot 0 is ours
}

TEST(SegmentFuzz, RandomControlSegmentHeadersGiveTheTypedAnswerOfTheAttachRules) {
  Fuzz fuzz;
  const long rounds = test::scaled(1500);
  long attached = 0;
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    const std::string name = test::unique_bus_name();
    const std::string path = "/dev/shm/shmbus." + name;
    std::size_t size = 0;
    switch (fuzz.in(0, 5)) {
      case 0:
        size = fuzz.in(0, 127);
        break;
      case 1:
        size = fuzz.pick<std::size_t>({128, 255, 256, 319, 320});
        break;
      case 2:
        size = fuzz.in(129, 319);
        break;
      default:
        size = layout::kControlSlotsOffset + fuzz.in(0, 64) * sizeof(layout::ProcessSlot) +
               (fuzz.chance(4) ? fuzz.in(1, 63) : 0);
    }
    auto bytes = fuzz.bytes(size);
    plant_header(fuzz, bytes, layout::SegmentKind::control);
    if (bytes.size() >= layout::kControlSlotsOffset && fuzz.chance(2)) {
      write_at<std::uint32_t>(
          bytes, sizeof(SegmentHeader),  // ProcessTableHeader::capacity
          fuzz.chance(2) ? static_cast<std::uint32_t>(fuzz.in(0, 8)) : fuzz.u32_edge());
    }
    const std::optional<Errc> expected = expected_attach(bytes);
    {
      test::PlantedFile planted(path, bytes);
      const auto timeout = std::chrono::milliseconds(fuzz.in(0, 3));
      auto bus_result = Bus::attach(name, {.ready_timeout = timeout, .label = "fuzz"});
      if (expected) {
        ASSERT_FALSE(bus_result) << "attached, expected " << to_string(*expected);
        EXPECT_EQ(bus_result.error().code, *expected) << bus_result.error().message();
        EXPECT_FALSE(bus_result.error().detail.empty());
      } else {
        ASSERT_TRUE(bus_result) << bus_result.error().message();
        ++attached;
        EXPECT_TRUE(bus_result->is_alive(bus_result->self()));
        const auto rows = bus_result->processes();
        EXPECT_FALSE(rows.empty());
        (void)bus_result->reclaim_dead();  // random slot states: reclaimed or left, never a crash
        auto in_use = Bus::in_use(name);
        ASSERT_TRUE(in_use) << in_use.error().message();
        EXPECT_TRUE(*in_use);
      }
    }
    EXPECT_FALSE(test::file_exists(path));
  }
  std::printf("[   INFO   ] %ld of %ld planted control segments attached\n", attached, rounds);
}

// ---- mailbox segments -------------------------------------------------------------------------

struct Descriptor {
  std::uint32_t kind, capacity, max_record, cell_stride, max_consumers;
  std::uint64_t cells_offset;
};

constexpr std::size_t kDescriptorAt = layout::kRingHeaderOffset;

void write_descriptor(std::vector<std::byte>& bytes, const Descriptor& d) {
  layout::RingDescriptor out{};
  out.kind = static_cast<layout::RingKind>(d.kind);
  out.capacity = d.capacity;
  out.max_record = d.max_record;
  out.cell_stride = d.cell_stride;
  out.max_consumers = d.max_consumers;
  out.cells_offset = d.cells_offset;
  std::memcpy(bytes.data() + kDescriptorAt, &out, sizeof out);
}

// The geometry rule of Ring::open, without wrap-around.
bool descriptor_fits(const Descriptor& d, std::size_t size) {
  const bool shape =
      d.capacity >= 2 && d.capacity <= layout::kMaxCells && (d.capacity & (d.capacity - 1)) == 0 &&
      d.max_record > 0 && d.max_record <= layout::kMaxRecordBytes &&
      d.cell_stride >= sizeof(layout::CellHeader) + d.max_record &&
      d.cell_stride % layout::kCacheLine == 0 && d.cells_offset >= layout::kRingCellsOffset &&
      d.cells_offset % layout::kCacheLine == 0 &&
      (d.kind == static_cast<std::uint32_t>(layout::RingKind::mpsc) ||
       d.kind == static_cast<std::uint32_t>(layout::RingKind::mpmc)) &&
      (d.max_consumers == 1 || d.max_consumers == layout::kMaxConsumersPerMailbox);
  // capacity * stride < 2^56 cannot overflow; the sum with cells_offset can.
  const std::uint64_t cells_bytes = std::uint64_t{d.capacity} * d.cell_stride;
  return shape && size >= layout::kRingCellsOffset && d.cells_offset <= size &&
         cells_bytes <= size - d.cells_offset;
}

Descriptor random_descriptor(Fuzz& fuzz, std::size_t size) {
  Descriptor d{};
  d.kind = fuzz.chance(4) ? fuzz.u32_edge() : static_cast<std::uint32_t>(fuzz.in(1, 2));
  d.capacity = fuzz.chance(4)
                   ? fuzz.pick<std::uint32_t>({0, 1, 3, 1u << 24, (1u << 24) + 1, 1u << 31})
                   : 1u << fuzz.in(1, 6);
  d.max_record = fuzz.chance(4)
                     ? fuzz.pick<std::uint32_t>(
                           {0, layout::kMaxRecordBytes, layout::kMaxRecordBytes + 1, 0xffffffffu})
                     : static_cast<std::uint32_t>(fuzz.in(1, 200));
  const std::uint32_t natural = static_cast<std::uint32_t>(
      (sizeof(layout::CellHeader) + std::uint64_t{d.max_record} + 63) / 64 * 64);
  d.cell_stride =
      fuzz.chance(4) ? fuzz.pick<std::uint32_t>({0, 32, 64, natural - 1, natural + 64, 0xffffffc0u})
                     : natural;
  d.max_consumers = fuzz.chance(4) ? fuzz.pick<std::uint32_t>({0, 2, 63, 65, 0xffffffffu})
                                   : fuzz.pick<std::uint32_t>({1, 64});
  // Offsets stay below 2^40 here: see DescriptorWhoseEndWrapsAroundIsRefused.
  d.cells_offset = fuzz.chance(4) ? fuzz.pick<std::uint64_t>({0, layout::kRingCellsOffset - 64,
                                                              layout::kRingCellsOffset + 1, size,
                                                              size + 64, std::uint64_t{1} << 39})
                                  : layout::kRingCellsOffset + 64 * fuzz.in(0, 4);
  return d;
}

TEST(SegmentFuzz, RandomRingDescriptorsAreRefusedUnlessTheyFitTheirSegment) {
  Fuzz fuzz;
  auto bus = test::ScopedBus::create();
  const long rounds = test::scaled(1500);
  long opened = 0;
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    const std::string mailbox_name = "m" + std::to_string(round);
    const std::string path = "/dev/shm/shmbus." + bus.name() + "." + mailbox_name;
    std::size_t size =
        layout::kRingCellsOffset + (fuzz.chance(2) ? 64 * fuzz.in(0, 80) : fuzz.in(0, 6000));
    if (fuzz.chance(8))
      size = fuzz.in(sizeof(SegmentHeader) + sizeof(layout::RingDescriptor),
                     layout::kRingCellsOffset - 1);
    std::vector<std::byte> bytes(size);  // zero cells: free(0) everywhere
    SegmentHeader header{};
    header.magic = layout::kMagic;
    header.layout_version = layout::kLayoutVersion;
    header.kind = layout::SegmentKind::mailbox;
    header.total_size = size;
    header.ready = 1;
    std::memcpy(bytes.data(), &header, sizeof header);
    const Descriptor d = random_descriptor(fuzz, size);
    write_descriptor(bytes, d);
    const bool fits = descriptor_fits(d, size);
    if (fits && fuzz.chance(2)) {  // an initialized ring: cell i free for position i
      for (std::uint64_t i = 0; i < d.capacity; ++i) {
        write_at(bytes, d.cells_offset + i * d.cell_stride,
                 layout::cell_control(layout::CellState::free, 0, i));
      }
    }
    {
      test::PlantedFile planted(path, bytes);
      auto mailbox = bus->open_mailbox(mailbox_name);
      if (!fits) {
        ASSERT_FALSE(mailbox) << "opened a descriptor that does not fit: capacity " << d.capacity
                              << ", stride " << d.cell_stride << ", cells at " << d.cells_offset
                              << ", segment " << size;
        EXPECT_EQ(mailbox.error().code, Errc::not_a_segment) << mailbox.error().message();
        continue;
      }
      ASSERT_TRUE(mailbox) << mailbox.error().message() << " (kind " << d.kind << ", capacity "
                           << d.capacity << ", max_record " << d.max_record << ", stride "
                           << d.cell_stride << ", consumers " << d.max_consumers << ", cells at "
                           << d.cells_offset << ", segment " << size << ")";
      ++opened;
      EXPECT_EQ(mailbox->capacity(), d.capacity);
      EXPECT_EQ(mailbox->max_record(), d.max_record);
      // Use it: only typed outcomes, payloads inside the planted cells.
      for (int i = 0; i < 3; ++i) {
        const std::size_t bytes_out = fuzz.in(0, d.max_record + 1);
        auto sent = mailbox->try_send(fuzz.bytes(bytes_out));
        if (!sent) {
          EXPECT_EQ(sent.error(),
                    bytes_out > d.max_record ? Errc::record_too_large : Errc::mailbox_full);
        }
      }
      auto receiver = mailbox->receiver();
      if (!receiver) {
        EXPECT_EQ(receiver.error().code, Errc::too_many_consumers);
        continue;
      }
      for (std::uint32_t call = 0; call < 8; ++call) {
        auto delivery = call % 2 == 0 ? receiver->try_receive() : receiver->recover();
        if (!delivery) {
          EXPECT_EQ(delivery.error(), Errc::empty);
          continue;
        }
        const auto index = delivery->info().position & (d.capacity - 1);
        const auto* base = reinterpret_cast<const std::byte*>(&test::ring_of(*mailbox).header()) -
                           layout::kRingHeaderOffset;
        const std::byte* cell = base + d.cells_offset + index * d.cell_stride;
        EXPECT_EQ(delivery->payload().data(), cell + sizeof(layout::CellHeader));
        EXPECT_LE(delivery->payload().size(), d.max_record);
      }
    }
    EXPECT_FALSE(test::file_exists(path));
  }
  std::printf("[   INFO   ] %ld of %ld planted mailbox segments opened\n", opened, rounds);
}

// Regression: Ring::open() once checked `cells_offset + capacity * stride`
// in 64-bit arithmetic, so a forged cells_offset near 2^64 wrapped the sum and
// put the cells before the mapping. The open must refuse it.
TEST(SegmentFuzz, DescriptorWhoseEndWrapsAroundIsRefused) {
  auto bus = test::ScopedBus::create();
  const std::size_t size = layout::kRingCellsOffset + 2 * 64;
  std::vector<std::byte> bytes(size);
  SegmentHeader header{};
  header.magic = layout::kMagic;
  header.layout_version = layout::kLayoutVersion;
  header.kind = layout::SegmentKind::mailbox;
  header.total_size = size;
  header.ready = 1;
  std::memcpy(bytes.data(), &header, sizeof header);
  const Descriptor d{1, 2, 16, 64, 1, ~std::uint64_t{0} - 63};  // 2^64 - 64: end wraps to 64
  write_descriptor(bytes, d);
  ASSERT_FALSE(descriptor_fits(d, size));
  test::PlantedFile planted("/dev/shm/shmbus." + bus.name() + ".m", bytes);
  auto mailbox = bus->open_mailbox("m");
  ASSERT_FALSE(mailbox) << "opened: its cells start at cells_offset " << d.cells_offset
                        << ", i.e. 64 bytes before the segment's first byte";
  EXPECT_EQ(mailbox.error().code, Errc::not_a_segment);
}

}  // namespace
}  // namespace shmbus
