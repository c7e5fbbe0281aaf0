// `ringmaster serve --socket PATH` creates the socket's directory when it is missing, with
// every missing parent, each closed to others (0700), as the README's "Access" says.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "cli_harness.hpp"
#include "waits.hpp"

namespace ringmaster::test {
namespace {

using namespace std::chrono_literals;

unsigned mode_of(const fs::path& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<unsigned>(st.st_mode & 07777) : 0u;
}

TEST(CliServeSocketDir, MissingParentsAreCreatedClosedToOthers) {
  temp_dir dir;
  dir.write("config.toml", "[pools.compute]\nworkers = 1\n");
  const std::string socket = "state/ringmaster/run/rm.sock";  // three directories missing
  cli_process server({"serve", "config.toml", "--socket", socket}, dir, {.timeout = 60s});
  ASSERT_TRUE(eventually([&] { return fs::exists(dir / socket); }, 20s)) << server.err_so_far();
  for (const char* d : {"state", "state/ringmaster", "state/ringmaster/run"})
    EXPECT_EQ(mode_of(dir / d), 0700u) << d;

  const auto drain = run_cli({"drain", "--socket", socket}, dir);
  EXPECT_EQ(drain.code, 0) << drain.describe();
  const auto r = server.wait();
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_TRUE(r.left_behind.empty()) << "processes left behind";
}

}  // namespace
}  // namespace ringmaster::test
