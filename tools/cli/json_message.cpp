// json_message.cpp — JSON ⇄ FlatBuffer with FlatBuffers' Parser; replies
// verified with the reflection verifier built from the same schema.
#include "json_message.hpp"

#include <cstdint>
#include <cstring>

#include <flatbuffers/reflection.h>

#include "shmbus/message.hpp"

namespace shmbus::tools {

namespace {

std::string identifier_text(std::array<char, 4> identifier) {
  return {identifier.data(), strnlen(identifier.data(), identifier.size())};
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

Result<std::vector<std::byte>> json_to_message(flatbuffers::Parser& parser, std::string_view type,
                                               std::array<char, 4> identifier,
                                               std::string_view json, std::string_view source) {
  const std::string type_name(type);
  if (!parser.SetRootType(type_name.c_str())) {
    return fail(Errc::bad_options, "the schema defines no type " + type_name);
  }
  // The parser finishes the buffer with the top file's identifier; the
  // request type may live in an included file with its own.
  parser.file_identifier_ = identifier_text(identifier);
  const std::string text(json);  // the parser wants a NUL-terminated string
  const std::string source_name(source);
  if (!parser.ParseJson(text.c_str(), source_name.empty() ? nullptr : source_name.c_str())) {
    std::string error = trimmed(parser.error_);
    // FlatBuffers' words for a string given where the schema wants a number.
    if (error.ends_with("enum values need to be qualified by an enum type")) {
      error += " (a string where a number is expected?)";
    }
    return fail(Errc::bad_message, error);
  }
  const auto* data = reinterpret_cast<const std::byte*>(parser.builder_.GetBufferPointer());
  return std::vector<std::byte>(data, data + parser.builder_.GetSize());
}

Result<std::string> message_to_json(flatbuffers::Parser& parser, std::string_view type,
                                    std::array<char, 4> identifier,
                                    std::span<const std::byte> bytes) {
  const std::string type_name(type);
  if (!parser.SetRootType(type_name.c_str())) {
    return fail(Errc::bad_options, "the schema defines no type " + type_name);
  }
  // The reflection schema of the parsed .fbs: the verifier for a type known
  // only at run time. Serialize() builds it in the parser's builder.
  parser.Serialize();
  const std::vector<std::uint8_t> bfbs(parser.builder_.GetBufferPointer(),
                                       parser.builder_.GetBufferPointer() + parser.builder_.GetSize());
  const reflection::Schema* schema = reflection::GetSchema(bfbs.data());
  const reflection::Object* object =
      schema->objects() != nullptr ? schema->objects()->LookupByKey(type_name.c_str()) : nullptr;
  if (object == nullptr) return fail(Errc::bad_options, "the schema defines no type " + type_name);

  MessageBuffer scratch;  // aligned private copy: the sender cannot change it after the check
  const std::span<const std::byte> copy = scratch.assign(bytes);
  const auto* data = reinterpret_cast<const std::uint8_t*>(copy.data());
  const std::string wanted = identifier_text(identifier);
  if (copy.size() < sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength &&
      !wanted.empty()) {
    return fail(Errc::bad_message, std::to_string(bytes.size()) + " bytes are too short for a " +
                                       type_name + " with identifier \"" + wanted + "\"");
  }
  if (!wanted.empty() && !flatbuffers::BufferHasIdentifier(data, wanted.c_str())) {
    return fail(Errc::bad_message, "the message is not a " + type_name + ": its identifier is \"" +
                                       std::string(flatbuffers::GetBufferIdentifier(data), 4) +
                                       "\", not \"" + wanted + "\"");
  }
  if (copy.size() < sizeof(flatbuffers::uoffset_t) ||
      !flatbuffers::Verify(*schema, *object, data, copy.size())) {
    return fail(Errc::bad_message, "the " + std::to_string(bytes.size()) +
                                       " bytes do not verify as a " + type_name);
  }
  std::string json;
  if (!flatbuffers::GenerateText(parser, data, &json)) {
    return fail(Errc::bad_message, "the " + type_name + " cannot be printed as JSON "
                                   "(a string that is not UTF-8)");
  }
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

}  // namespace shmbus::tools
