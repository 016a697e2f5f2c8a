// top_screen.cpp — raw mode, alternate screen, signals as flags, in-place frames.
#include "top_screen.hpp"

#include <errno.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <string_view>

namespace shmbus::tools {

namespace {

// Set by the handlers; read by wait(). The signals are blocked except inside
// ppoll(), so a signal can never slip in between the check and the wait.
volatile sig_atomic_t g_quit = 0;
volatile sig_atomic_t g_resized = 0;

// SIGQUIT too: Ctrl-\ would otherwise end top with a core dump and leave
// its shell a raw terminal on the alternate screen.
constexpr int kSignals[TerminalSession::kSignalCount] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT,
                                                         SIGWINCH};

extern "C" void on_signal(int signal_number) {
  if (signal_number == SIGWINCH) {
    g_resized = 1;
  } else {
    g_quit = 1;
  }
}

void write_all(std::string_view bytes) noexcept {
  while (!bytes.empty()) {
    const ssize_t n = ::write(STDOUT_FILENO, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the terminal went away: nothing more to show
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

constexpr std::string_view kEnter = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";  // alt screen, no cursor
constexpr std::string_view kLeave = "\x1b[?25h\x1b[?1049l";             // cursor, main screen

}  // namespace

bool on_a_terminal() noexcept { return ::isatty(STDIN_FILENO) == 1 && ::isatty(STDOUT_FILENO) == 1; }

Result<TerminalSession> TerminalSession::open() {
  if (!on_a_terminal()) return fail(Errc::bad_options, "stdin and stdout must be a terminal");
  termios saved{};
  if (::tcgetattr(STDIN_FILENO, &saved) != 0) {
    return fail(Errc::system_error, std::string("tcgetattr: ") + std::strerror(errno));
  }
  sigset_t ours;
  sigemptyset(&ours);
  for (const int s : kSignals) sigaddset(&ours, s);
  sigset_t old_mask;
  ::sigprocmask(SIG_BLOCK, &ours, &old_mask);
  TerminalSession session(saved, old_mask);
  g_quit = 0;
  g_resized = 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: ppoll returns EINTR
  for (int i = 0; i < kSignalCount; ++i)
    ::sigaction(kSignals[i], &action, &session.old_actions_[i]);

  termios raw = saved;
  raw.c_lflag &= ~static_cast<tcflag_t>(ECHO | ICANON);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  // No Ctrl-Z: a stopped top would leave its shell a raw terminal.
  raw.c_cc[VSUSP] = _POSIX_VDISABLE;
  if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) != 0) {
    const int error = errno;
    session.restore();
    return fail(Errc::system_error, std::string("tcsetattr: ") + std::strerror(error));
  }
  write_all(kEnter);
  session.measure();
  return session;
}

TerminalSession::TerminalSession(const termios& saved, const sigset_t& old_mask) noexcept
    : active_(true), saved_(saved), old_mask_(old_mask) {}

TerminalSession::TerminalSession(TerminalSession&& other) noexcept
    : active_(other.active_), saved_(other.saved_), old_mask_(other.old_mask_),
      columns_(other.columns_), rows_(other.rows_) {
  std::memcpy(old_actions_, other.old_actions_, sizeof old_actions_);
  other.active_ = false;
}

TerminalSession::~TerminalSession() { restore(); }

void TerminalSession::restore() noexcept {
  if (!active_) return;
  active_ = false;
  write_all(kLeave);
  ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  for (int i = 0; i < kSignalCount; ++i) ::sigaction(kSignals[i], &old_actions_[i], nullptr);
  ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
}

void TerminalSession::measure() noexcept {
  winsize size{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 && size.ws_row > 0) {
    columns_ = size.ws_col;
    rows_ = size.ws_row;
  }
}

TerminalSession::Event TerminalSession::wait(std::chrono::steady_clock::time_point until) {
  sigset_t open_mask = old_mask_;
  for (const int s : kSignals) sigdelset(&open_mask, s);
  for (;;) {
    if (g_quit) return Event::quit;
    if (g_resized) {
      g_resized = 0;
      measure();
      return Event::resize;
    }
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return Event::timeout;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    const timespec timeout{static_cast<time_t>(ns / 1'000'000'000),
                           static_cast<long>(ns % 1'000'000'000)};
    pollfd input{STDIN_FILENO, POLLIN, 0};
    const int ready = ::ppoll(&input, 1, &timeout, &open_mask);
    if (ready < 0) {
      if (errno == EINTR) continue;  // a signal: its flag decides
      return Event::quit;
    }
    if (ready == 0) return Event::timeout;
    if ((input.revents & POLLIN) == 0) return Event::quit;  // hung up, error
    char keys[64];
    const ssize_t n = ::read(STDIN_FILENO, keys, sizeof keys);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return Event::quit;  // end of input: the terminal is gone
    for (ssize_t i = 0; i < n; ++i) {
      if (keys[i] == 'q' || keys[i] == 'Q' || keys[i] == 3 /* Ctrl-C without ISIG */) {
        return Event::quit;
      }
    }
    return Event::key;
  }
}

void TerminalSession::draw(const std::string& frame) {
  std::string out = "\x1b[H";
  std::string_view rest = frame;
  const auto width = static_cast<std::size_t>(columns_);
  for (int row = 0; row < rows_ && !rest.empty(); ++row) {
    const auto end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    if (row > 0) out += "\r\n";
    out += line.substr(0, width);
    out += "\x1b[K";  // the rest of the row: whatever the last frame left there
  }
  out += "\x1b[J";  // the rows below
  write_all(out);
}

}  // namespace shmbus::tools
