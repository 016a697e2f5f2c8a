// progress_bar.hpp — a one-line progress report on stderr for long transfers
// (`shmbus state put`): percentage, MiB done of the total, rate.
//
//   ProgressBar bar(total, ProgressBar::Mode::live, stderr);
//   while (…) bar.update(done);   // redraws with '\r', at most 10 times a second
//   bar.finish(done);             // the last line, ended by a newline
//
// Live mode is for a terminal (or --progress): the line is redrawn in place.
// Quiet mode prints only the final line. Output errors are ignored: progress
// is a courtesy, never a reason to fail the transfer.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace shmbus::tools {

class ProgressBar {
 public:
  enum class Mode { live, final_only };

  ProgressBar(std::uint64_t total, Mode mode, std::FILE* out) noexcept;

  // Redraws (live mode) when 100 ms passed since the last redraw; the first
  // update always draws, so even a fast transfer shows one step before 100%.
  void update(std::uint64_t done);
  // Draws the final state and ends the line. Call once.
  void finish(std::uint64_t done);

  // "  42.0%   26.9 / 64.0 MiB   512.3 MiB/s" (no '\r', no newline).
  [[nodiscard]] std::string line(std::uint64_t done, std::chrono::steady_clock::time_point now) const;

 private:
  void draw(std::uint64_t done, std::chrono::steady_clock::time_point now, bool last);

  std::uint64_t total_;
  Mode mode_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point drawn_at_{};
  bool drawn_ = false;
};

}  // namespace shmbus::tools
