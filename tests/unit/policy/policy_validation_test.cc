// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>
#include <cmath>
#include <limits>

#include "absl/strings/str_join.h"

#include <fstream>

#include "default_policy.h"
#include "portolan/codec/codec.h"
#include "portolan/policy/policy.h"

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
  absl::Status st = codec::ParseYaml(yaml, &p, "policy.yaml");
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
  EXPECT_EQ(codec::StatusField(c.status()), b.field) << c.status();
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
        Bad{"unknown_queue_sort", "scores: {bin_pack: 1}}",
            "scores: {bin_pack: 1}, queue_sort: fair}", "plugins.queue_sort",
            "unknown plugin 'fair'"},
        Bad{"unknown_effect", "effect: require,", "effect: maybe,", "rules[0].effect",
            "expected one of"},
        Bad{"site_id_with_space", "{id: b, jurisdiction: SG}", "{id: b c, jurisdiction: SG}",
            "sites[1].id", "site id must be 1-128 letters"},
        // Ranges (docs/policy.md): every number finite and bounded.
        Bad{"huge_weight", "scores: {bin_pack: 1}", "scores: {bin_pack: 1e308}",
            "plugins.scores.bin_pack", "weight must be a number from 0 to 1000"},
        Bad{"rtt_too_long", "rtt_ms: 50", "rtt_ms: 20000", "links[0].rtt_ms", "at most 10000 ms"},
        Bad{"rtt_infinite", "rtt_ms: 50", "rtt_ms: Infinity", "links[0].rtt_ms",
            "expected a finite number, got 'Infinity'"},
        Bad{"gbps_nan", "gbps: 10", "gbps: NaN", "links[0].gbps", "expected a finite number"},
        Bad{"price_nan", "{id: a, jurisdiction: CN}",
            "{id: a, jurisdiction: CN, price_per_core_hour: -1}", "sites[0].price_per_core_hour",
            "must be a number from 0 to 1e+06"},
        Bad{"latitude_nan", "{id: a, jurisdiction: CN}", "{id: a, jurisdiction: CN, latitude: 91}",
            "sites[0].latitude", "must be a number from -90 to 90"},
        // Residency cannot be switched off by leaving it out.
        Bad{"no_residency_filter", "filters: [residency, resource_fit]", "filters: [resource_fit]",
            "plugins.filters", "the residency filter is not enabled"},
        Bad{"empty_filters", "filters: [residency, resource_fit]", "filters: []", "plugins.filters",
            "the residency filter is not enabled"},
        // A site's isolation minimum needs the filter that enforces it.
        Bad{"isolation_minimum_without_filter", "{id: a, jurisdiction: CN}",
            "{id: a, jurisdiction: CN, isolation_required: {uid_per_job: true}}",
            "sites[0].isolation_required", "the isolation filter is not in plugins.filters"},
        Bad{"isolation_unknown_cgroup", "{id: a, jurisdiction: CN}",
            "{id: a, jurisdiction: CN, isolation_required: {cgroup: v3}}",
            "sites[0].isolation_required.cgroup", "expected one of"},
        Bad{"needless_override", "filters: [residency, resource_fit]",
            "filters: [residency, resource_fit], allow_without_residency: true",
            "plugins.allow_without_residency", "residency is enabled"}),
    [](const ::testing::TestParamInfo<Bad>& info) { return info.param.name; });

// JSON bodies (PUT /v1/policy) can carry "NaN" and "Infinity" as strings,
// which protobuf's parser accepts: validation refuses them by range.
TEST(PolicyValidationTest, NonFiniteNumbersFromJsonAreRefused) {
  v1::Policy p;
  ASSERT_TRUE(codec::ParseYaml(kBase, &p).ok());
  p.mutable_links(0)->set_rtt_ms(std::numeric_limits<double>::infinity());
  p.mutable_links(0)->set_gbps(std::nan(""));
  p.mutable_sites(0)->set_price_per_core_hour(std::nan(""));
  p.mutable_sites(1)->set_latitude(std::nan(""));
  (*p.mutable_plugins()->mutable_scores())["bin_pack"] = std::numeric_limits<double>::infinity();
  std::vector<std::string> errors;
  ASSERT_FALSE(CompilePolicy(p, kPlugins, &errors).ok());
  const std::string all = absl::StrJoin(errors, "\n");
  for (const char* field : {"links[0].rtt_ms", "links[0].gbps", "sites[0].price_per_core_hour",
                            "sites[1].latitude", "plugins.scores.bin_pack"}) {
    EXPECT_NE(all.find(field), std::string::npos) << field << " in\n" << all;
  }
}

TEST(PolicyValidationTest, ResidencyOffOnlyOnPurpose) {
  std::string yaml = kBase;
  yaml.replace(yaml.find("filters: [residency, resource_fit]"), 34,
               "filters: [resource_fit], allow_without_residency: true");
  auto c = Compile(yaml);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE((*c)->policy().plugins().allow_without_residency());
}

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
  EXPECT_EQ(codec::StatusField(c.status()), "sites[0].flavour");
}

TEST(PolicyValidationTest, DiffSummaryCountsChanges) {
  v1::Policy a, b;
  ASSERT_TRUE(codec::ParseYaml(kBase, &a).ok());
  b = a;
  b.mutable_rules(0)->set_description("changed");
  b.add_rules()->set_id("new");
  b.mutable_links(0)->set_up(false);
  EXPECT_EQ(DiffSummary(a, b), "links: +0 -0 ~1; rules: +1 -0 ~1");
  EXPECT_EQ(DiffSummary(a, a), "no change");
}

}  // namespace
}  // namespace portolan::policy
