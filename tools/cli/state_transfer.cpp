#include "state_transfer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "command.hpp"
#include "json_string.hpp"

namespace shmbus::tools {

namespace {

constexpr std::size_t kChunk = std::size_t{4} << 20;  // read/write size: progress granularity

std::string errno_text() { return std::strerror(errno); }

// Reads up to `out.size()` bytes, retrying on EINTR; -1 on error.
ssize_t read_some(int fd, std::span<std::byte> out) {
  for (;;) {
    const ssize_t n = ::read(fd, out.data(), out.size());
    if (n >= 0 || errno != EINTR) return n;
  }
}

bool write_all(int fd, std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), std::min(bytes.size(), kChunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
  return true;
}

// An open input file, closed on scope exit (standard input is left open).
class Input {
 public:
  explicit Input(const std::string& path)
      : fd_(path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC)),
        owned_(path != "-"),
        name_(path == "-" ? "standard input" : path) {}
  ~Input() {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  int fd_;
  bool owned_;
  std::string name_;
};

ToolFailure no_input(const std::string& what) { return {kExitNoInput, what}; }

// Reads exactly `span.size()` bytes into the span; then checks the file ends.
Outcome<void> read_exactly(const Input& input, std::span<std::byte> span, ProgressBar& bar) {
  std::uint64_t done = 0;
  while (done < span.size()) {
    const std::size_t want = std::min(kChunk, span.size() - done);
    const ssize_t n = read_some(input.fd(), span.subspan(done, want));
    if (n < 0) return tl::unexpected(no_input("cannot read " + input.name() + ": " + errno_text()));
    if (n == 0) {
      return tl::unexpected(no_input(fmt::format("{} ended after {} of its {} bytes (it shrank while read)",
                                                 input.name(), done, span.size())));
    }
    done += static_cast<std::uint64_t>(n);
    bar.update(done);
  }
  std::byte extra{};
  if (read_some(input.fd(), {&extra, 1}) > 0) {
    return tl::unexpected(no_input(input.name() + " grew while it was read"));
  }
  bar.finish(done);
  return {};
}

Outcome<PutReport> publish(PutTransaction& tx) {
  const std::uint64_t size = tx.bytes().size();  // the span is gone once published
  auto ref = tx.publish();
  if (!ref) return tl::unexpected(failure_of(ref.error()));
  return PutReport{size, ref->handle >> 16};
}

// A regular file: reserve its size, read it into the reserved span.
Outcome<PutReport> put_regular(State& state, std::string_view key, const Input& input,
                               std::uint64_t size, ProgressBar::Mode progress) {
  auto tx = state.begin_put(key, size);
  if (!tx) return tl::unexpected(failure_of(tx.error()));
  ProgressBar bar(size, progress, stderr);
  if (auto read = read_exactly(input, tx->bytes(), bar); !read) {
    tx->abort();  // nothing was ever visible
    return tl::unexpected(read.error());
  }
  return publish(*tx);
}

// A pipe or terminal: its size is known only at its end. Read at most the
// segment's capacity: more can never be published (state_full), and an
// endless input (/dev/zero, a mistaken `yes |`) would take all memory.
Outcome<PutReport> put_stream(State& state, std::string_view key, const Input& input,
                              ProgressBar::Mode progress) {
  const std::uint64_t capacity = state.usage().capacity;
  std::vector<std::byte> bytes;
  for (;;) {
    const std::size_t had = bytes.size();
    if (had > capacity) {
      return tl::unexpected(failure_of(
          {Errc::state_full, fmt::format("{} holds more than the state segment's capacity ({} "
                                         "bytes); nothing was published",
                                         input.name(), capacity)}));
    }
    bytes.resize(had + kChunk);
    const ssize_t n = read_some(input.fd(), std::span(bytes).subspan(had));
    if (n < 0) return tl::unexpected(no_input("cannot read " + input.name() + ": " + errno_text()));
    bytes.resize(had + static_cast<std::size_t>(n));
    if (n == 0) break;
  }
  auto tx = state.begin_put(key, bytes.size());
  if (!tx) return tl::unexpected(failure_of(tx.error()));
  if (!bytes.empty()) std::memcpy(tx->bytes().data(), bytes.data(), bytes.size());
  ProgressBar(bytes.size(), progress, stderr).finish(bytes.size());
  return publish(*tx);
}

}  // namespace

ToolFailure failure_of(const Error& error) { return {static_cast<int>(error.code), error.message()}; }

int report_failure(const ToolFailure& failure) {
  std::fprintf(stderr, "shmbus: %s\n", failure.message.c_str());
  return failure.status;
}

Outcome<PutReport> put_file(State& state, std::string_view key, const std::string& path,
                            ProgressBar::Mode progress) {
  Input input(path);
  if (input.fd() < 0) return tl::unexpected(no_input("cannot open " + path + ": " + errno_text()));
  struct stat info {};
  if (::fstat(input.fd(), &info) != 0) {
    return tl::unexpected(no_input("cannot stat " + input.name() + ": " + errno_text()));
  }
  if (S_ISDIR(info.st_mode)) return tl::unexpected(no_input(input.name() + " is a directory"));
  // A pipe, or a pseudo-file that says 0 bytes (/proc): the size is known at its end.
  if (!S_ISREG(info.st_mode) || info.st_size == 0) return put_stream(state, key, input, progress);
  // Standard input redirected from a file may already be partly read.
  const off_t at = ::lseek(input.fd(), 0, SEEK_CUR);
  const std::uint64_t size = static_cast<std::uint64_t>(info.st_size - (at > 0 ? at : 0));
  return put_regular(state, key, input, size, progress);
}

Outcome<std::uint64_t> get_to_file(const State& state, std::string_view key, const std::string& path) {
  auto view = state.get(key);
  if (!view) {
    if (view.error() == Errc::no_such_key) {
      return tl::unexpected(failure_of({Errc::no_such_key, "no value under key '" + std::string(key) + "'"}));
    }
    return tl::unexpected(failure_of({view.error(), "cannot read key '" + std::string(key) + "'"}));
  }
  const int fd = path.empty() ? STDOUT_FILENO : ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return tl::unexpected(failure_of({Errc::system_error, "cannot create " + path + ": " + errno_text()}));
  const bool written = write_all(fd, view->bytes());
  const std::string why = written ? "" : errno_text();
  if (!path.empty() && ::close(fd) != 0 && written) {
    return tl::unexpected(failure_of({Errc::system_error, "cannot write " + path + ": " + errno_text()}));
  }
  if (!written) {
    return tl::unexpected(failure_of({Errc::system_error,
                                      "cannot write " + (path.empty() ? std::string("standard output") : path) + ": " + why}));
  }
  return view->bytes().size();
}

std::string render_state_list(const std::vector<StateEntry>& entries, const StateUsage& usage, bool json) {
  std::string out;
  if (json) {
    out = "{\"keys\":[";
    for (std::size_t i = 0; i < entries.size(); ++i) {
      out += fmt::format("{}{{\"key\":{},\"size\":{},\"version\":{}}}", i == 0 ? "" : ",",
                         json_string(entries[i].key), entries[i].size, entries[i].version);
    }
    out += fmt::format("],\"usage\":{{\"capacity\":{},\"live\":{},\"retired\":{},\"writing\":{},\"free\":{}}}}}\n",
                       usage.capacity, usage.live_bytes, usage.retired_bytes, usage.writing_bytes,
                       usage.free_bytes);
    return out;
  }
  out = fmt::format("{:<32} {:>14} {:>8}\n", "KEY", "SIZE", "VERSION");
  for (const auto& entry : entries) {
    out += fmt::format("{:<32} {:>14} {:>8}\n", entry.key, entry.size, entry.version);
  }
  out += fmt::format("capacity {} bytes: live {}, retired {}, writing {}, free {}\n", usage.capacity,
                     usage.live_bytes, usage.retired_bytes, usage.writing_bytes, usage.free_bytes);
  return out;
}

}  // namespace shmbus::tools
