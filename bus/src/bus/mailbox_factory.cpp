#include "bus/mailbox_factory.hpp"

#include "bus/bus_core.hpp"
#include "registry/registry.hpp"
#include "ring/ring.hpp"
#include "segment/segment.hpp"

namespace shmbus::detail {

Result<Mailbox> MailboxFactory::create(const std::shared_ptr<BusCore>& core,
                                       const std::string& shm_name, std::string name,
                                       const MailboxOptions& options) {
  auto size = Ring::segment_size(options);
  if (!size) return tl::unexpected(size.error());
  const SegmentSpec spec{shm_name, layout::SegmentKind::mailbox, *size,
                         core->table().segment_mode(), 0};
  auto segment = Segment::create(
      spec, [&](std::span<std::byte> bytes) { Ring::initialize(bytes, options); });
  if (!segment) return tl::unexpected(segment.error());
  auto ring = Ring::open(std::move(*segment), core->table(), core);
  if (!ring) {
    (void)Segment::remove(spec.shm_name, Errc::no_such_mailbox);
    return tl::unexpected(ring.error());
  }
  return Mailbox(core, std::move(*ring), std::move(name));
}

Result<Mailbox> MailboxFactory::open(const std::shared_ptr<BusCore>& core,
                                     const std::string& shm_name, std::string name) {
  auto segment = Segment::attach(shm_name, layout::SegmentKind::mailbox,
                                 deadline_in(std::chrono::seconds(2)), Errc::no_such_mailbox);
  if (!segment) return tl::unexpected(segment.error());
  auto ring = Ring::open(std::move(*segment), core->table(), core);
  if (!ring) return tl::unexpected(ring.error());
  return Mailbox(core, std::move(*ring), std::move(name));
}

Result<Mailbox> MailboxFactory::open_dead_letters(const std::shared_ptr<BusCore>& core,
                                                  std::string_view service) {
  if (!core->registry().find(service)) {
    return fail(Errc::no_such_service,
                "no service '" + std::string(service) + "' on bus '" + core->name() + "'");
  }
  return open(core, dead_letter_shm_name(*core, service), std::string(service) + "~dead");
}

}  // namespace shmbus::detail
