// Internal to the config parser: a worker command's program, found as the fork server
// will run it.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace ringmaster::cli::detail {

/// Resolves `program` as the fork server will run it, and checks that it can be: a path
/// with a '/' is taken relative to `base_dir` (the config's directory), a bare name is
/// looked for in `path_env`'s directories. An absolute path, or nullopt with `why` set
/// ("PATH: No such file or directory", "not found in PATH").
[[nodiscard]] std::optional<std::filesystem::path> resolve_program(const std::string& program,
                                                                   const std::filesystem::path& base_dir,
                                                                   std::string_view path_env, std::string& why);

}  // namespace ringmaster::cli::detail
