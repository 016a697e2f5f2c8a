#include "mail_burst.hpp"

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include <shmbus/schemas/mailer_generated.h>

#include "shmbus/message.hpp"

namespace mailer = shmbus::examples::mailer;

namespace shmbus::demo {

namespace {

const char* const kTemplates[] = {"mail.welcome", "mail.invoice", "mail.digest"};

std::vector<std::byte> encode(flatbuffers::FlatBufferBuilder& builder, std::uint64_t id,
                              const char* template_key) {
  builder.Clear();
  const std::string email = "user" + std::to_string(id) + "@example.org";
  const std::string name = "User " + std::to_string(id);
  mailer::FinishSendEmailBuffer(
      builder, mailer::CreateSendEmailDirect(builder, email.c_str(), name.c_str(), "", "",
                                             template_key, id));
  const auto* data = reinterpret_cast<const std::byte*>(builder.GetBufferPointer());
  return {data, data + builder.GetSize()};
}

struct InFlight {
  std::uint64_t id;
  PendingCall call;
};

void settle(InFlight& in_flight, BurstOutcomes& out, MessageBuffer& scratch) {
  auto reply = in_flight.call.wait();
  if (!reply) {
    out.errors[in_flight.id] = to_string(reply.error());
    return;
  }
  auto sent = reply->read<mailer::EmailSent>(mailer::EmailSentIdentifier(), scratch);
  if (!sent || (*sent)->status() != mailer::Delivery::Sent) {
    out.errors[in_flight.id] = "rejected";
    return;
  }
  out.calls_sent.insert(in_flight.id);
}

}  // namespace

BurstOutcomes send_burst(Service& mailer_service, const BurstPlan& plan,
                         const std::function<void(std::uint64_t)>& progress,
                         const std::function<void()>& at_kill_point) {
  BurstOutcomes out;
  flatbuffers::FlatBufferBuilder builder(512);
  MessageBuffer scratch;
  std::deque<InFlight> in_flight;
  const std::uint64_t step = plan.messages / 10 == 0 ? 1 : plan.messages / 10;
  for (std::uint64_t id = 1; id <= plan.messages; ++id) {
    if (id == plan.kill_at) at_kill_point();
    const bool is_cast = id % 2 == 1;
    const bool missing = !is_cast && plan.missing_template_every != 0 &&
                         id % plan.missing_template_every == 0;
    const auto bytes = encode(builder, id, missing ? "mail.missing" : kTemplates[id % 3]);
    if (is_cast) {
      ++out.casts;
      auto cast = mailer_service.cast(bytes, {.deadline = deadline_in(plan.deadline)});
      if (cast) out.casts_accepted.insert(id);
      else out.errors[id] = to_string(cast.error());
    } else {
      ++out.calls;
      auto call = mailer_service.send_request(bytes, {.deadline = deadline_in(plan.deadline)});
      if (!call) {
        out.errors[id] = to_string(call.error());
      } else {
        in_flight.push_back({id, std::move(*call)});
        if (in_flight.size() >= plan.calls_in_flight) {
          settle(in_flight.front(), out, scratch);
          in_flight.pop_front();
        }
      }
    }
    if (id % step == 0) progress(id);
  }
  for (auto& call : in_flight) settle(call, out, scratch);
  return out;
}

}  // namespace shmbus::demo
