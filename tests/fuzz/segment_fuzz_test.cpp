// Random segment headers and process-table headers (the counts and offsets of
// the registry, doorbells and call slots: layout/control.hpp) under
// Bus::attach, random ring descriptors under Bus::open_mailbox. Every planted
// /dev/shm file is unlinked at scope exit.
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
#include "shmbus/layout/control.hpp"
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

// The ProcessTableHeader words the attach path reads (bus/src/bus/control.cpp).
struct TableWords {
  std::uint32_t capacity = 0, calls_per_process = 0, max_reply = 0, call_stride = 0;
  std::uint64_t registry_offset = 0, calls_offset = 0, doorbells_offset = 0, pins_offset = 0;
};

constexpr std::size_t kTableAt = sizeof(SegmentHeader);

TableWords read_table(const std::vector<std::byte>& bytes) {
  using layout::ProcessTableHeader;
  TableWords t;
  t.capacity = read_at<std::uint32_t>(bytes, kTableAt + offsetof(ProcessTableHeader, capacity));
  t.calls_per_process =
      read_at<std::uint32_t>(bytes, kTableAt + offsetof(ProcessTableHeader, calls_per_process));
  t.max_reply = read_at<std::uint32_t>(bytes, kTableAt + offsetof(ProcessTableHeader, max_reply));
  t.call_stride =
      read_at<std::uint32_t>(bytes, kTableAt + offsetof(ProcessTableHeader, call_stride));
  t.registry_offset =
      read_at<std::uint64_t>(bytes, kTableAt + offsetof(ProcessTableHeader, registry_offset));
  t.calls_offset =
      read_at<std::uint64_t>(bytes, kTableAt + offsetof(ProcessTableHeader, calls_offset));
  t.doorbells_offset =
      read_at<std::uint64_t>(bytes, kTableAt + offsetof(ProcessTableHeader, doorbells_offset));
  t.pins_offset = read_at<std::uint64_t>(bytes, kTableAt + offsetof(ProcessTableHeader, pins_offset));
  return t;
}

void write_table(std::vector<std::byte>& bytes, const TableWords& t) {
  using layout::ProcessTableHeader;
  write_at(bytes, kTableAt + offsetof(ProcessTableHeader, capacity), t.capacity);
  write_at(bytes, kTableAt + offsetof(ProcessTableHeader, calls_per_process), t.calls_per_process);
  write_at(bytes, kTableAt + offsetof(ProcessTableHeader, max_reply), t.max_reply);
  write_at(bytes, kTableAt + offsetof(ProcessTableHeader, call_stride), t.call_stride);
  write_at(bytes, kTableAt + offsetof(ProcessTableHeader, registry_offset), t.registry_offset);
  write_at(bytes, kTableAt + offsetof(ProcessTableHeader, calls_offset), t.calls_offset);
  write_at(bytes, kTableAt + offsetof(ProcessTableHeader, doorbells_offset), t.doorbells_offset);
  write_at(bytes, kTableAt + offsetof(ProcessTableHeader, pins_offset), t.pins_offset);
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
  // Bus::attach: not even one process slot.
  if (bytes.size() < layout::kControlSlotsOffset + sizeof(layout::ProcessSlot)) {
    return Errc::size_too_small;
  }
  // ControlView::open: the counts, then the offsets the counts give, then the size they need.
  const TableWords t = read_table(bytes);
  if (t.capacity == 0 || t.capacity > layout::kMaxProcesses || t.calls_per_process == 0 ||
      t.calls_per_process > layout::kMaxCallsPerProcess || t.max_reply > layout::kMaxReplyBytes) {
    return Errc::not_a_segment;
  }
  const auto l = layout::control_layout(t.capacity, t.calls_per_process, t.max_reply);
  if (t.registry_offset != l.registry_offset || t.calls_offset != l.calls_offset ||
      t.doorbells_offset != l.doorbells_offset || t.pins_offset != l.pins_offset ||
      t.call_stride != l.call_stride) {
    return Errc::not_a_segment;
  }
  if (bytes.size() < l.total_size) return Errc::size_too_small;
  // Every one of `capacity` slots fits now (too_many_processes is out of reach),
  // and nobody else holds a lock byte of a planted file: slot 0 is ours.
  return std::nullopt;
}

// Random bytes, eight per draw: control segments hold a registry of ~1.1 MB.
std::vector<std::byte> random_bytes(Fuzz& fuzz, std::size_t n) {
  std::vector<std::byte> out(n);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t word = fuzz.next();
    std::memcpy(out.data() + i, &word, 8);
  }
  for (; i < n; ++i) out[i] = static_cast<std::byte>(fuzz.next());
  return out;
}

// The table words a creator writes for these counts (control.cpp, initialize_control).
TableWords creator_table(std::uint32_t processes, std::uint32_t calls, std::uint32_t max_reply) {
  const auto l = layout::control_layout(processes, calls, max_reply);
  return {processes,         calls,          max_reply,          l.call_stride,
          l.registry_offset, l.calls_offset, l.doorbells_offset, l.pins_offset};
}

// One word of a creator's table made wrong (or, by luck, still right: a
// capacity one higher often lands on the same rounded offsets).
void mutate_table(Fuzz& fuzz, TableWords& t) {
  switch (fuzz.in(0, 7)) {
    case 0:
      t.capacity = fuzz.chance(2) ? fuzz.pick<std::uint32_t>({0, t.capacity + 1, t.capacity - 1,
                                                              layout::kMaxProcesses,
                                                              layout::kMaxProcesses + 1})
                                  : fuzz.u32_edge();
      break;
    case 1:
      t.calls_per_process =
          fuzz.chance(2) ? fuzz.pick<std::uint32_t>({0, t.calls_per_process + 1,
                                                     layout::kMaxCallsPerProcess,
                                                     layout::kMaxCallsPerProcess + 1})
                         : fuzz.u32_edge();
      break;
    case 2:
      t.max_reply = fuzz.chance(2) ? fuzz.pick<std::uint32_t>({t.max_reply + 1, t.max_reply + 64,
                                                               layout::kMaxReplyBytes,
                                                               layout::kMaxReplyBytes + 1})
                                   : fuzz.u32_edge();
      break;
    case 3:
      t.call_stride = fuzz.pick<std::uint32_t>({0, t.call_stride - 64, t.call_stride + 64,
                                                t.call_stride + 1, fuzz.u32_edge()});
      break;
    case 4:
      t.registry_offset = fuzz.pick<std::uint64_t>(
          {0, t.registry_offset + 128, t.registry_offset - 128, t.registry_offset + 1, fuzz.next()});
      break;
    case 5:
      t.calls_offset = fuzz.pick<std::uint64_t>(
          {0, t.calls_offset + 128, t.registry_offset, t.calls_offset - 1, fuzz.next()});
      break;
    case 6:
      t.doorbells_offset = fuzz.pick<std::uint64_t>(
          {0, t.doorbells_offset + 128, t.calls_offset, t.doorbells_offset - 64, fuzz.next()});
      break;
    default:
      t.pins_offset = fuzz.pick<std::uint64_t>(
          {0, t.pins_offset + 128, t.doorbells_offset, t.calls_offset, fuzz.next()});
      break;
  }
}

// A planted control segment: its size and its process-table header. In most
// rounds the table is what a creator writes for small random counts (maybe
// with one word made wrong) and the size is what they need, give or take;
// in the others the words are random and sizes sit around the table's start.
std::vector<std::byte> plant_control(Fuzz& fuzz) {
  if (fuzz.chance(3)) {
    std::size_t size = 0;
    switch (fuzz.in(0, 3)) {
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
    auto bytes = random_bytes(fuzz, size);
    if (bytes.size() >= layout::kControlSlotsOffset && fuzz.chance(2)) {
      TableWords t = read_table(bytes);  // random words, a plausible capacity
      t.capacity = fuzz.chance(2) ? static_cast<std::uint32_t>(fuzz.in(0, 8)) : fuzz.u32_edge();
      write_table(bytes, t);
    }
    return bytes;
  }
  const auto processes = static_cast<std::uint32_t>(fuzz.in(1, 8));
  const auto calls = static_cast<std::uint32_t>(fuzz.in(1, 4));
  const auto max_reply = fuzz.pick<std::uint32_t>({0, 1, 8, 63, 64, 100, 256});
  TableWords t = creator_table(processes, calls, max_reply);
  const auto l = layout::control_layout(processes, calls, max_reply);
  std::uint64_t size = l.total_size;
  if (fuzz.chance(4)) {
    size = fuzz.pick<std::uint64_t>({l.total_size - 1, l.total_size - t.call_stride,
                                     l.total_size + fuzz.in(1, 63), l.calls_offset,
                                     l.registry_offset + fuzz.in(0, 4096),
                                     layout::kControlSlotsOffset + sizeof(layout::ProcessSlot)});
  }
  // Zero, as a creator leaves it, or random: the attacher sweeps its own call
  // slots and later reclaims planted dead slots, whatever their words say.
  std::vector<std::byte> bytes =
      fuzz.chance(2) ? random_bytes(fuzz, size) : std::vector<std::byte>(size);
  if (fuzz.chance(3)) mutate_table(fuzz, t);
  write_table(bytes, t);
  if (fuzz.chance(2)) {  // slots that say live, with nobody holding their lock byte: dead
    for (std::uint32_t i = 0; i < processes; ++i) {
      const std::size_t at = layout::kControlSlotsOffset + i * sizeof(layout::ProcessSlot);
      if (at + sizeof(std::uint64_t) > bytes.size() || !fuzz.chance(2)) continue;
      write_at(bytes, at,
               layout::slot_state(static_cast<std::uint32_t>(fuzz.next()), layout::SlotState::live));
    }
  }
  return bytes;
}

TEST(SegmentFuzz, RandomControlSegmentHeadersGiveTheTypedAnswerOfTheAttachRules) {
  Fuzz fuzz;
  const long rounds = test::scaled(1500);
  long attached = 0;
  for (long round = 0; round < rounds; ++round) {
    SCOPED_TRACE(trace(fuzz, round));
    const std::string name = test::unique_bus_name();
    const std::string path = "/dev/shm/shmbus." + name;
    auto bytes = plant_control(fuzz);
    plant_header(fuzz, bytes, layout::SegmentKind::control);
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
        // Random slot and call-slot words: reclaimed, swept or left, never a crash.
        (void)bus_result->reclaim_dead();
        (void)bus_result->services();  // random registry words: read, bounded, never trusted
        auto in_use = Bus::in_use(name);
        ASSERT_TRUE(in_use) << in_use.error().message();
        EXPECT_TRUE(*in_use);
      }
    }
    EXPECT_FALSE(test::file_exists(path));
  }
  std::printf("[   INFO   ] %ld of %ld planted control segments attached\n", attached, rounds);
  // The planting aims at the attach path's every branch, success included
  // (about one round in ten attaches).
  if (rounds >= 300) {
    EXPECT_GT(attached, rounds / 50);
  }
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
