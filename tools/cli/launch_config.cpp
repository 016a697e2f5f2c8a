// launch_config.cpp — reads a launcher config with toml++ and checks every
// field before anything starts (format: launch_config.hpp).
//
// toml++ is built with exceptions; so is this file's reader: every check
// throws a ConfigError carrying the position, and load_launch_config() turns
// the first one into a Result. Nothing throws past it.
#include "launch_config.hpp"

#include <grp.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "launch_fields.hpp"
#include "launch_values.hpp"
#include "schema_files.hpp"

namespace shmbus::tools {

namespace {

const std::vector<std::string> kTopKeys = {"bus", "service"};
const std::vector<std::string> kBusKeys = {
    "name",          "mode",        "group",          "trusted",      "max_processes",
    "max_in_flight", "max_reply",   "state_capacity", "blob_classes", "mailbox_capacity",
    "max_record",    "drain_grace", "on_failure"};
const std::vector<std::string> kServiceKeys = {"name",
                                               "command",
                                               "servers",
                                               "restart",
                                               "max_restarts",
                                               "within",
                                               "shutdown_grace",
                                               "max_deliveries",
                                               "mailbox_capacity",
                                               "max_record",
                                               "dead_letter_capacity",
                                               "partitions",
                                               "schema",
                                               "request",
                                               "reply",
                                               "request_id",
                                               "reply_id",
                                               "env"};

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = kKiB * 1024;
constexpr std::uint64_t kGiB = kMiB * 1024;

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 48) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::uint32_t u32(std::uint64_t value) { return static_cast<std::uint32_t>(value); }

std::uint32_t parse_mode(Fields& bus, bool has_group) {
  const toml::node* node = bus.get("mode");
  if (node == nullptr) return has_group ? 0660 : 0600;
  std::uint64_t mode = 01000;
  if (const auto* text = node->as_string()) {
    const std::string& s = text->get();
    char* end = nullptr;
    const unsigned long parsed = std::strtoul(s.c_str(), &end, 8);
    if (!s.empty() && end != nullptr && *end == '\0') mode = parsed;
  } else if (const auto* number = node->as_integer(); number != nullptr && number->get() >= 0) {
    mode = static_cast<std::uint64_t>(number->get());
  }
  if (mode > 0777) bus.fail(node, "mode must be an octal string like \"0660\" (at most 0777)");
  return static_cast<std::uint32_t>(mode);
}

void parse_group(Fields& bus, LaunchConfig& config) {
  const auto name = bus.text("group");
  if (!name) return;
  std::vector<char> buffer(16384);
  group entry{};
  group* found = nullptr;
  (void)::getgrnam_r(name->c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (found == nullptr) {
    // A numeric gid: digits only (strtoul takes "-1" and wraps), below
    // (gid_t)-1, which chown reads as "leave the group as it is".
    gid_t gid = 0;
    const char* end = name->data() + name->size();
    const auto [rest, error] = std::from_chars(name->data(), end, gid);
    if (name->empty() || error != std::errc{} || rest != end || gid == static_cast<gid_t>(-1)) {
      bus.fail(bus.get("group"), "no group '" + *name + "' on this host");
    }
    config.group = gid;
  } else {
    config.group = found->gr_gid;
  }
  config.group_name = *name;
}

std::vector<BlobClass> parse_blob_classes(Fields& bus) {
  const toml::node* node = bus.get("blob_classes");
  if (node == nullptr) return default_blob_classes();
  const toml::array* array = node->as_array();
  if (array == nullptr || array->empty() || array->size() > 8) {
    bus.fail(node, "blob_classes must be an array of 1 … 8 { size = …, count = … } tables");
  }
  std::vector<BlobClass> classes;
  for (const toml::node& element : *array) {
    const toml::table* table = element.as_table();
    if (table == nullptr) bus.fail(&element, "each blob class must be { size = …, count = … }");
    Fields fields(bus.reader(), *table, bus.context() + " blob class", {"size", "count"});
    BlobClass c;
    c.block_size = fields.required_size("size", 4 * kKiB, kGiB);
    if (c.block_size % (4 * kKiB) != 0)
      fields.fail(fields.get("size"), "size must be a multiple of 4 KiB");
    c.count = u32(fields.required_integer("count", 1, 65536));
    if (!classes.empty() && c.block_size <= classes.back().block_size) {
      fields.fail(fields.get("size"), "blob classes must grow in size");
    }
    classes.push_back(c);
  }
  return classes;
}

OnFailure parse_on_failure(Fields& bus) {
  const auto text = bus.text("on_failure");
  if (!text || *text == "keep_others") return OnFailure::keep_others;
  if (*text == "shut_down") return OnFailure::shut_down;
  bus.fail(bus.get("on_failure"),
           "on_failure must be \"keep_others\" or \"shut_down\", not \"" + *text + "\"");
}

// The service defaults the [bus] table sets.
struct ServiceDefaults {
  std::uint32_t mailbox_capacity = 1024;
  std::uint32_t max_record = 4096;
};

ServiceDefaults parse_bus(const toml::table& root, const Reader& reader, LaunchConfig& config) {
  const toml::node* node = root.get("bus");
  if (node == nullptr) reader.fail(root.source(), "missing [bus] table (with name = \"…\")", false);
  const toml::table* table = node->as_table();
  if (table == nullptr) reader.fail(node->source(), "bus must be a table: [bus]");
  Fields bus(reader, *table, "[bus]", kBusKeys);
  config.bus = bus.required_text("name");
  if (!valid_name(config.bus)) {
    bus.fail(bus.get("name"),
             "name '" + config.bus + "' must be 1 … 48 characters of [A-Za-z0-9_-]");
  }
  parse_group(bus, config);
  config.create.mode = parse_mode(bus, config.group.has_value());
  config.create.trusted = bus.boolean("trusted").value_or(false);
  config.create.max_processes = u32(bus.integer("max_processes", 1, 1024).value_or(256));
  config.create.max_in_flight = u32(bus.integer("max_in_flight", 1, 4096).value_or(64));
  config.create.max_reply = u32(bus.size("max_reply", 0, kMiB).value_or(1024));
  config.create.state_capacity =
      bus.size("state_capacity", 64 * kKiB, 64 * kGiB).value_or(8 * kMiB);
  config.create.blob_classes = parse_blob_classes(bus);
  config.create.label = "shmbus launch";
  config.drain_grace = bus.seconds("drain_grace").value_or(std::chrono::milliseconds(5000));
  config.on_failure = parse_on_failure(bus);
  ServiceDefaults defaults;
  defaults.mailbox_capacity = u32(bus.power_of_two("mailbox_capacity", 2, 1u << 24).value_or(1024));
  defaults.max_record = u32(bus.size("max_record", 1, 64 * kMiB).value_or(4096));
  return defaults;
}

Restart parse_restart(Fields& service) {
  const auto text = service.text("restart");
  if (!text || *text == "permanent") return Restart::permanent;
  if (*text == "transient") return Restart::transient;
  if (*text == "temporary") return Restart::temporary;
  service.fail(service.get("restart"),
               "restart must be \"permanent\", \"transient\" or "
               "\"temporary\", not \"" +
                   *text + "\"");
}

std::string expand(Fields& fields, const toml::node* at, const std::string& text,
                   const LaunchConfig& config) {
  std::string unknown;
  auto expanded = expand_vars(text, config.dir, unknown);
  if (!expanded)
    fields.fail(at, "unknown variable ${" + unknown + "} (not in the launcher's environment)");
  return *expanded;
}

std::vector<std::string> parse_command(Fields& service, const LaunchConfig& config) {
  const toml::node* node = service.get("command");
  if (node == nullptr) service.missing("command");
  const toml::array* array = node->as_array();
  if (array == nullptr || array->empty()) {
    service.fail(node, "command must be a non-empty array of strings (the argv)");
  }
  std::vector<std::string> argv;
  for (const toml::node& element : *array) {
    const auto* text = element.as_string();
    if (text == nullptr) service.fail(&element, "command must be an array of strings");
    argv.push_back(expand(service, &element, text->get(), config));
  }
  auto program = find_program(argv.front(), config.dir);
  if (!program) {
    service.fail(&*array->begin(), "program '" + argv.front() + "' not found" +
                                       (argv.front().find('/') == std::string::npos
                                            ? " (looked beside the shmbus binary, then in PATH)"
                                            : " (or not executable)"));
  }
  argv.front() = *program;
  return argv;
}

std::vector<std::pair<std::string, std::string>> parse_env(Fields& service,
                                                           const LaunchConfig& config) {
  std::vector<std::pair<std::string, std::string>> env;
  const toml::node* node = service.get("env");
  if (node == nullptr) return env;
  const toml::table* table = node->as_table();
  if (table == nullptr) service.fail(node, "env must be a table: env = { KEY = \"value\" }");
  for (auto&& [key, value] : *table) {
    const auto* text = value.as_string();
    if (text == nullptr)
      service.fail(&value, "env." + std::string(key.str()) + " must be a string");
    env.emplace_back(std::string(key.str()), expand(service, &value, text->get(), config));
  }
  return env;
}

// The identifier `key` names, else the schema file's (`from_file`, '\0's
// when it has none: then the key is required). Zero-terminated.
std::array<char, 5> identifier(Fields& service, const char* key, std::array<char, 4> from_file) {
  std::array<char, 5> id{};
  const auto text = service.text(key);
  if (!text) {
    if (from_file[0] == '\0') service.missing(key);  // no schema, or one without file_identifier
    std::copy(from_file.begin(), from_file.end(), id.begin());
    return id;
  }
  if (text->size() != 4) {
    service.fail(service.get(key),
                 std::string(key) + " must be 4 characters (a FlatBuffers file_identifier)");
  }
  if (from_file[0] != '\0' && !std::equal(text->begin(), text->end(), from_file.begin())) {
    service.fail(service.get(key), std::string(key) + " '" + *text +
                                       "' differs from the schema's file_identifier '" +
                                       std::string(from_file.begin(), from_file.end()) +
                                       "' (workers built from the schema would not match)");
  }
  std::copy(text->begin(), text->end(), id.begin());
  return id;
}

// Finds and parses the schema file; checks both types are tables there.
LoadedSchema load_service_schema(Fields& service, const std::string& path,
                                 const ServiceSchema& schema, const LaunchConfig& config) {
  const auto location = locate_schema_file(path, config.dir);
  if (!location) {
    service.fail(service.get("schema"),
                 "schema file '" + path + "' not found (searched $SHMBUS_SCHEMA_PATH, " +
                     "the installed and source schema directories, and the config's directory)");
  }
  auto loaded = load_schema(location->file, schema.request_type, schema.reply_type);
  if (!loaded) service.fail(service.get("schema"), loaded.error().detail);
  return std::move(*loaded);
}

ServiceSchema parse_schema(Fields& service, const LaunchConfig& config) {
  ServiceSchema schema;
  const auto path = service.text("schema");
  if (!path && service.get("request") == nullptr && service.get("reply") == nullptr) {
    for (const char* key : {"request_id", "reply_id"}) {
      if (service.get(key) != nullptr)
        service.fail(service.get(key),
                     std::string(key) + " needs request and reply (the type names)");
    }
    return schema;  // untyped
  }
  schema.request_type = service.required_text("request");
  schema.reply_type = service.required_text("reply");
  std::array<char, 4> request_from_file{}, reply_from_file{};
  if (path) {
    const LoadedSchema loaded = load_service_schema(service, *path, schema, config);
    request_from_file = loaded.request_identifier;
    reply_from_file = loaded.reply_identifier;
    // Tools look a relative path up on their search path: keep it relative
    // when that is where it was found.
    const auto location = locate_schema_file(*path, config.dir);
    schema.path = location->on_search_path ? *path : location->file;
  }
  const auto request_id = identifier(service, "request_id", request_from_file);
  const auto reply_id = identifier(service, "reply_id", reply_from_file);
  std::copy_n(request_id.begin(), 4, schema.request_identifier.begin());
  std::copy_n(reply_id.begin(), 4, schema.reply_identifier.begin());
  schema.hash = detail::schema_hash(schema.request_type, request_id.data(), schema.reply_type,
                                    reply_id.data());
  return schema;
}

ServiceConfig parse_service(Fields& service, const LaunchConfig& config,
                            const ServiceDefaults& defaults) {
  ServiceConfig out;
  out.line = service.line();
  out.name = service.required_text("name");
  if (!valid_name(out.name)) {
    service.fail(service.get("name"),
                 "name '" + out.name + "' must be 1 … 48 characters of [A-Za-z0-9_-]");
  }
  out.command = parse_command(service, config);
  out.servers = u32(service.integer("servers", 1, 64).value_or(1));
  out.restart = parse_restart(service);
  out.max_restarts = u32(service.integer("max_restarts", 0, 1000000).value_or(3));
  out.within = service.seconds("within").value_or(std::chrono::milliseconds(5000));
  out.shutdown_grace = service.seconds("shutdown_grace").value_or(std::chrono::milliseconds(2000));
  out.env = parse_env(service, config);
  ServiceOptions& o = out.options;
  o.max_deliveries = u32(service.integer("max_deliveries", 1, 250).value_or(3));
  o.mailbox_capacity = u32(
      service.power_of_two("mailbox_capacity", 2, 1u << 24).value_or(defaults.mailbox_capacity));
  o.max_record = u32(service.size("max_record", 1, 64 * kMiB).value_or(defaults.max_record));
  o.dead_letter_capacity =
      u32(service.power_of_two("dead_letter_capacity", 2, 1u << 24).value_or(64));
  o.partitions = u32(service.integer("partitions", 0, 64).value_or(0));
  if (o.partitions == 1 || (o.partitions & (o.partitions - 1)) != 0) {
    service.fail(
        service.get("partitions"),
        "partitions must be 0 or a power of two in 2 … 64, not " + std::to_string(o.partitions));
  }
  o.schema = parse_schema(service, config);
  return out;
}

void parse_services(const toml::table& root, const Reader& reader, LaunchConfig& config,
                    const ServiceDefaults& defaults) {
  const toml::node* node = root.get("service");
  if (node == nullptr) reader.fail(root.source(), "no [[service]] table: nothing to launch", false);
  const toml::array* array = node->as_array();
  if (array == nullptr || !array->is_array_of_tables()) {
    reader.fail(node->source(), "service must be an array of tables: [[service]]");
  }
  std::map<std::string, int> seen;
  for (const toml::node& element : *array) {
    const toml::table& table = *element.as_table();
    // Named in every message, the unknown keys' included.
    const auto* name = table.get_as<std::string>("name");
    Fields fields(reader, table, name ? "[[service]] '" + name->get() + "'" : "[[service]]",
                  kServiceKeys);
    const int line = fields.line();
    if (name != nullptr) {
      if (auto [it, fresh] = seen.emplace(name->get(), line); !fresh) {
        fields.fail(name,
                    "duplicate service name (first at line " + std::to_string(it->second) + ")");
      }
    }
    config.services.push_back(parse_service(fields, config, defaults));
  }
}

}  // namespace

Result<LaunchConfig> load_launch_config(const std::string& path) {
  LaunchConfig config;
  std::error_code ec;
  const auto absolute = std::filesystem::absolute(path, ec).lexically_normal();
  config.path = absolute.string();
  config.dir = absolute.parent_path().string();
  if (!std::filesystem::is_regular_file(absolute, ec)) {
    return fail(Errc::system_error, path + ": cannot read the config file (no such file)");
  }
  const Reader reader(path);
  try {
    toml::table root;
    try {
      root = toml::parse_file(config.path);
    } catch (const toml::parse_error& e) {
      reader.fail(e.source(), "TOML syntax error: " + std::string(e.description()));
    }
    Fields top(reader, root, "", kTopKeys);
    const ServiceDefaults defaults = parse_bus(root, reader, config);
    parse_services(root, reader, config, defaults);
  } catch (const ConfigError& e) {
    return fail(Errc::bad_options, e.what);
  }
  return config;
}

}  // namespace shmbus::tools
