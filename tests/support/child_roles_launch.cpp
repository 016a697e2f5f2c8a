// child_roles_launch.cpp — workers that `shmbus launch` starts in the launch tests.
//
//   launch_worker  joins the service named by $SHMBUS_SERVICE on bus $SHMBUS_BUS
//                  with Server::join (the launcher registered it) and serves
//                  until SIGTERM: a cast sleeps --work-us µs (default 0); a
//                  call replies with its own payload (untyped) or, with
//                  --typed 1, the example mailer's EmailSent (handled_by_pid).
//                  --exit-code N exits N at once instead (a worker that
//                  cannot start). --count-file PATH: at exit, appends
//                  "handled <casts>" to PATH.
#include <fcntl.h>
#include <flatbuffers/flatbuffers.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "shmbus/bus.hpp"
#include "shmbus/schemas/mailer_generated.h"
#include "shmbus/schemas/mailer_reply_generated.h"
#include "shmbus/server.hpp"
#include "support/child_roles.hpp"

namespace shmbus::test {

namespace {

namespace mailer = shmbus::examples::mailer;

std::atomic<Server*> g_server{nullptr};

void on_term(int) {
  if (Server* server = g_server.load()) server->stop();  // async-signal-safe
}

class LaunchWorker : public Handler {
 public:
  LaunchWorker(long work_us, bool typed) : work_us_(work_us), typed_(typed) {}
  void handle_call(const Request& request, ReplyWriter& reply) override {
    if (!typed_) {
      (void)reply.assign(request.payload());
      return;
    }
    flatbuffers::FlatBufferBuilder builder;
    const auto* email = request.root<mailer::SendEmail>();
    builder.Finish(mailer::CreateEmailSent(builder, email->id(), mailer::Delivery::Sent, 0,
                                           static_cast<int>(::getpid())),
                   "MALR");
    (void)reply.assign(std::as_bytes(std::span(builder.GetBufferPointer(), builder.GetSize())));
  }
  void handle_cast(const Request&) override {
    if (work_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(work_us_));
    ++casts_;
  }
  [[nodiscard]] long casts() const noexcept { return casts_; }

 private:
  long work_us_;
  bool typed_;
  long casts_ = 0;
};

void append_count(const std::string& path, long casts) {
  if (path.empty()) return;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) die("cannot open " + path);
  const std::string line = "handled " + std::to_string(casts) + "\n";
  (void)!::write(fd, line.data(), line.size());  // one O_APPEND write: never interleaved
  ::close(fd);
}

int launch_worker(const ChildArgs& args) {
  if (args.count("exit-code") != 0) std::_Exit(static_cast<int>(arg_number(args, "exit-code", 1)));
  const char* bus_name = std::getenv("SHMBUS_BUS");
  const char* service = std::getenv("SHMBUS_SERVICE");
  if (bus_name == nullptr || service == nullptr) die("SHMBUS_BUS and SHMBUS_SERVICE must be set");
  auto bus =
      Bus::attach(bus_name, {.ready_timeout = std::chrono::seconds(5), .label = "launch_worker"});
  if (!bus) die(bus.error().message());
  const bool typed = arg_number(args, "typed", 0) != 0;
  const ServiceSchema schema =
      typed ? ServiceSchema::of<mailer::SendEmail, mailer::EmailSent>("MAIL", "MALR")
            : ServiceSchema{};
  auto server = Server::join(*bus, service, schema);
  if (!server) die(server.error().message());
  g_server.store(&*server);
  struct sigaction action {};
  action.sa_handler = on_term;
  ::sigaction(SIGTERM, &action, nullptr);
  LaunchWorker worker(arg_number(args, "work-us", 0), typed);
  (void)server->serve(worker);
  g_server.store(nullptr);
  append_count(arg_text(args, "count-file"), worker.casts());
  return 0;
}

}  // namespace

int run_launch_role(const std::string& role, const ChildArgs& args) {
  if (role == "launch_worker") return launch_worker(args);
  return -1;
}

}  // namespace shmbus::test
