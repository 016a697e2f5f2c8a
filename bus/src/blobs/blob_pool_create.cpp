// Creating a blob pool: check the size classes, lay out every block free.
#include <string>

#include "blobs/blob_pool.hpp"
#include "shmbus/layout/control.hpp"

namespace shmbus::detail {

std::string blob_pool_shm_name(std::string_view bus) {
  return "shmbus." + std::string(bus) + ".~blobs";
}

Result<void> check_blob_classes(std::span<const BlobClass> classes) {
  if (classes.empty() || classes.size() > layout::kMaxBlobClasses) {
    return fail(Errc::bad_options, "blob_classes has " + std::to_string(classes.size()) +
                                       " classes; a pool has 1 … 8");
  }
  for (std::size_t i = 0; i < classes.size(); ++i) {
    const BlobClass& c = classes[i];
    const std::string which = "blob class " + std::to_string(i) + " (" +
                              std::to_string(c.block_size) + " bytes × " +
                              std::to_string(c.count) + ")";
    if (c.block_size < layout::kBlockAlignment || c.block_size > layout::kMaxBlockSize ||
        c.block_size % layout::kBlockAlignment != 0) {
      return fail(Errc::bad_options, which + ": block_size must be a multiple of 4096 in 4 KiB … 1 GiB");
    }
    if (c.count == 0 || c.count > layout::kMaxBlocksPerClass) {
      return fail(Errc::bad_options, which + ": count must be 1 … 65536");
    }
    if (i > 0 && c.block_size <= classes[i - 1].block_size) {
      return fail(Errc::bad_options, which + ": classes must grow in block_size");
    }
  }
  return {};
}

Result<void> create_blob_pool(std::string_view bus, std::span<const BlobClass> classes,
                              std::uint32_t mode) {
  if (auto ok = check_blob_classes(classes); !ok) return ok;
  std::uint32_t total_blocks = 0;
  for (const BlobClass& c : classes) total_blocks += c.count;
  const std::uint64_t data_offset = layout::round_up(
      layout::kBlobDescriptorsOffset + std::uint64_t{total_blocks} * sizeof(layout::BlockDescriptor),
      layout::kBlockAlignment);
  std::uint64_t size = data_offset;
  for (const BlobClass& c : classes) size += c.block_size * c.count;

  const SegmentSpec spec{blob_pool_shm_name(bus), layout::SegmentKind::blob_pool, size, mode, 0};
  auto segment = Segment::create(spec, [&](std::span<std::byte> bytes) {
    auto& header = *reinterpret_cast<layout::BlobPoolHeader*>(bytes.data() + sizeof(layout::SegmentHeader));
    header.class_count = static_cast<std::uint32_t>(classes.size());
    header.total_blocks = total_blocks;
    header.descriptors_offset = layout::kBlobDescriptorsOffset;
    header.data_offset = data_offset;
    auto* lines = reinterpret_cast<layout::BlobClassLine*>(bytes.data() + layout::kBlobClassesOffset);
    std::uint32_t first = 0;
    std::uint64_t offset = data_offset;
    for (std::size_t i = 0; i < classes.size(); ++i) {
      lines[i].block_size = classes[i].block_size;
      lines[i].count = classes[i].count;
      lines[i].first_block = first;
      lines[i].data_offset = offset;
      first += classes[i].count;
      offset += classes[i].block_size * classes[i].count;
    }
    // Every descriptor is zero: free, generation 0, no location.
  });
  if (!segment) return tl::unexpected(segment.error());
  return {};
}

}  // namespace shmbus::detail
