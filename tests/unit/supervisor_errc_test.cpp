// ringmaster::errc and its category: names, messages, and which portable conditions
// each value is equivalent to (errc.hpp).
#include <gtest/gtest.h>

#include <ringmaster/ipc/errc.hpp>
#include <ringmaster/supervisor/errc.hpp>
#include <set>
#include <string>
#include <system_error>

namespace {

using ringmaster::errc;

constexpr errc k_every_errc[] = {errc::invalid_option,  errc::bad_pool_name,        errc::duplicate_pool,
                                 errc::not_enough_memory, errc::too_many_descriptors, errc::already_started,
                                 errc::stopping,          errc::pool_removed,         errc::pool_gave_up};

TEST(SupervisorErrc, CategoryIsNamedRingmasterAndDistinctFromTheIpcOne) {
  EXPECT_STREQ(ringmaster::supervisor_category().name(), "ringmaster");
  EXPECT_NE(&ringmaster::supervisor_category(), &ringmaster::ipc::ipc_category());
  const std::error_code supervisor_code = errc::invalid_option;
  const std::error_code ipc_code = ringmaster::ipc::errc::empty;
  EXPECT_EQ(supervisor_code.value(), ipc_code.value());
  EXPECT_NE(supervisor_code, ipc_code) << "same value, different categories";
}

TEST(SupervisorErrc, EveryValueHasItsOwnMessage) {
  std::set<std::string> messages;
  for (const errc e : k_every_errc) {
    const std::error_code ec = e;  // is_error_code_enum: implicit
    EXPECT_EQ(&ec.category(), &ringmaster::supervisor_category());
    EXPECT_TRUE(ec) << "no value is 0, which means success";
    EXPECT_FALSE(ec.message().empty());
    EXPECT_EQ(ec.message().find("unknown"), std::string::npos) << ec.message();
    messages.insert(ec.message());
  }
  EXPECT_EQ(messages.size(), std::size(k_every_errc));
  EXPECT_EQ(std::error_code(999, ringmaster::supervisor_category()).message(), "unknown ringmaster error 999");
}

struct equivalence {
  errc value;
  std::errc condition;
  bool equivalent;
};

class SupervisorErrcEquivalence : public testing::TestWithParam<equivalence> {};

TEST_P(SupervisorErrcEquivalence, ComparesWithThePortableConditionAsDocumented) {
  const auto& [value, condition, equivalent] = GetParam();
  const std::error_code ec = value;
  EXPECT_EQ(ec == condition, equivalent) << ec.message() << " vs " << std::make_error_condition(condition).message();
}

INSTANTIATE_TEST_SUITE_P(
    Table, SupervisorErrcEquivalence,
    testing::Values(equivalence{errc::invalid_option, std::errc::invalid_argument, true},
                    equivalence{errc::bad_pool_name, std::errc::invalid_argument, true},
                    equivalence{errc::duplicate_pool, std::errc::invalid_argument, false},
                    equivalence{errc::not_enough_memory, std::errc::not_enough_memory, true},
                    equivalence{errc::not_enough_memory, std::errc::invalid_argument, false},
                    equivalence{errc::too_many_descriptors, std::errc::too_many_files_open, true},
                    equivalence{errc::already_started, std::errc::invalid_argument, false},
                    equivalence{errc::stopping, std::errc::not_enough_memory, false}));

TEST(SupervisorErrc, ValueComparesEqualToItsOwnCodeAndConditionOnly) {
  const std::error_code ec = errc::pool_removed;
  EXPECT_EQ(ec, errc::pool_removed);
  EXPECT_NE(ec, errc::pool_gave_up);
  EXPECT_EQ(ec.default_error_condition(), std::error_condition(static_cast<int>(errc::pool_removed),
                                                               ringmaster::supervisor_category()));
}

}  // namespace
