// supervisor.cpp — the supervision thread: fork+exec, pidfd reaping, restart
// policy and intensity, ordered shut-down.
#include "shmbus/supervisor.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

extern char** environ;

namespace shmbus {

namespace {

using Clock = std::chrono::steady_clock;

int pidfd_open(pid_t pid) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

std::string errno_text(const char* call, int error) {
  std::string text = call;
  text.append(": ").append(std::strerror(error));
  return text;
}

ExitStatus decode(int wait_status) noexcept {
  ExitStatus out;
  if (WIFSIGNALED(wait_status)) {
    out.signal = WTERMSIG(wait_status);
  } else if (WIFEXITED(wait_status)) {
    out.code = WEXITSTATUS(wait_status);
  }
  return out;
}

// The program to exec: argv[0] itself when it holds a '/', else the first
// executable match in PATH, resolved in the parent (nothing after fork may
// allocate). No match leaves argv[0]: execve fails and the child exits 127.
std::string resolve(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t begin = 0;
  while (begin <= dirs.size()) {
    std::size_t end = dirs.find(':', begin);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate;
    if (end == begin) {
      candidate.push_back('.');  // an empty PATH entry is the current directory
    } else {
      candidate.append(dirs, begin, end - begin);
    }
    candidate.push_back('/');
    candidate.append(program);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    begin = end + 1;
  }
  return program;
}

// Everything the child needs, built before fork.
struct ExecImage {
  std::string path;
  std::vector<std::string> strings;  // argv then envp entries (owned)
  std::vector<char*> argv;
  std::vector<char*> envp;

  explicit ExecImage(const ChildSpec& spec) : path(resolve(spec.argv.front())) {
    std::set<std::string> overridden;
    for (const auto& [key, value] : spec.env) overridden.insert(key);
    strings.reserve(spec.argv.size() + spec.env.size() + 64);
    std::vector<std::string> env_lines;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
      std::string line = *entry;
      const auto eq = line.find('=');
      if (eq != std::string::npos && overridden.count(line.substr(0, eq)) != 0) continue;
      env_lines.push_back(std::move(line));
    }
    for (const auto& [key, value] : spec.env) {
      std::string line = key;
      line.append("=").append(value);
      env_lines.push_back(std::move(line));
    }
    for (const auto& arg : spec.argv) strings.push_back(arg);
    for (auto& line : env_lines) strings.push_back(std::move(line));
    for (std::size_t i = 0; i < spec.argv.size(); ++i) argv.push_back(strings[i].data());
    argv.push_back(nullptr);
    for (std::size_t i = spec.argv.size(); i < strings.size(); ++i) {
      envp.push_back(strings[i].data());
    }
    envp.push_back(nullptr);
  }
};

// Only async-signal-safe calls between fork and exec.
[[noreturn]] void exec_child(const ExecImage& image, pid_t parent) noexcept {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ::_exit(127);
  // The parent (thread) may have died before prctl: then no signal will come.
  if (::getppid() != parent) ::_exit(127);
  // Its own process group: a terminal's Ctrl-C reaches only the supervisor
  // (which stops children in order), and stop() signals the child's helpers too.
  ::setpgid(0, 0);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &default_action, nullptr);  // fails harmlessly for reserved signals
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(image.path.c_str(), image.argv.data(), image.envp.data());
  ::_exit(127);
}

// The group when the child made one, else the child alone (it may not have
// reached setpgid yet, or an exec'd program may have left the group).
void signal_group(pid_t pid, int sig) noexcept {
  ::kill(-pid, sig);
  ::kill(pid, sig);
}

struct Child {
  ChildSpec spec;
  pid_t pid = 0;
  int pidfd = -1;
  ChildState state = ChildState::running;
  std::uint32_t restarts = 0;
  std::optional<ExitStatus> last_exit;
  Clock::time_point started_at{};
  std::deque<Clock::time_point> recent_restarts;  // within spec.within
};

}  // namespace

struct Supervisor::Impl {
  SupervisorOptions options;
  mutable std::mutex mutex;  // guards children's visible fields and active_
  std::vector<Child> children;
  bool active_ = true;
  bool stop_requested = false;  // guarded by mutex
  int wake_fd = -1;             // eventfd: stop()
  std::thread thread;
  std::condition_variable started_cv;  // start() waits for the first spawns
  bool started = false;                // guarded by mutex

  ~Impl() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void emit(const ChildEvent& event) const {
    if (options.on_event) options.on_event(event);
  }

  // Forks and execs `child` (on the supervision thread). A failed fork
  // or pidfd_open is an immediate exit with code 127.
  std::optional<ExitStatus> spawn(Child& child) {
    ExecImage image(child.spec);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) exec_child(image, parent);
    if (pid < 0) return ExitStatus{127, 0};
    ::setpgid(pid, pid);  // also here, so a signal to the group never precedes it
    const int fd = pidfd_open(pid);
    if (fd < 0) {
      ::kill(pid, SIGKILL);
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return ExitStatus{127, 0};
    }
    std::lock_guard lock(mutex);
    child.pid = pid;
    child.pidfd = fd;
    child.state = ChildState::running;
    child.started_at = Clock::now();
    return std::nullopt;
  }

  // Reaps a child whose pidfd is readable (or which was just killed).
  ExitStatus reap(Child& child) {
    int status = 0;
    while (::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
    }
    ::close(child.pidfd);
    const ExitStatus exit = decode(status);
    std::lock_guard lock(mutex);
    child.pid = 0;
    child.pidfd = -1;
    child.last_exit = exit;
    return exit;
  }

  // After a process of `child` ended with `exit`: restart it, or not, by its
  // policy and intensity. Returns true when it was marked failed.
  bool handle_exit(Child& child, pid_t ended, ExitStatus exit) {
    for (;;) {
      emit({ChildEvent::Kind::exited, child.spec.name, ended, child.restarts, exit});
      const bool restart = child.spec.restart == Restart::permanent ||
                           (child.spec.restart == Restart::transient && !exit.normal());
      if (!restart) {
        std::lock_guard lock(mutex);
        child.state = ChildState::exited;
        return false;
      }
      const auto now = Clock::now();
      while (!child.recent_restarts.empty() &&
             now - child.recent_restarts.front() > child.spec.within) {
        child.recent_restarts.pop_front();
      }
      if (child.recent_restarts.size() >= child.spec.max_restarts) {
        {
          std::lock_guard lock(mutex);
          child.state = ChildState::failed;
        }
        emit({ChildEvent::Kind::failed, child.spec.name, 0, child.restarts, exit});
        return true;
      }
      child.recent_restarts.push_back(now);
      {
        std::lock_guard lock(mutex);
        ++child.restarts;
      }
      const auto spawn_failure = spawn(child);
      if (!spawn_failure) {
        emit({ChildEvent::Kind::restarted, child.spec.name, child.pid, child.restarts, {}});
        return false;
      }
      {
        std::lock_guard lock(mutex);
        child.last_exit = spawn_failure;
      }
      exit = *spawn_failure;
      ended = 0;
    }
  }

  // SIGTERM to the child's process group, wait up to the grace on the
  // child's pidfd, SIGKILL to the group, reap. (A process group outlives its
  // leader's pid only while members remain, and Linux never hands out a pid
  // still in use as a group id, so the group signals cannot hit a stranger.)
  void terminate(Child& child) {
    signal_group(child.pid, SIGTERM);
    const auto deadline = Clock::now() + child.spec.shutdown_grace;
    for (;;) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(
          deadline - Clock::now());
      if (left.count() <= 0) break;
      pollfd entry{child.pidfd, POLLIN, 0};
      const int ready = ::poll(&entry, 1, static_cast<int>(left.count()));
      if (ready > 0) break;
      if (ready < 0 && errno != EINTR) break;
    }
    signal_group(child.pid, SIGKILL);  // harmless on a zombie: reaped just below
    const pid_t pid = child.pid;
    const ExitStatus exit = reap(child);
    {
      std::lock_guard lock(mutex);
      child.state = ChildState::stopped;
    }
    emit({ChildEvent::Kind::stopped, child.spec.name, pid, child.restarts, exit});
  }

  void shut_down() {
    for (auto it = children.rbegin(); it != children.rend(); ++it) {
      if (it->pid != 0) terminate(*it);
    }
    std::lock_guard lock(mutex);
    active_ = false;
  }

  void run() {
    bool failed = false;
    std::vector<std::pair<std::size_t, ExitStatus>> start_failures;
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (auto failure = spawn(children[i])) {
        start_failures.emplace_back(i, *failure);
        std::lock_guard lock(mutex);
        children[i].last_exit = failure;
      }
    }
    {
      std::lock_guard lock(mutex);
      started = true;
    }
    started_cv.notify_all();
    for (auto& child : children) {
      if (child.pid != 0) {
        emit({ChildEvent::Kind::started, child.spec.name, child.pid, 0, {}});
      }
    }
    for (const auto& [index, exit] : start_failures) {
      failed = handle_exit(children[index], 0, exit) || failed;
    }

    std::vector<pollfd> fds;
    std::vector<std::size_t> owners;
    while (!(failed && options.on_failure == OnFailure::shut_down)) {
      fds.assign(1, pollfd{wake_fd, POLLIN, 0});
      owners.clear();
      for (std::size_t i = 0; i < children.size(); ++i) {
        if (children[i].pid == 0) continue;
        fds.push_back(pollfd{children[i].pidfd, POLLIN, 0});
        owners.push_back(i);
      }
      const int ready = ::poll(fds.data(), fds.size(), -1);
      if (ready < 0) continue;  // EINTR
      if (fds[0].revents != 0) {
        std::lock_guard lock(mutex);
        if (stop_requested) break;
      }
      for (std::size_t k = 1; k < fds.size(); ++k) {
        if (fds[k].revents == 0) continue;
        Child& child = children[owners[k - 1]];
        const pid_t pid = child.pid;
        // The leader is a zombie, so its pid (the group id) is still ours:
        // whatever it left running in its group goes with it.
        ::kill(-pid, SIGKILL);
        failed = handle_exit(child, pid, reap(child)) || failed;
      }
    }
    shut_down();
  }
};

Supervisor::Supervisor(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Supervisor::Supervisor(Supervisor&&) noexcept = default;
Supervisor& Supervisor::operator=(Supervisor&& other) noexcept {
  if (this != &other) {
    stop();
    impl_ = std::move(other.impl_);
  }
  return *this;
}
Supervisor::~Supervisor() { stop(); }

Result<Supervisor> Supervisor::start(std::vector<ChildSpec> children,
                                     SupervisorOptions options) {
  if (children.empty()) return fail(Errc::bad_options, "a supervisor needs at least one child");
  std::set<std::string> names;
  for (const auto& spec : children) {
    if (spec.name.empty()) return fail(Errc::bad_options, "a child spec has no name");
    if (spec.argv.empty() || spec.argv.front().empty()) {
      std::string detail = "child '";
      detail.append(spec.name).append("' has no program (argv is empty)");
      return fail(Errc::bad_options, std::move(detail));
    }
    if (!names.insert(spec.name).second) {
      std::string detail = "two children are named '";
      detail.append(spec.name).append("'");
      return fail(Errc::bad_options, std::move(detail));
    }
  }
  const int probe = pidfd_open(::getpid());
  if (probe < 0) return fail(Errc::system_error, errno_text("pidfd_open", errno));
  ::close(probe);

  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->children.reserve(children.size());
  for (auto& spec : children) {
    Child child;
    child.spec = std::move(spec);
    impl->children.push_back(std::move(child));
  }
  impl->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl->wake_fd < 0) return fail(Errc::system_error, errno_text("eventfd", errno));

  try {
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] { raw->run(); });
  } catch (const std::system_error& e) {
    std::string detail = "supervision thread: ";
    detail.append(e.what());
    return fail(Errc::system_error, std::move(detail));
  }
  {
    std::unique_lock lock(impl->mutex);
    impl->started_cv.wait(lock, [&] { return impl->started; });
  }
  return Supervisor(std::move(impl));
}

std::vector<ChildStatus> Supervisor::status() const {
  std::vector<ChildStatus> out;
  if (!impl_) return out;
  const auto now = Clock::now();
  std::lock_guard lock(impl_->mutex);
  out.reserve(impl_->children.size());
  for (const auto& child : impl_->children) {
    ChildStatus s;
    s.name = child.spec.name;
    s.pid = child.pid;
    s.state = child.state;
    s.restarts = child.restarts;
    s.last_exit = child.last_exit;
    s.started_at = child.started_at;
    if (child.pid != 0) {
      s.uptime = std::chrono::duration_cast<std::chrono::milliseconds>(now - child.started_at);
    }
    out.push_back(std::move(s));
  }
  return out;
}

bool Supervisor::active() const {
  if (!impl_) return false;
  std::lock_guard lock(impl_->mutex);
  return impl_->active_;
}

void Supervisor::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stop_requested = true;
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(impl_->wake_fd, &one, sizeof one);
  impl_->thread.join();
}

const char* to_string(ChildState state) noexcept {
  switch (state) {
    case ChildState::running: return "running";
    case ChildState::exited: return "exited";
    case ChildState::failed: return "failed";
    case ChildState::stopped: return "stopped";
  }
  return "unknown";
}

const char* to_string(ChildEvent::Kind kind) noexcept {
  switch (kind) {
    case ChildEvent::Kind::started: return "started";
    case ChildEvent::Kind::exited: return "exited";
    case ChildEvent::Kind::restarted: return "restarted";
    case ChildEvent::Kind::failed: return "failed";
    case ChildEvent::Kind::stopped: return "stopped";
  }
  return "unknown";
}

}  // namespace shmbus
