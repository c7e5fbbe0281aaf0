// The option table (supervisor/detail/option_table.hpp): that it agrees with itself,
// with the options' defaults and with the library's limits, which add_pool and the config
// parser both read from it.
#include <gtest/gtest.h>

#include <ringmaster/supervisor/detail/option_table.hpp>
#include <set>
#include <string>
#include <string_view>

namespace {

using ringmaster::detail::k_pool_options;
using ringmaster::detail::k_supervisor_options;
using ringmaster::detail::option_kind;

template <class Table, class Options>
void expect_consistent(const Table& table, const Options& defaults) {
  std::set<std::string_view> names;
  for (const auto& spec : table) {
    SCOPED_TRACE(std::string(spec.name));
    EXPECT_TRUE(names.insert(spec.name).second) << "named twice";
    EXPECT_FALSE(spec.doc.empty());
    EXPECT_LE(spec.min, spec.max);
    EXPECT_LE(spec.library_min, spec.min) << "a config may not accept what the library refuses";
    EXPECT_GE(spec.library_max, spec.max) << "a config may not accept what the library refuses";
    EXPECT_EQ(spec.kind == option_kind::choice, !spec.choices.empty());
    EXPECT_EQ(spec.get == nullptr, spec.set == nullptr) << "read and written, or neither";
    if (!spec.get) continue;
    const std::uint64_t d = spec.get(defaults);
    EXPECT_TRUE((d >= spec.min && d <= spec.max) || (d == 0 && !spec.zero_means.empty()))
        << "the default " << d << " is outside " << spec.min << ".." << spec.max;
    if (spec.kind == option_kind::choice) {
      EXPECT_LT(d, spec.choices.size());
    }
    Options o = defaults;
    spec.set(o, spec.max == ringmaster::detail::k_unbounded ? spec.min + 1 : spec.max);
    EXPECT_EQ(spec.get(o), spec.max == ringmaster::detail::k_unbounded ? spec.min + 1 : spec.max)
        << "set and get reach different members";
  }
}

TEST(OptionTable, PoolOptionsAreConsistentWithTheirDefaults) { expect_consistent(k_pool_options, ringmaster::pool_options{}); }

TEST(OptionTable, SupervisorOptionsAreConsistentWithTheirDefaults) {
  expect_consistent(k_supervisor_options, ringmaster::supervisor_options{});
}

TEST(OptionTable, DefaultsWrittenAsTextAreTheStructsDefaults) {
  const auto* name = ringmaster::detail::find_option(k_supervisor_options, "name");
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(name->default_text, ringmaster::supervisor_options{}.name);
  for (const auto& spec : k_pool_options) EXPECT_EQ(spec.get == nullptr, !spec.default_text.empty()) << spec.name;
}

TEST(OptionTable, LimitsAreTheLibrarysConstants) {
  const auto* workers = ringmaster::detail::find_option(k_pool_options, "workers");
  ASSERT_NE(workers, nullptr);
  EXPECT_EQ(workers->library_max, ringmaster::k_max_workers);
  const auto* max_message = ringmaster::detail::find_option(k_pool_options, "max_message");
  ASSERT_NE(max_message, nullptr);
  EXPECT_EQ(max_message->library_max, ringmaster::k_max_message_limit);
  EXPECT_EQ(ringmaster::detail::find_option(k_pool_options, "no_such_option"), nullptr);
}

TEST(OptionTable, PoolNamesAreOneTo128CharactersOfTheNameSet) {
  static_assert(ringmaster::valid_pool_name("compute"));
  EXPECT_TRUE(ringmaster::valid_pool_name("a.b-c_D9"));
  EXPECT_TRUE(ringmaster::valid_pool_name(std::string(ringmaster::k_max_pool_name, 'x')));
  EXPECT_FALSE(ringmaster::valid_pool_name(std::string(ringmaster::k_max_pool_name + 1, 'x')));
  EXPECT_FALSE(ringmaster::valid_pool_name(""));
  for (const char* bad : {"a b", "a/b", "ä", "a:b", "a\nb"}) EXPECT_FALSE(ringmaster::valid_pool_name(bad)) << bad;
}

}  // namespace
