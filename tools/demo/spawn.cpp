#include "spawn.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>

namespace shmbus::demo {

std::string own_directory() {
  char path[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return ".";
  std::string exe(path, static_cast<std::size_t>(n));
  return exe.substr(0, exe.rfind('/'));
}

pid_t spawn(const std::string& program, const std::vector<std::string>& args) {
  std::vector<std::string> storage{program};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(120);
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

namespace {
std::string describe(int status) {
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "exited " + std::to_string(WEXITSTATUS(status));
}
}  // namespace

std::optional<std::string> reap_if_ended(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) != pid) return std::nullopt;
  return describe(status);
}

std::string reap(pid_t pid) {
  // A worker that does not stop within 5 s is killed: the demo never hangs.
  for (int waited_ms = 0; waited_ms < 5000; ++waited_ms) {
    if (auto ended = reap_if_ended(pid)) return *ended;
    ::usleep(1000);
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return "lost";
  return describe(status) + " (did not stop within 5 s)";
}



}  // namespace shmbus::demo
