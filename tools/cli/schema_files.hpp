// schema_files.hpp — find a service's .fbs and parse it with FlatBuffers' own
// Parser, for the tools that turn JSON into a service's messages and back
// (`shmbus call`, `shmbus launch`).
//
// A service registers the path of its request's .fbs (ServiceSchema::path),
// relative to the installed share/shmbus/schemas; that file includes the
// reply's, so the one path gives both types:
//
//   auto schema = load_schema("examples/mailer.fbs", "shmbus.examples.mailer.SendEmail",
//                             "shmbus.examples.mailer.EmailSent");
//   if (!schema) return fail_with(schema.error());   // bad_options, naming what is wrong
//   schema->parser->SetRootType("shmbus.examples.mailer.SendEmail");
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include <flatbuffers/idl.h>

#include "shmbus/error.hpp"

namespace shmbus::tools {

// Directories a relative schema path is looked up in, in order: each entry of
// $SHMBUS_SCHEMA_PATH (colon-separated), SHMBUS_INSTALLED_SCHEMA_DIR, SHMBUS_SOURCE_SCHEMA_DIR.
std::vector<std::filesystem::path> schema_search_path();

struct LoadedSchema {
  std::filesystem::path file;                   // the .fbs found
  std::unique_ptr<flatbuffers::Parser> parser;  // parsed (includes resolved from its directory and the search path)
  std::array<char, 4> request_identifier{};     // file_identifier of the file defining each type ('\0's if none)
  std::array<char, 4> reply_identifier{};
};

// Finds and parses `path` (absolute, or relative to the search path) and checks that both fully
// qualified types are tables defined in it or its includes. Fails with bad_options, the detail
// naming the path searched / the parser's error "file:line: col: error" / the missing type.
// The parser's options: strict_json (keys quoted in GenerateText), default scalars printed.
Result<LoadedSchema> load_schema(std::string_view path, std::string_view request_type,
                                 std::string_view reply_type);

}  // namespace shmbus::tools
