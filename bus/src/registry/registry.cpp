#include "registry/registry.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "bus/bus_core.hpp"
#include "bus/mailbox_factory.hpp"
#include "segment/segment.hpp"
#include "shmbus/detail/atomic.hpp"
#include "shmbus/detail/test_hook.hpp"

namespace shmbus {

std::uint64_t detail::schema_hash(std::string_view request_type, const char* request_identifier,
                                  std::string_view reply_type,
                                  const char* reply_identifier) noexcept {
  // FNV-1a 64 over "request_type\0request_id\0reply_type\0reply_id": stable
  // across builds and machines, never 0 for a typed service.
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&](std::string_view text) {
    for (const char ch : text) h = (h ^ static_cast<unsigned char>(ch)) * 0x100000001b3ULL;
    h = h * 0x100000001b3ULL;
  };
  mix(request_type);
  mix(std::string_view(request_identifier, strnlen(request_identifier, 4)));
  mix(reply_type);
  mix(std::string_view(reply_identifier, strnlen(reply_identifier, 4)));
  return h == 0 ? 1 : h;
}

std::chrono::microseconds latency_quantile(const ServerCounters& counters, double q) noexcept {
  std::uint64_t total = 0;
  for (const std::uint64_t n : counters.latency) total += n;
  if (total == 0) return std::chrono::microseconds{0};
  const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total - 1)) + 1;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counters.latency.size(); ++i) {
    seen += counters.latency[i];
    if (seen >= rank) {
      if (i + 1 == counters.latency.size()) return std::chrono::microseconds::max();  // open
      return std::chrono::microseconds{std::uint64_t{1} << i};
    }
  }
  return std::chrono::microseconds::max();
}

namespace detail {

using layout::ServerState;
using layout::ServiceEntry;
using layout::ServiceState;

namespace {

constexpr std::uint64_t service_state(std::uint32_t generation, ServiceState s) noexcept {
  return (std::uint64_t{generation} << 32) | static_cast<std::uint32_t>(s);
}
constexpr ServiceState state_of(std::uint64_t state) noexcept {
  return static_cast<ServiceState>(static_cast<std::uint32_t>(state));
}

std::uint64_t unix_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

template <std::size_t N>
void copy_text(char (&to)[N], std::string_view from) noexcept {
  std::memset(to, 0, N);
  std::memcpy(to, from.data(), std::min(from.size(), N - 1));
}

template <std::size_t N>
std::string_view text_of(const char (&field)[N]) noexcept {
  return {field, strnlen(field, N)};
}

// The registry epoch is a sequence lock for readers of counters: odd while
// a holder of the mutex moves counts between a server entry and `retired`
// (join, leave), so a snapshot that saw it odd or changed reads again.
// Other changes (registration, a server leaving, partitions let go) move it
// by two: readers that only watch for change (rebalancing) see them too.
class EpochChange {
 public:
  explicit EpochChange(std::uint64_t& epoch) noexcept : epoch_(epoch) {
    fetch_add(epoch_, std::uint64_t{1});
  }
  ~EpochChange() { fetch_add(epoch_, std::uint64_t{1}); }
  EpochChange(const EpochChange&) = delete;
  EpochChange& operator=(const EpochChange&) = delete;

 private:
  std::uint64_t& epoch_;
};

bool power_of_two(std::uint32_t n) noexcept { return n >= 2 && (n & (n - 1)) == 0; }

Result<void> check_options(std::string_view name, const ServiceOptions& o) {
  if (!valid_name(name)) {
    return fail(Errc::bad_name, "service name '" + std::string(name) +
                                    "' must be 1–48 characters of [A-Za-z0-9_-]");
  }
  if (!power_of_two(o.mailbox_capacity) || !power_of_two(o.dead_letter_capacity) ||
      o.max_record == 0 || o.max_deliveries == 0 || o.max_deliveries > 250 ||
      (o.partitions != 0 && (!power_of_two(o.partitions) || o.partitions > layout::kMaxPartitions))) {
    return fail(Errc::bad_options,
                "service '" + std::string(name) +
                    "': mailbox_capacity and dead_letter_capacity must be powers of two >= 2, "
                    "max_record >= 1, max_deliveries 1 … 250, partitions 0 or a power of two "
                    "2 … 64");
  }
  return {};
}

// Whether the registered identity says what `o` says.
bool same_service(const layout::ServiceIdentity& id, const ServiceOptions& o) noexcept {
  return id.schema_hash == o.schema.hash &&
         std::memcmp(id.request_identifier, o.schema.request_identifier.data(), 4) == 0 &&
         std::memcmp(id.reply_identifier, o.schema.reply_identifier.data(), 4) == 0 &&
         id.mailbox_capacity == o.mailbox_capacity && id.max_record == o.max_record &&
         id.max_deliveries == o.max_deliveries &&
         id.dead_letter_capacity == o.dead_letter_capacity && id.partitions == o.partitions;
}

void write_identity(layout::ServiceIdentity& id, std::string_view name,
                    const ServiceOptions& o) noexcept {
  copy_text(id.name, name);
  std::memcpy(id.request_identifier, o.schema.request_identifier.data(), 4);
  std::memcpy(id.reply_identifier, o.schema.reply_identifier.data(), 4);
  id.schema_hash = o.schema.hash;
  copy_text(id.request_type, o.schema.request_type);
  copy_text(id.reply_type, o.schema.reply_type);
  copy_text(id.schema_path, o.schema.path);
  id.mailbox_capacity = o.mailbox_capacity;
  id.max_record = o.max_record;
  id.max_deliveries = o.max_deliveries;
  id.dead_letter_capacity = o.dead_letter_capacity;
  id.partitions = o.partitions;
  id.closed = 0;
}

// Creates a service mailbox, replacing one left by a registrar that died
// before its entry went live.
Result<void> fresh_mailbox(const std::shared_ptr<BusCore>& core, const std::string& shm_name,
                           std::string name, const MailboxOptions& options) {
  auto made = MailboxFactory::create(core, shm_name, name, options);
  if (!made && made.error().code == Errc::bus_exists) {
    (void)Segment::remove(shm_name, Errc::no_such_mailbox);
    made = MailboxFactory::create(core, shm_name, std::move(name), options);
  }
  if (!made) return tl::unexpected(made.error());
  return {};
}

}  // namespace

std::string pool_shm_name(const BusCore& core, std::string_view service) {
  return core.mailbox_shm_name(service) + "~pool";
}
std::string dead_letter_shm_name(const BusCore& core, std::string_view service) {
  return core.mailbox_shm_name(service) + "~dead";
}
std::string partition_shm_name(const BusCore& core, std::string_view service,
                               std::uint32_t partition) {
  return core.mailbox_shm_name(service) + "~k" + std::to_string(partition);
}

Registry::Registry(const ControlView& view, ProcessTable& table)
    : view_(view), table_(table), mutex_(view.registry().mutex, [this] { repair(); }) {}

void Registry::repair() noexcept {
  // A holder killed inside an EpochChange left the epoch odd: even it out.
  // (Its half-moved counts stay as they are: at worst one word counted twice.)
  if ((load_acquire(view_.registry().epoch) & 1) != 0) {
    fetch_add(view_.registry().epoch, std::uint64_t{1});
  }
  for (std::uint32_t i = 0; i < layout::kMaxServices; ++i) {
    ServiceEntry& service = view_.service(i);
    const std::uint64_t state = load_acquire(service.identity.state);
    if (state_of(state) == ServiceState::creating) {
      store_release(service.identity.state, service_state(static_cast<std::uint32_t>(state >> 32),
                                                          ServiceState::free));
    }
  }
}

Expected<std::uint32_t> Registry::find(std::string_view name) const noexcept {
  for (std::uint32_t i = 0; i < layout::kMaxServices; ++i) {
    const ServiceEntry& service = view_.service(i);
    // acquire: pairs with the registrar's release of `live`.
    if (state_of(load_acquire(service.identity.state)) != ServiceState::live) continue;
    if (text_of(service.identity.name) == name) return i;
  }
  return tl::unexpected(Errc::no_such_service);
}

Result<std::uint32_t> Registry::register_service(const std::shared_ptr<BusCore>& core,
                                                 std::string_view name,
                                                 const ServiceOptions& options) {
  if (auto ok = check_options(name, options); !ok) return tl::unexpected(ok.error());
  RobustLock lock(mutex_);
  if (!lock.result()) return tl::unexpected(lock.result().error());
  if (auto found = find(name)) {
    if (same_service(view_.service(*found).identity, options)) return *found;
    return fail(Errc::schema_mismatch,
                "service '" + std::string(name) + "' is registered with other types or options");
  }
  std::uint32_t index = layout::kMaxServices;
  for (std::uint32_t i = 0; i < layout::kMaxServices && index == layout::kMaxServices; ++i) {
    if (state_of(load_acquire(view_.service(i).identity.state)) == ServiceState::free) index = i;
  }
  if (index == layout::kMaxServices) {
    return fail(Errc::too_many_services, "all " + std::to_string(layout::kMaxServices) +
                                             " service entries of the bus are taken");
  }
  ServiceEntry& service = view_.service(index);
  const auto generation = static_cast<std::uint32_t>(service.identity.state >> 32) + 1;
  store_release(service.identity.state, service_state(generation, ServiceState::creating));
  std::memset(&service.counters, 0, sizeof service.counters);
  std::memset(&service.servers, 0, sizeof service.servers);
  const std::string shown(name);
  std::vector<std::string> made;
  auto give_up = [&](const Error& error) -> Result<std::uint32_t> {
    // Leave nothing half-made: the entry is free again, its segments gone.
    for (const auto& shm : made) (void)Segment::remove(shm, Errc::no_such_mailbox);
    store_release(service.identity.state, service_state(generation, ServiceState::free));
    return tl::unexpected(error);
  };
  auto make = [&](const std::string& shm, const std::string& shown_name, MailboxOptions o) {
    auto result = fresh_mailbox(core, shm, shown_name, o);
    if (result) made.push_back(shm);
    return result;
  };
  if (auto pool = make(pool_shm_name(*core, name), shown + "~pool",
                       {layout::RingKind::mpmc, options.mailbox_capacity, options.max_record});
      !pool) {
    return give_up(pool.error());
  }
  if (auto dead = make(dead_letter_shm_name(*core, name), shown + "~dead",
                       {layout::RingKind::mpmc, options.dead_letter_capacity, options.max_record});
      !dead) {
    return give_up(dead.error());
  }
  for (std::uint32_t p = 0; p < options.partitions; ++p) {
    if (auto partition = make(partition_shm_name(*core, name, p), shown + "~k" + std::to_string(p),
                              {layout::RingKind::mpsc, options.mailbox_capacity, options.max_record});
        !partition) {
      return give_up(partition.error());
    }
  }
  SHMBUS_TEST_HOOK(registry_before_live);
  write_identity(service.identity, name, options);
  // release: pairs with find()'s acquire; identity fields are complete.
  store_release(service.identity.state, service_state(generation, ServiceState::live));
  fetch_add(view_.registry().epoch, std::uint64_t{2});
  return index;
}

void Registry::retire(ServiceEntry& service, layout::ServerEntry& server) noexcept {
  auto* from = reinterpret_cast<std::uint64_t*>(&server.counters);
  auto* to = reinterpret_cast<std::uint64_t*>(&service.counters.retired);
  for (std::size_t i = 0; i < sizeof(layout::ServerCounters) / 8; ++i) {
    fetch_add(to[i], load_relaxed(from[i]), std::memory_order_relaxed);
    store_relaxed(from[i], std::uint64_t{0});
  }
  store_relaxed(server.state, static_cast<std::uint32_t>(ServerState::free));
  store_release(server.owner, std::uint32_t{0});
}

void Registry::retire_dead(ServiceEntry& service) noexcept {
  for (auto& server : service.servers) {
    const std::uint32_t owner = load_acquire(server.owner);
    if (owner != 0 && !table_.is_alive(owner)) retire(service, server);
  }
}

Result<std::uint32_t> Registry::join(std::uint32_t index) {
  RobustLock lock(mutex_);
  if (!lock.result()) return tl::unexpected(lock.result().error());
  ServiceEntry& service = view_.service(index);
  const EpochChange change(view_.registry().epoch);
  retire_dead(service);
  for (std::uint32_t i = 0; i < layout::kMaxServersPerService; ++i) {
    layout::ServerEntry& server = service.servers[i];
    if (load_acquire(server.owner) != 0) continue;
    server.joined_unix_ns = unix_ns();
    store_relaxed(server.state, static_cast<std::uint32_t>(ServerState::serving));
    store_release(server.owner, table_.self().value);
    return i;
  }
  return fail(Errc::too_many_consumers, "the pool of service '" +
                                            std::string(text_of(service.identity.name)) +
                                            "' has its maximum of 64 live servers");
}

void Registry::set_leaving(std::uint32_t index, std::uint32_t entry) noexcept {
  store_relaxed(view_.service(index).servers[entry].state,
                static_cast<std::uint32_t>(ServerState::leaving));
  // Keyed services: siblings re-read membership and take over our partitions
  // once we let go of them. By two: the epoch stays even (see EpochChange).
  fetch_add(view_.registry().epoch, std::uint64_t{2});
}

void Registry::leave(std::uint32_t index, std::uint32_t entry) {
  RobustLock lock(mutex_);
  if (!lock.result()) {
    // Unrecoverable mutex: leave the entry to be retired as dead later.
    store_relaxed(view_.service(index).servers[entry].state,
                  static_cast<std::uint32_t>(ServerState::leaving));
    return;
  }
  ServiceEntry& service = view_.service(index);
  layout::ServerEntry& server = service.servers[entry];
  const EpochChange change(view_.registry().epoch);
  if (load_acquire(server.owner) == table_.self().value) retire(service, server);
  retire_dead(service);
}

static_assert(static_cast<std::uint32_t>(Errc::stopped) < layout::kOutcomeCounters,
              "every Errc has an outcome counter");

void Registry::count_outcome(std::uint32_t index, Errc outcome) const noexcept {
  const auto i = static_cast<std::uint32_t>(outcome);
  if (i < layout::kOutcomeCounters) {
    fetch_add(view_.service(index).counters.outcomes[i], std::uint64_t{1},
              std::memory_order_relaxed);
  }
}

ServerCounters read_counters(const layout::ServerCounters& s) noexcept {
  ServerCounters c;
  c.calls = load_relaxed(s.calls);
  c.casts = load_relaxed(s.casts);
  c.replies = load_relaxed(s.replies);
  c.expired_skipped = load_relaxed(s.expired_skipped);
  c.late_replies = load_relaxed(s.late_replies);
  c.caller_gone = load_relaxed(s.caller_gone);
  c.redelivered = load_relaxed(s.redelivered);
  c.dead_lettered = load_relaxed(s.dead_lettered);
  c.dead_letters_dropped = load_relaxed(s.dead_letters_dropped);
  c.bad_messages = load_relaxed(s.bad_messages);
  c.replies_too_large = load_relaxed(s.replies_too_large);
  c.busy_ns = load_relaxed(s.busy_ns);
  for (std::size_t i = 0; i < c.latency.size(); ++i) c.latency[i] = load_relaxed(s.latency[i]);
  return c;
}

void add_counters(ServerCounters& sum, const ServerCounters& more) noexcept {
  sum.calls += more.calls;
  sum.casts += more.casts;
  sum.replies += more.replies;
  sum.expired_skipped += more.expired_skipped;
  sum.late_replies += more.late_replies;
  sum.caller_gone += more.caller_gone;
  sum.redelivered += more.redelivered;
  sum.dead_lettered += more.dead_lettered;
  sum.dead_letters_dropped += more.dead_letters_dropped;
  sum.bad_messages += more.bad_messages;
  sum.replies_too_large += more.replies_too_large;
  sum.busy_ns += more.busy_ns;
  for (std::size_t i = 0; i < sum.latency.size(); ++i) sum.latency[i] += more.latency[i];
}

std::vector<ServiceInfo> Registry::snapshot() const {
  // Read again while a join or leave moves counts (see EpochChange); give
  // up after a few tries rather than wait on a busy registry.
  constexpr int kAttempts = 8;
  std::vector<ServiceInfo> services;
  for (int attempt = 1;; ++attempt) {
    const std::uint64_t before = load_acquire(view_.registry().epoch);
    if ((before & 1) != 0 && attempt < kAttempts) {
      std::this_thread::yield();
      continue;
    }
    services = snapshot_once();
    if (load_acquire(view_.registry().epoch) == before || attempt >= kAttempts) return services;
  }
}

std::vector<ServiceInfo> Registry::snapshot_once() const {
  std::vector<ServiceInfo> services;
  for (std::uint32_t i = 0; i < layout::kMaxServices; ++i) {
    const ServiceEntry& service = view_.service(i);
    if (state_of(load_acquire(service.identity.state)) != ServiceState::live) continue;
    const auto& id = service.identity;
    ServiceInfo info;
    info.name = text_of(id.name);
    std::memcpy(info.options.schema.request_identifier.data(), id.request_identifier, 4);
    std::memcpy(info.options.schema.reply_identifier.data(), id.reply_identifier, 4);
    info.options.schema.hash = id.schema_hash;
    info.options.schema.request_type = text_of(id.request_type);
    info.options.schema.reply_type = text_of(id.reply_type);
    info.options.schema.path = text_of(id.schema_path);
    info.options.mailbox_capacity = id.mailbox_capacity;
    info.options.max_record = id.max_record;
    info.options.max_deliveries = id.max_deliveries;
    info.options.dead_letter_capacity = id.dead_letter_capacity;
    info.options.partitions = std::min(id.partitions, layout::kMaxPartitions);
    info.closed = load_acquire(id.closed) != 0;
    info.totals = read_counters(service.counters.retired);
    for (std::size_t k = 0; k < info.outcomes.size(); ++k) {
      info.outcomes[k] = load_relaxed(service.counters.outcomes[k]);
    }
    for (const auto& server : service.servers) {
      const std::uint32_t owner = load_acquire(server.owner);
      if (owner == 0) continue;
      ServerInfo row;
      row.process = owner;
      row.alive = table_.is_alive(owner);
      if (layout::ref_slot(owner) < table_.capacity()) {
        row.pid = static_cast<int>(load_relaxed(table_.slot(layout::ref_slot(owner)).pid));
      }
      row.leaving = load_relaxed(server.state) == static_cast<std::uint32_t>(ServerState::leaving);
      row.joined_unix_ns = server.joined_unix_ns;
      row.counters = read_counters(server.counters);
      add_counters(info.totals, row.counters);
      info.servers.push_back(row);
    }
    services.push_back(std::move(info));
  }
  return services;
}

}  // namespace detail
}  // namespace shmbus
