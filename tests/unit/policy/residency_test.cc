// Table-driven tests of the residency engine over the default policy
// (deploy/policy/default.yaml), one or more cases per row of regulations.md.
#include <gtest/gtest.h>

#include "default_policy.h"
#include "portolan/codec.h"
#include "portolan/policy.h"

namespace portolan::policy {
namespace {

const absl::CivilDay kToday(2026, 11, 21);

v1::Tenant Tenant(const std::string& yaml) {
  v1::Tenant t;
  absl::Status st = ParseYaml(yaml, &t);
  EXPECT_TRUE(st.ok()) << st;
  return t;
}

v1::Dataset Data(const std::string& yaml) {
  v1::Dataset d;
  absl::Status st = ParseYaml(yaml, &d);
  EXPECT_TRUE(st.ok()) << st;
  return d;
}

struct Case {
  std::string name;
  std::string dataset;  // YAML
  std::string site;
  std::string tenant;  // YAML
  bool allowed;
  std::string rule;
  std::string instrument = "";
  std::vector<std::string> requires_any = {};
};

const char* kPlain = "{id: plain}";
const char* kHolder =
    "{id: holder, instruments: [{type: cn_standard_contract, from: CN, to: '*', expires: "
    "'2027-12-31'}]}";
const char* kExpired =
    "{id: expired, instruments: [{type: cn_standard_contract, from: CN, to: '*', expires: "
    "'2026-11-20'}]}";
const char* kLastDay =
    "{id: lastday, instruments: [{type: cn_standard_contract, from: CN, to: '*', expires: "
    "'2026-11-21'}]}";
const char* kHkOnly = "{id: hkonly, instruments: [{type: cn_standard_contract, from: CN, to: HK}]}";
const char* kCiio =
    "{id: grid, ciio: true, instruments: [{type: cn_standard_contract, from: CN, to: '*'}]}";
const char* kLingang = "{id: lgco, registered_zones: [lingang, shanghai-ftz]}";
const char* kSccHolder = "{id: eucorp, instruments: [{type: eu_scc, from: EU, to: SG}]}";
const char* kSgContract =
    "{id: sgcorp, instruments: [{type: sg_transfer_contract, from: SG, to: '*'}]}";

std::string CnPi(int subjects, int sensitive = 0, const std::string& extra = "") {
  std::string cats = sensitive > 0 ? "[personal, sensitive_personal]" : "[personal]";
  return "{id: ds, origin: CN, categories: " + cats + ", subjects: " + std::to_string(subjects) +
         ", sensitive_subjects: " + std::to_string(sensitive) + extra + "}";
}

class ResidencyTable : public ::testing::TestWithParam<Case> {};

TEST_P(ResidencyTable, Verdict) {
  const Case& c = GetParam();
  auto policy = portolan::test_support::DefaultPolicy();
  const v1::Site* site = policy->FindSite(c.site);
  ASSERT_NE(site, nullptr) << c.site;
  Ledger ledger;
  DatasetVerdict v =
      policy->residency().Evaluate(Data(c.dataset), *site, Tenant(c.tenant), ledger, kToday);
  EXPECT_EQ(v.allowed, c.allowed) << v.reason;
  EXPECT_EQ(v.rule, c.rule) << v.reason;
  EXPECT_EQ(v.instrument, c.instrument);
  if (!c.requires_any.empty()) {
    EXPECT_EQ(v.requires_any, c.requires_any);
  }
  if (!v.allowed) {
    EXPECT_NE(v.reason.find("ds"), std::string::npos)
        << "reason should name the dataset: " << v.reason;
  }
}

const std::vector<std::string> kContractOrCert = {"cn_standard_contract", "cn_pi_certification"};
const std::vector<std::string> kCac = {"cac_security_assessment"};

INSTANTIATE_TEST_SUITE_P(
    Regulations, ResidencyTable,
    ::testing::Values(
        // Section 1, row 1: non-personal, not important.
        Case{"cn_general_leaves", "{id: ds, origin: CN, categories: [general]}", "singapore-1",
             kPlain, true, "cn-non-personal"},
        Case{"cn_uncategorised_is_general", "{id: ds, origin: CN}", "london-1", kPlain, true,
             "cn-non-personal"},
        // Row 2: PI collected abroad, processed in CN, re-exported: foreign origin, foreign rules.
        Case{"foreign_pi_reexported_from_cn",
             "{id: ds, origin: HK, location: lingang-idc-1, categories: [personal], subjects: "
             "2000000}",
             "singapore-1", kPlain, true, "hk-any"},
        // Row 3: contract / HR / emergency.
        Case{"hr_management_exempt", CnPi(500000, 0, ", purpose: hr_management"), "singapore-1",
             kPlain, true, "cn-pi-exempt-purpose"},
        // Row 4: fewer than 100,000.
        Case{"pi_99999_free", CnPi(99999), "singapore-1", kPlain, true, "cn-pi-under-100k"},
        // Row 5: 100,000 to 999,999, or SPI under 10,000.
        Case{"pi_100000_needs_contract", CnPi(100000), "singapore-1", kPlain, false,
             "cn-pi-100k-1m", "", kContractOrCert},
        Case{"pi_100000_with_contract", CnPi(100000), "singapore-1", kHolder, true, "cn-pi-100k-1m",
             "cn_standard_contract"},
        Case{"pi_999999_with_contract", CnPi(999999), "hongkong-1", kHolder, true, "cn-pi-100k-1m",
             "cn_standard_contract"},
        Case{"spi_1_needs_contract", CnPi(50, 1), "tokyo-1", kPlain, false, "cn-spi-under-10k", "",
             kContractOrCert},
        Case{"spi_9999_with_contract", CnPi(20000, 9999), "tokyo-1", kHolder, true,
             "cn-spi-under-10k", "cn_standard_contract"},
        // Row 6: 1,000,000 or more, or SPI 10,000 or more.
        Case{"pi_1000000_needs_cac", CnPi(1000000), "singapore-1", kHolder, false, "cn-pi-1m", "",
             kCac},
        Case{"spi_10000_needs_cac", CnPi(20000, 10000), "singapore-1", kHolder, false, "cn-spi-10k",
             "", kCac},
        // Row 7: important data; CIIO with any PI.
        Case{"important_needs_cac", "{id: ds, origin: CN, categories: [important]}", "frankfurt-1",
             kHolder, false, "cn-important-data", "", kCac},
        Case{"ciio_any_pi_needs_cac", CnPi(10), "hongkong-1", kCiio, false, "cn-ciio-pi", "", kCac},
        Case{"core_data_denied", "{id: ds, origin: CN, categories: [core]}", "hongkong-1", kHolder,
             false, "cn-core-data"},
        // Instruments: scope and expiry.
        Case{"expired_contract", CnPi(250000), "singapore-1", kExpired, false, "cn-pi-100k-1m"},
        Case{"contract_valid_on_its_last_day", CnPi(250000), "singapore-1", kLastDay, true,
             "cn-pi-100k-1m", "cn_standard_contract"},
        Case{"contract_in_scope", CnPi(250000), "hongkong-1", kHkOnly, true, "cn-pi-100k-1m",
             "cn_standard_contract"},
        Case{"contract_out_of_scope", CnPi(250000), "singapore-1", kHkOnly, false, "cn-pi-100k-1m"},
        // Domestic and the offshore data space, both ways.
        Case{"cn_pi_stays_in_cn", CnPi(5000000), "lingang-idc-1", kPlain, true, "same-regime"},
        Case{"cn_pi_stays_in_hongqiao", CnPi(5000000, 50000), "hongqiao-1", kPlain, true,
             "same-regime"},
        Case{"cn_pi_into_offshore_is_export", CnPi(250000), "lingang-offshore-1", kPlain, false,
             "cn-pi-100k-1m"},
        Case{"cn_pi_small_into_offshore", CnPi(1000), "lingang-offshore-1", kPlain, true,
             "cn-pi-under-100k"},
        Case{"eu_pi_into_offshore", "{id: ds, origin: EU, categories: [personal], subjects: 10}",
             "lingang-offshore-1", kPlain, false, "eu-personal-other"},
        Case{"eu_pi_reexport_from_offshore_keeps_origin",
             "{id: ds, origin: EU, location: lingang-offshore-1, categories: [personal], subjects: "
             "10}",
             "singapore-1", kSccHolder, true, "eu-personal-other", "eu_scc"},
        // Section 2: FTZ negative lists bind zone-registered tenants.
        Case{"ftz_tenant_unlisted_data_free", CnPi(500000, 0, ", sector: biomedicine"),
             "singapore-1", kLingang, true, "cn-ftz-not-listed"},
        Case{"ftz_tenant_listed_data_needs_instrument", CnPi(500, 0, ", sector: reinsurance"),
             "singapore-1", kLingang, false, "cn-ftz-listed", "", kContractOrCert},
        Case{"ftz_list_does_not_bind_others", CnPi(500, 0, ", sector: reinsurance"), "singapore-1",
             kPlain, true, "cn-pi-under-100k"},
        Case{"ftz_tenant_important_still_needs_cac",
             "{id: ds, origin: CN, categories: [important], sector: shipping}", "singapore-1",
             kLingang, false, "cn-important-data"},
        // Section 3: GBA contract is not for Shanghai: national rules apply to HK.
        Case{"shanghai_to_hk_national_rules", CnPi(300000), "hongkong-1", kPlain, false,
             "cn-pi-100k-1m"},
        // Section 4: other origins.
        Case{"hk_leaves_freely",
             "{id: ds, origin: HK, categories: [sensitive_personal], sensitive_subjects: 99}",
             "lingang-idc-1", kPlain, true, "hk-any"},
        Case{"sg_pi_needs_contract", "{id: ds, origin: SG, categories: [personal], subjects: 5}",
             "tokyo-1", kPlain, false, "sg-personal"},
        Case{"sg_pi_with_contract", "{id: ds, origin: SG, categories: [personal], subjects: 5}",
             "tokyo-1", kSgContract, true, "sg-personal", "sg_transfer_contract"},
        Case{"jp_pi_to_eu", "{id: ds, origin: JP, categories: [personal]}", "frankfurt-1", kPlain,
             true, "jp-to-eea-uk"},
        Case{"jp_pi_to_uk", "{id: ds, origin: JP, categories: [personal]}", "london-1", kPlain,
             true, "jp-to-eea-uk"},
        Case{"jp_pi_to_hk", "{id: ds, origin: JP, categories: [personal]}", "hongkong-1", kPlain,
             false, "jp-personal-other"},
        Case{"eu_pi_to_japan", "{id: ds, origin: EU, categories: [personal]}", "tokyo-1", kPlain,
             true, "eu-adequacy"},
        Case{"eu_pi_to_uk", "{id: ds, origin: EU, categories: [personal]}", "london-1", kPlain,
             true, "eu-adequacy"},
        Case{"eu_pi_to_singapore",
             "{id: ds, origin: EU, categories: [personal]}",
             "singapore-1",
             kPlain,
             false,
             "eu-personal-other",
             "",
             {"eu_scc", "eu_bcr"}},
        Case{"eu_pi_to_singapore_with_scc", "{id: ds, origin: EU, categories: [personal]}",
             "singapore-1", kSccHolder, true, "eu-personal-other", "eu_scc"},
        Case{"eu_scc_scope_is_sg_only", "{id: ds, origin: EU, categories: [personal]}",
             "hongkong-1", kSccHolder, false, "eu-personal-other"},
        Case{"eu_general_flows", "{id: ds, origin: EU, categories: [general]}", "hongkong-1",
             kPlain, true, "foreign-non-personal"},
        Case{"uk_pi_to_eu", "{id: ds, origin: UK, categories: [personal]}", "frankfurt-1", kPlain,
             true, "uk-adequacy"},
        Case{"uk_pi_to_singapore",
             "{id: ds, origin: UK, categories: [personal]}",
             "singapore-1",
             kPlain,
             false,
             "uk-personal-other",
             "",
             {"uk_idta", "uk_addendum"}},
        Case{"foreign_important_default_deny", "{id: ds, origin: EU, categories: [important]}",
             "singapore-1", kPlain, false, "default"}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(ResidencyLedgerTest, CumulativeVolumesCrossTheThreshold) {
  auto policy = portolan::test_support::DefaultPolicy();
  const v1::Site& sg = *policy->FindSite("singapore-1");
  const v1::Site& hk = *policy->FindSite("hongkong-1");
  const v1::Tenant t = Tenant(kPlain);
  Ledger ledger;
  v1::Dataset a = Data("{id: a, origin: CN, categories: [personal], subjects: 60000}");
  v1::Dataset b = Data("{id: b, origin: CN, categories: [personal], subjects: 50000}");
  ASSERT_TRUE(policy->residency().Evaluate(a, sg, t, ledger, kToday).allowed);
  EXPECT_TRUE(ledger.Record("plain", 2026, "SG", a));
  EXPECT_FALSE(ledger.Record("plain", 2026, "SG", a)) << "a dataset id is counted once";
  // 60,000 already exported + 50,000 = 110,000: the contract threshold applies.
  DatasetVerdict vb = policy->residency().Evaluate(b, sg, t, ledger, kToday);
  EXPECT_FALSE(vb.allowed);
  EXPECT_EQ(vb.rule, "cn-pi-100k-1m");
  // Re-running the first dataset does not count it twice.
  EXPECT_TRUE(policy->residency().Evaluate(a, sg, t, ledger, kToday).allowed);
  // Other destination jurisdictions and other years keep their own totals.
  EXPECT_TRUE(policy->residency().Evaluate(b, hk, t, ledger, kToday).allowed);
  EXPECT_TRUE(policy->residency().Evaluate(b, sg, t, ledger, absl::CivilDay(2027, 1, 1)).allowed);
  EXPECT_EQ(ledger.Entry("plain", 2026, "SG").subjects(), 60000u);
}

TEST(ResidencyJobTest, JobNeedsEveryDatasetAllowedAndReasonNamesEach) {
  auto policy = portolan::test_support::DefaultPolicy();
  v1::Job job;
  *job.add_datasets() =
      Data("{id: reads-2026q3, origin: CN, categories: [personal], subjects: 250000}");
  *job.add_datasets() = Data("{id: ref-genome, origin: CN, categories: [general]}");
  *job.add_datasets() = Data("{id: eu-cohort, origin: EU, categories: [personal], subjects: 900}");
  Ledger ledger;
  v1::ResidencyVerdict v = policy->residency().EvaluateJob(job, *policy->FindSite("singapore-1"),
                                                           Tenant(kPlain), ledger, kToday);
  EXPECT_FALSE(v.allowed());
  EXPECT_EQ(v.rule(), "cn-pi-100k-1m");
  EXPECT_NE(v.reason().find("reads-2026q3"), std::string::npos) << v.reason();
  EXPECT_NE(v.reason().find("eu-cohort"), std::string::npos) << v.reason();
  EXPECT_EQ(v.reason().find("ref-genome"), std::string::npos) << v.reason();
  ASSERT_EQ(v.datasets_size(), 3);
  EXPECT_EQ(v.datasets(1).rule(), "cn-non-personal");
  v1::ResidencyVerdict home = policy->residency().EvaluateJob(
      job, *policy->FindSite("lingang-idc-1"), Tenant(kPlain), ledger, kToday);
  EXPECT_FALSE(home.allowed()) << "EU personal data in CN still needs SCCs";
  EXPECT_EQ(home.rule(), "eu-personal-other");
}

}  // namespace
}  // namespace portolan::policy
