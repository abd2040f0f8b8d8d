#include <gtest/gtest.h>

#include <fstream>

#include "default_policy.h"
#include "portolan/codec.h"
#include "portolan/policy.h"

namespace portolan::policy {
namespace {

const std::set<std::string> kPlugins = {"site_affinity", "residency", "resource_fit", "bin_pack"};

const char* kBase = R"(
jurisdictions: [CN, SG]
instrument_types: [cn_standard_contract]
sites:
  - {id: a, jurisdiction: CN}
  - {id: b, jurisdiction: SG}
links:
  - {id: ab, a: a, b: b, rtt_ms: 50, gbps: 10}
rules:
  - {id: r1, when: {origin: [CN], export: true}, effect: require, require_any: [cn_standard_contract]}
plugins: {filters: [residency, resource_fit], scores: {bin_pack: 1}}
)";

absl::StatusOr<std::shared_ptr<const CompiledPolicy>> Compile(
    const std::string& yaml, std::vector<std::string>* errors = nullptr) {
  v1::Policy p;
  absl::Status st = ParseYaml(yaml, &p, "policy.yaml");
  if (!st.ok()) return st;
  return CompilePolicy(p, kPlugins, errors);
}

TEST(PolicyValidationTest, BaseIsValidAndLinksDefaultToUp) {
  auto c = Compile(kBase);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE((*c)->policy().links(0).up());
  EXPECT_TRUE((*c)->warnings().empty());
}

TEST(PolicyValidationTest, DefaultPolicyFileIsValid) {
  auto c = LoadPolicyFile(PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml",
                          portolan::test_support::BuiltinPluginNames());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->policy().sites_size(), 9);
  EXPECT_TRUE((*c)->warnings().empty());
  for (const auto& r : (*c)->policy().rules()) {
    EXPECT_TRUE(!r.source().empty() || r.unverified() || r.id() == "same-regime")
        << r.id() << " has no source";
  }
}

struct Bad {
  std::string name;
  std::string from, to;  // replace `from` in kBase with `to`
  std::string field;
  std::string says;
};

class PolicyErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(PolicyErrors, NameFieldAndReason) {
  const Bad& b = GetParam();
  std::string yaml = kBase;
  size_t at = yaml.find(b.from);
  ASSERT_NE(at, std::string::npos) << b.from;
  yaml.replace(at, b.from.size(), b.to);
  auto c = Compile(yaml);
  ASSERT_FALSE(c.ok()) << b.name;
  EXPECT_EQ(StatusField(c.status()), b.field) << c.status();
  EXPECT_NE(c.status().message().find(b.says), absl::string_view::npos) << c.status();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PolicyErrors,
    ::testing::Values(
        Bad{"unknown_field", "effect: require,", "effect: require, colour: red,", "rules[0].colour",
            "unknown field"},
        Bad{"unknown_jurisdiction", "origin: [CN]", "origin: [XX]", "rules[0].when.origin[0]",
            "unknown jurisdiction 'XX'"},
        Bad{"unknown_instrument", "require_any: [cn_standard_contract]",
            "require_any: [magic_paper]", "rules[0].require_any[0]",
            "unknown instrument 'magic_paper'"},
        Bad{"wrong_type", "export: true", "export: sometimes", "rules[0].when.export",
            "expected true or false"},
        Bad{"threshold_type", "export: true}", "export: true, subjects_at_least: many}",
            "rules[0].when.subjects_at_least", "expected a number"},
        Bad{"link_unknown_site", "a: a, b: b", "a: a, b: zz", "links[0].b", "unknown site 'zz'"},
        Bad{"negative_rtt", "rtt_ms: 50", "rtt_ms: -5", "links[0].rtt_ms", "RTT must be > 0"},
        Bad{"zero_rtt", "rtt_ms: 50", "rtt_ms: 0", "links[0].rtt_ms", "RTT must be > 0"},
        Bad{"duplicate_site", "{id: b, jurisdiction: SG}", "{id: a, jurisdiction: SG}",
            "sites[1].id", "duplicate site id 'a'"},
        Bad{"duplicate_rule", "plugins:", "  - {id: r1, when: {}, effect: allow}\nplugins:",
            "rules[1].id", "duplicate rule id 'r1'"},
        Bad{"require_without_instruments", "effect: require, require_any: [cn_standard_contract]",
            "effect: require", "rules[0].require_any", "needs at least one instrument"},
        Bad{"unknown_plugin", "filters: [residency", "filters: [residence", "plugins.filters[0]",
            "unknown plugin 'residence'"},
        Bad{"unknown_effect", "effect: require,", "effect: maybe,", "rules[0].effect",
            "expected one of"}),
    [](const ::testing::TestParamInfo<Bad>& info) { return info.param.name; });

TEST(PolicyValidationTest, ReportsEveryProblem) {
  std::string yaml = kBase;
  yaml.replace(yaml.find("rtt_ms: 50"), 10, "rtt_ms: -1");
  yaml.replace(yaml.find("origin: [CN]"), 12, "origin: [XX]");
  std::vector<std::string> errors;
  auto c = Compile(yaml, &errors);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(errors.size(), 2u);
  EXPECT_NE(c.status().message().find("1 more problem"), absl::string_view::npos) << c.status();
}

TEST(PolicyValidationTest, IsolatedSiteIsAWarningNotAnError) {
  std::string yaml = kBase;
  yaml.replace(yaml.find("  - {id: b, jurisdiction: SG}"), 29,
               "  - {id: b, jurisdiction: SG}\n  - {id: c, jurisdiction: SG}");
  auto c = Compile(yaml);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ((*c)->warnings().size(), 1u);
  EXPECT_NE((*c)->warnings()[0].find("site c"), std::string::npos);
}

TEST(PolicyValidationTest, FileErrorsNameTheFile) {
  std::string path = testing::TempDir() + "/broken-policy.yaml";
  std::ofstream(path) << "jurisdictions: [CN]\nsites: [{id: a, jurisdiction: CN, flavour: x}]\n";
  auto c = LoadPolicyFile(path, kPlugins);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(path), absl::string_view::npos) << c.status();
  EXPECT_EQ(StatusField(c.status()), "sites[0].flavour");
}

TEST(PolicyValidationTest, DiffSummaryCountsChanges) {
  v1::Policy a, b;
  ASSERT_TRUE(ParseYaml(kBase, &a).ok());
  b = a;
  b.mutable_rules(0)->set_description("changed");
  b.add_rules()->set_id("new");
  b.mutable_links(0)->set_up(false);
  EXPECT_EQ(DiffSummary(a, b), "links: +0 -0 ~1; rules: +1 -0 ~1");
  EXPECT_EQ(DiffSummary(a, a), "no change");
}

}  // namespace
}  // namespace portolan::policy
