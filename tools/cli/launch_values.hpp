// launch_values.hpp — the small value parsers and look-ups of the launcher's
// config: sizes, ${VAR} expansion, programs, schema files, "did you mean".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmbus::tools {

// "4096", "4KiB", "64MiB", "1GiB" → bytes; nullopt for anything else
// (also on overflow).
[[nodiscard]] std::optional<std::uint64_t> parse_size(std::string_view text);

// Replaces every ${NAME} with the launcher's environment variable NAME
// (CONFIG_DIR: `config_dir`). On an unknown variable (or a "${" without its
// "}") returns nullopt and sets `unknown` to its name.
[[nodiscard]] std::optional<std::string> expand_vars(std::string_view text,
                                                     const std::string& config_dir,
                                                     std::string& unknown);

// The directory of the running executable (/proc/self/exe), or "".
[[nodiscard]] std::string self_exe_dir();

// Where the launcher finds `program`: with a '/', itself (relative to
// `config_dir` when relative); without, the shmbus binary's directory, then
// PATH. nullopt when no executable file is there.
[[nodiscard]] std::optional<std::string> find_program(const std::string& program,
                                                      const std::string& config_dir);

// The schema file `path`: itself when absolute, else the first found on the
// schema search path (schema_files.hpp), then relative to `config_dir`; the
// flag says whether the search path found it. nullopt when nowhere.
struct SchemaLocation {
  std::string file;  // absolute or as found on the search path
  bool on_search_path = false;
};
[[nodiscard]] std::optional<SchemaLocation> locate_schema_file(const std::string& path,
                                                               const std::string& config_dir);

// The candidate closest to `word` (edit distance ≤ 2, or a prefix), or "".
[[nodiscard]] std::string nearest(std::string_view word,
                                  const std::vector<std::string>& candidates);

}  // namespace shmbus::tools
