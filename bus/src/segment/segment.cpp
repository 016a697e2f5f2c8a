// The only file that includes Boost.Interprocess. Its exceptions stop here.
#include "segment/segment.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "process/liveness.hpp"
#include "segment/header_check.hpp"
#include "shmbus/detail/atomic.hpp"

namespace bip = boost::interprocess;

namespace shmbus::detail {

struct Segment::Mapping {
  bip::mapped_region region;
};

namespace {

Error from_boost(const bip::interprocess_exception& e, const std::string& shm_name,
                 Errc missing) {
  const int err = e.get_native_error();
  const std::string where = "/dev/shm/" + shm_name;
  if (err == ENOENT || e.get_error_code() == bip::not_found_error)
    return {missing, where + " does not exist"};
  if (err == EEXIST || e.get_error_code() == bip::already_exists_error)
    return {Errc::bus_exists, where + " already exists"};
  if (err == EACCES || err == EPERM || e.get_error_code() == bip::security_error)
    return {Errc::permission_denied, where + ": permission denied (" + e.what() + ")"};
  return {Errc::system_error, where + ": " + e.what()};
}

std::uint64_t unix_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

Segment::Segment(std::unique_ptr<Mapping> mapping, std::string shm_name, int fd) noexcept
    : mapping_(std::move(mapping)),
      base_(static_cast<std::byte*>(mapping_->region.get_address())),
      size_(mapping_->region.get_size()),
      shm_name_(std::move(shm_name)) {
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    device_ = st.st_dev;
    inode_ = st.st_ino;
  }
}

bool Segment::same_file(int fd) const noexcept {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && st.st_dev == device_ && st.st_ino == inode_;
}

Segment::Segment(Segment&&) noexcept = default;
Segment& Segment::operator=(Segment&&) noexcept = default;
Segment::~Segment() = default;

Result<Segment> Segment::create(const SegmentSpec& spec,
                                const std::function<void(std::span<std::byte>)>& init) {
  if (spec.size < sizeof(layout::SegmentHeader)) {
    return fail(Errc::size_too_small, "segment size " + std::to_string(spec.size) +
                                          " is below the 128-byte header");
  }
  bool created = false;
  try {
    bip::permissions permissions;
    permissions.set_permissions(static_cast<int>(spec.mode));
    bip::shared_memory_object shm(bip::create_only, spec.shm_name.c_str(), bip::read_write,
                                  permissions);
    created = true;
    shm.truncate(static_cast<bip::offset_t>(spec.size));
    auto mapping = std::make_unique<Mapping>(Mapping{bip::mapped_region(shm, bip::read_write)});
    Segment segment(std::move(mapping), spec.shm_name, shm.get_mapping_handle().handle);

    // Every field but `magic` and `ready` first; then `magic` with release, so
    // an attacher that sees the magic sees a complete header (with the
    // creator's pid and start time to judge it by); then the body; `ready` last.
    auto& header = *reinterpret_cast<layout::SegmentHeader*>(segment.base_);
    header.layout_version = layout::kLayoutVersion;
    header.kind = spec.kind;
    header.total_size = spec.size;
    header.creator_uid = static_cast<std::uint32_t>(::getuid());
    header.creator_pid = static_cast<std::uint32_t>(::getpid());
    header.creator_start_time = process_start_time(::getpid()).value_or(0);
    header.created_unix_ns = unix_now_ns();
    header.flags = spec.flags;
    // release: pairs with load_acquire(magic) in check_header().
    store_release(header.magic, layout::kMagic);
    init(segment.bytes());
    // release: pairs with the attacher's load_acquire(ready) in check_header().
    store_release(header.ready, std::uint32_t{1});
    return segment;
  } catch (const bip::interprocess_exception& e) {
    // A file we created but could not size or map would be waited for by
    // every attacher until its deadline: remove it.
    if (created) bip::shared_memory_object::remove(spec.shm_name.c_str());
    return tl::unexpected(from_boost(e, spec.shm_name, Errc::system_error));
  }
}

Result<Segment> Segment::attach(const std::string& shm_name, layout::SegmentKind kind,
                                Deadline deadline, Errc missing, Access access) {
  const bip::mode_t mode = access == Access::read_only ? bip::read_only : bip::read_write;
  for (;;) {
    try {
      bip::shared_memory_object shm(bip::open_only, shm_name.c_str(), mode);
      bip::offset_t size = 0;
      if (!shm.get_size(size)) return fail(Errc::system_error, shm_name + ": fstat failed");
      if (size >= static_cast<bip::offset_t>(sizeof(layout::SegmentHeader))) {
        auto mapping =
            std::make_unique<Mapping>(Mapping{bip::mapped_region(shm, mode)});
        Segment segment(std::move(mapping), shm_name, shm.get_mapping_handle().handle);
        HeaderCheck check = check_header(segment.bytes(), kind, shm_name);
        if (check.verdict == HeaderVerdict::ready) return segment;
        if (check.verdict != HeaderVerdict::building) return tl::unexpected(check.error);
      }
    } catch (const bip::interprocess_exception& e) {
      return tl::unexpected(from_boost(e, shm_name, missing));
    }
    if (Clock::now() >= deadline) {
      return fail(Errc::not_a_segment,
                  "/dev/shm/" + shm_name +
                      " is still being built at the attach deadline; if its creator died, "
                      "`shmbus gc` removes it");
    }
    // Creation takes microseconds; a short poll keeps an attacher cheap meanwhile.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Result<void> Segment::remove(const std::string& shm_name, Errc missing) {
  // shared_memory_object::remove hides errno; unlink through the same path
  // shm_open uses so the error can be told apart.
  const std::string path = "/dev/shm/" + shm_name;
  if (::unlink(path.c_str()) == 0) return {};
  const int err = errno;
  if (err == ENOENT) return fail(missing, path + " does not exist");
  if (err == EACCES || err == EPERM) return fail(Errc::permission_denied, path + ": permission denied");
  return fail(Errc::system_error, path + ": unlink: " + std::strerror(err));
}

}  // namespace shmbus::detail
