#include <gtest/gtest.h>

#include <ringmaster/cli/units.hpp>

namespace ringmaster::cli {
namespace {

using std::chrono::milliseconds;

TEST(CliDurations, ParseEveryUnit) {
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("10s"), milliseconds(10'000));
  EXPECT_EQ(parse_duration("1.5s"), milliseconds(1500));
  EXPECT_EQ(parse_duration("2m"), milliseconds(120'000));
  EXPECT_EQ(parse_duration("2min"), milliseconds(120'000));
  EXPECT_EQ(parse_duration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("0.4ms"), milliseconds(0));  // rounded to the nearest millisecond
}

TEST(CliDurations, RefuseWhatAPersonWouldNotMean) {
  for (const char* bad : {"", "10", "s", "10 s", " 10s", "10s ", "-1s", "+1s", "1.s", ".5s", "1e3ms", "10S", "10sec",
                          "1..2s", "99999999999999999999h", "400000d", "1000000000h"})
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
}

TEST(CliDurations, FormatRoundTrips) {
  for (const auto ms : {0, 1, 250, 1000, 1500, 60'000, 90'000, 3'600'000})
    EXPECT_EQ(parse_duration(format_duration(milliseconds(ms))), milliseconds(ms)) << ms;
  EXPECT_EQ(format_duration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(format_duration(milliseconds(10'000)), "10s");
  EXPECT_EQ(format_duration(milliseconds(120'000)), "2m");
}

TEST(CliSizes, ParseBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_size("512B"), 512u);
  EXPECT_EQ(parse_size("64KiB"), 65536u);
  EXPECT_EQ(parse_size("1MiB"), 1u << 20);
  EXPECT_EQ(parse_size("1.5GiB"), 3ull << 29);
  EXPECT_EQ(parse_size("2TiB"), 2ull << 40);
  EXPECT_EQ(parse_size("10KB"), 10'000u);
  EXPECT_EQ(parse_size("5MB"), 5'000'000u);
  EXPECT_EQ(parse_size("1GB"), 1'000'000'000u);
}

TEST(CliSizes, RefuseBareNumbersAndUnknownUnits) {
  for (const char* bad : {"", "512", "1 MiB", "1mib", "1MiBs", "1K", "-1KiB", "1.MiB", "5000000TiB", "KiB"})
    EXPECT_FALSE(parse_size(bad).has_value()) << bad;
}

TEST(CliSizes, FormatRoundTrips) {
  EXPECT_EQ(format_size(512), "512B");
  EXPECT_EQ(format_size(65536), "64KiB");
  EXPECT_EQ(format_size(1u << 30), "1GiB");
  EXPECT_EQ(format_size(1000), "1000B");
  for (const std::uint64_t b : {1ull, 1024ull, 1536ull, 1ull << 20, 3ull << 29})
    EXPECT_EQ(parse_size(format_size(b)), b) << b;
}

}  // namespace
}  // namespace ringmaster::cli
