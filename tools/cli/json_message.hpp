// json_message.hpp — a service's messages as JSON, through FlatBuffers' own
// Parser (the schema a service registered, loaded by schema_files.hpp).
//
//   auto schema = load_schema(info.options.schema.path, request_type, reply_type).value();
//   auto request = json_to_message(*schema.parser, request_type, "ECHO", R"({"text": "hi"})");
//   if (!request) print(request.error().detail);   // "1: 10: error: unknown field: txt"
//   ... send *request, get a reply ...
//   auto json = message_to_json(*schema.parser, reply_type, "ECHR", reply.payload());
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/idl.h>

#include "shmbus/error.hpp"

namespace shmbus::tools {

// json_to_message()
//
// Parses `json` as a table of the fully qualified `type` and returns the
// FlatBuffer, finished with `identifier` (zeros: none). Fields the type does
// not have are errors, as are values of the wrong type. `source` names the
// input in errors (a file name; empty for a command-line argument). Fails
// with bad_message, the detail the parser's "[source:]line: col: error: …".
[[nodiscard]] Result<std::vector<std::byte>> json_to_message(flatbuffers::Parser& parser,
                                                             std::string_view type,
                                                             std::array<char, 4> identifier,
                                                             std::string_view json,
                                                             std::string_view source = {});

// message_to_json()
//
// Verifies `bytes` (another process's: nothing is read before the check) as
// a table of the fully qualified `type` with `identifier` (zeros: any), and
// prints it as strict JSON (keys quoted, every scalar field present), ending
// in a newline. Fails with bad_message, the detail saying which check failed.
[[nodiscard]] Result<std::string> message_to_json(flatbuffers::Parser& parser,
                                                  std::string_view type,
                                                  std::array<char, 4> identifier,
                                                  std::span<const std::byte> bytes);

}  // namespace shmbus::tools
