// json_string.hpp — one JSON string literal from any bytes (ps --json,
// state ls --json).
#pragma once

#include <string>
#include <string_view>

namespace shmbus::tools {

// `text` as a JSON string literal, quotes included: '"' and '\' escaped,
// control characters as \n, \t … or \u00XX, valid UTF-8 passed through, and
// every byte that is not part of valid UTF-8 (a label cut inside a character,
// a key of raw bytes) as \ufffd — the output is always valid UTF-8 JSON.
[[nodiscard]] std::string json_string(std::string_view text);

}  // namespace shmbus::tools
