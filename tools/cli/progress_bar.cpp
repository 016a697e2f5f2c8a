#include "progress_bar.hpp"

#include <fmt/format.h>

namespace shmbus::tools {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

}  // namespace

ProgressBar::ProgressBar(std::uint64_t total, Mode mode, std::FILE* out) noexcept
    : total_(total), mode_(mode), out_(out), started_(std::chrono::steady_clock::now()) {}

std::string ProgressBar::line(std::uint64_t done, std::chrono::steady_clock::time_point now) const {
  const double percent = total_ == 0 ? 100.0 : 100.0 * static_cast<double>(done) / static_cast<double>(total_);
  const double seconds = std::chrono::duration<double>(now - started_).count();
  const double rate = seconds > 0 ? static_cast<double>(done) / kMiB / seconds : 0.0;
  return fmt::format("{:6.1f}%  {:8.1f} / {:.1f} MiB  {:8.1f} MiB/s", percent,
                     static_cast<double>(done) / kMiB, static_cast<double>(total_) / kMiB, rate);
}

void ProgressBar::update(std::uint64_t done) {
  if (mode_ != Mode::live) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - drawn_at_ < kRedrawInterval) return;
  draw(done, now, false);
}

void ProgressBar::finish(std::uint64_t done) { draw(done, std::chrono::steady_clock::now(), true); }

void ProgressBar::draw(std::uint64_t done, std::chrono::steady_clock::time_point now, bool last) {
  // '\r' returns to the line's start; the trailing spaces wipe a longer old line.
  const std::string text = (mode_ == Mode::live ? "\r" : "") + line(done, now) + (last ? "\n" : "  ");
  std::fputs(text.c_str(), out_);
  std::fflush(out_);
  drawn_ = true;
  drawn_at_ = now;
}

}  // namespace shmbus::tools
