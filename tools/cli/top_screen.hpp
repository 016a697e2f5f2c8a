// top_screen.hpp — the terminal `shmbus top` draws on: raw keys, the
// alternate screen, frames redrawn in place, and a clean way out.
//
// Plain ANSI escapes (every terminal emulator and tmux speak them; no curses):
// the session switches to the alternate screen and hides the cursor, turns
// off echo, line buffering and Ctrl-Z (ISIG stays on, so Ctrl-C is SIGINT), and
// catches SIGINT, SIGTERM and SIGHUP as a quit request and SIGWINCH as a
// resize. The destructor puts everything back — also when the caller leaves
// by an error path — so a shell is never left without echo.
//
//   auto screen = TerminalSession::open();
//   while (screen->wait(next_refresh) != TerminalSession::Event::quit) screen->draw(frame());
#pragma once

#include <signal.h>
#include <termios.h>

#include <chrono>
#include <string>

#include "shmbus/error.hpp"

namespace shmbus::tools {

// Whether stdin and stdout are both terminals (top needs both: keys in, frames out).
[[nodiscard]] bool on_a_terminal() noexcept;

class TerminalSession {
 public:
  enum class Event { timeout, quit, key, resize };
  // The signals a session handles: INT, TERM, HUP, QUIT (quit), WINCH (resize).
  static constexpr int kSignalCount = 5;

  // TerminalSession::open()
  //
  // Takes over the terminal on stdin/stdout. Fails with bad_options when
  // either is not a terminal, system_error when its modes cannot be set
  // (nothing is changed then).
  [[nodiscard]] static Result<TerminalSession> open();

  TerminalSession(TerminalSession&& other) noexcept;
  TerminalSession& operator=(TerminalSession&&) = delete;
  ~TerminalSession();

  // Waits until `until`, a key, or a signal. `q`, `Q` and Ctrl-C/SIGINT,
  // SIGTERM, SIGHUP, Ctrl-\ (SIGQUIT) are quit; end of input (the terminal went away) too.
  Event wait(std::chrono::steady_clock::time_point until);

  // Replaces the screen's content with `frame` (lines cut to the width,
  // those past the height dropped), from the top-left corner.
  void draw(const std::string& frame);

  [[nodiscard]] int columns() const noexcept { return columns_; }
  [[nodiscard]] int rows() const noexcept { return rows_; }

 private:
  TerminalSession(const termios& saved, const sigset_t& old_mask) noexcept;
  void measure() noexcept;
  void restore() noexcept;
  bool active_ = false;
  termios saved_{};
  sigset_t old_mask_{};
  struct sigaction old_actions_[kSignalCount]{};
  int columns_ = 80;
  int rows_ = 24;
};

}  // namespace shmbus::tools
