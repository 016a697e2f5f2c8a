// schema_files.cpp — find a service's .fbs on the search path and parse it.
#include "schema_files.hpp"

#include <cstdlib>
#include <string>
#include <system_error>

#include <flatbuffers/util.h>

namespace shmbus::tools {

namespace fs = std::filesystem;

std::vector<fs::path> schema_search_path() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("SHMBUS_SCHEMA_PATH"); env != nullptr) {
    std::string_view rest = env;
    while (!rest.empty()) {
      const std::size_t colon = rest.find(':');
      const std::string_view entry = rest.substr(0, colon);
      if (!entry.empty()) dirs.emplace_back(entry);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  dirs.emplace_back(SHMBUS_INSTALLED_SCHEMA_DIR);
  dirs.emplace_back(SHMBUS_SOURCE_SCHEMA_DIR);
  return dirs;
}

namespace {

Result<fs::path> find_schema_file(std::string_view path, const std::vector<fs::path>& dirs) {
  std::error_code ec;
  const fs::path wanted(path);
  if (wanted.is_absolute()) {
    if (fs::is_regular_file(wanted, ec)) return wanted;
    return fail(Errc::bad_options, "schema file " + wanted.string() + " not found");
  }
  std::string searched;
  for (const fs::path& dir : dirs) {
    const fs::path candidate = dir / wanted;
    if (fs::is_regular_file(candidate, ec)) return candidate;
    searched += (searched.empty() ? "" : ", ") + dir.string();
  }
  return fail(Errc::bad_options, "schema file " + std::string(path) + " not found in " + searched +
                                     " (set SHMBUS_SCHEMA_PATH to add directories)");
}

// Parses `file` into `parser`, includes looked up in its directory, then `dirs`.
Result<void> parse_file(flatbuffers::Parser& parser, const fs::path& file,
                        const std::vector<fs::path>& dirs) {
  std::string text;
  if (!flatbuffers::LoadFile(file.c_str(), false, &text)) {
    return fail(Errc::bad_options, "cannot read schema file " + file.string());
  }
  // Include paths must end in a separator: the parser joins them with the name.
  std::vector<std::string> include_dirs{file.parent_path().string() + "/"};
  for (const fs::path& dir : dirs) include_dirs.push_back(dir.string() + "/");
  std::vector<const char*> include_ptrs;
  for (const std::string& dir : include_dirs) include_ptrs.push_back(dir.c_str());
  include_ptrs.push_back(nullptr);
  if (!parser.Parse(text.c_str(), include_ptrs.data(), file.c_str())) {
    std::string error = parser.error_;
    while (!error.empty() && error.back() == '\n') error.pop_back();
    return fail(Errc::bad_options, "schema " + file.string() + " does not parse: " + error);
  }
  return {};
}

flatbuffers::IDLOptions tool_options() {
  flatbuffers::IDLOptions options;
  options.strict_json = true;                     // GenerateText quotes keys: valid JSON
  options.output_default_scalars_in_json = true;  // every scalar printed, also when 0
  return options;
}

// The file_identifier of the file that defines `def`: the parser keeps only
// the top file's, so the defining file (an include) is parsed on its own.
Result<std::array<char, 4>> identifier_of(const flatbuffers::Parser& parser,
                                          const flatbuffers::StructDef& def,
                                          const std::vector<fs::path>& dirs) {
  std::string identifier = parser.file_identifier_;
  if (!def.file.empty()) {
    flatbuffers::Parser alone(tool_options());
    if (auto parsed = parse_file(alone, fs::path(def.file), dirs); !parsed) {
      return tl::unexpected(parsed.error());
    }
    identifier = alone.file_identifier_;
  }
  std::array<char, 4> out{};
  for (std::size_t i = 0; i < out.size() && i < identifier.size(); ++i) out[i] = identifier[i];
  return out;
}

Result<const flatbuffers::StructDef*> table_named(const flatbuffers::Parser& parser,
                                                  const fs::path& file, std::string_view name) {
  const flatbuffers::StructDef* def = parser.LookupStruct(std::string(name));
  if (def == nullptr) {
    return fail(Errc::bad_options,
                "schema " + file.string() + " (and its includes) defines no type " + std::string(name));
  }
  if (def->fixed) {
    return fail(Errc::bad_options, std::string(name) + " in " + file.string() +
                                       " is a struct; a message's root must be a table");
  }
  return def;
}

}  // namespace

Result<LoadedSchema> load_schema(std::string_view path, std::string_view request_type,
                                 std::string_view reply_type) {
  const std::vector<fs::path> dirs = schema_search_path();
  auto file = find_schema_file(path, dirs);
  if (!file) return tl::unexpected(file.error());
  LoadedSchema schema;
  schema.file = *file;
  schema.parser = std::make_unique<flatbuffers::Parser>(tool_options());
  if (auto parsed = parse_file(*schema.parser, schema.file, dirs); !parsed) {
    return tl::unexpected(parsed.error());
  }
  auto request = table_named(*schema.parser, schema.file, request_type);
  if (!request) return tl::unexpected(request.error());
  auto reply = table_named(*schema.parser, schema.file, reply_type);
  if (!reply) return tl::unexpected(reply.error());
  auto request_identifier = identifier_of(*schema.parser, **request, dirs);
  if (!request_identifier) return tl::unexpected(request_identifier.error());
  auto reply_identifier = identifier_of(*schema.parser, **reply, dirs);
  if (!reply_identifier) return tl::unexpected(reply_identifier.error());
  schema.request_identifier = *request_identifier;
  schema.reply_identifier = *reply_identifier;
  return schema;
}

}  // namespace shmbus::tools
