// SPDX-License-Identifier: Apache-2.0
#include "portolan/policy/policy.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"

namespace portolan::policy {

const v1::Site* CompiledPolicy::FindSite(const std::string& id) const {
  auto it = site_index_.find(id);
  return it == site_index_.end() ? nullptr : &policy_.sites(it->second);
}

namespace {

// Documented ranges (docs/policy.md, Ranges): every number finite and bounded,
// so no value can make every score infinite or every path unusable.
constexpr double kMaxWeight = 1000;
constexpr double kMaxPrice = 1e6;    // per core-hour
constexpr double kMaxRttMs = 10000;  // a round trip of ten seconds
constexpr double kMaxGbps = 1e6;     // a petabit per second

class Checker {
 public:
  void Error(const std::string& field, const std::string& msg) {
    errors.push_back(absl::StrCat(field, ": ", msg));
    if (first_field.empty() && first_msg.empty()) {
      first_field = field;
      first_msg = msg;
    }
  }
  std::vector<std::string> errors;
  std::string first_field, first_msg;
};

template <typename C>
std::string Known(const C& c) {
  return absl::StrCat("known: ", absl::StrJoin(c, ", "));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const CompiledPolicy>> CompilePolicy(
    v1::Policy policy, const std::set<std::string>& plugins, std::vector<std::string>* errors) {
  Checker ck;
  std::set<std::string> jur(policy.jurisdictions().begin(), policy.jurisdictions().end());
  std::set<std::string> instruments(policy.instrument_types().begin(),
                                    policy.instrument_types().end());
  if (jur.empty())
    ck.Error("jurisdictions", "list the jurisdiction codes the policy uses (CN, HK, ...)");
  if (jur.size() != static_cast<size_t>(policy.jurisdictions_size()))
    ck.Error("jurisdictions", "duplicate entry");
  if (instruments.size() != static_cast<size_t>(policy.instrument_types_size())) {
    ck.Error("instrument_types", "duplicate entry");
  }
  auto check_jur = [&](const std::string& field, const std::string& j) {
    if (!jur.contains(j))
      ck.Error(field, absl::StrCat("unknown jurisdiction '", j, "' (", Known(jur), ")"));
  };
  auto check_instr = [&](const std::string& field, const std::string& i) {
    if (!instruments.contains(i)) {
      ck.Error(field, absl::StrCat("unknown instrument '", i, "' (", Known(instruments), ")"));
    }
  };

  std::map<std::string, int> sites;
  for (int i = 0; i < policy.sites_size(); ++i) {
    const v1::Site& s = policy.sites(i);
    const std::string f = absl::StrCat("sites[", i, "]");
    if (s.id().empty()) {
      ck.Error(f + ".id", "site id is required");
    } else if (!base::IsId(s.id())) {
      ck.Error(f + ".id", absl::StrCat("site id must be ", base::kIdRule));
    }
    if (!sites.emplace(s.id(), i).second)
      ck.Error(f + ".id", absl::StrCat("duplicate site id '", s.id(), "'"));
    check_jur(f + ".jurisdiction", s.jurisdiction());
    if (!(s.price_per_core_hour() >= 0 && s.price_per_core_hour() <= kMaxPrice))
      ck.Error(f + ".price_per_core_hour", absl::StrCat("must be a number from 0 to ", kMaxPrice));
    if (!(s.latitude() >= -90 && s.latitude() <= 90))
      ck.Error(f + ".latitude", "must be a number from -90 to 90");
    if (!(s.longitude() >= -180 && s.longitude() <= 180))
      ck.Error(f + ".longitude", "must be a number from -180 to 180");
  }
  if (policy.sites_size() == 0) ck.Error("sites", "the catalogue needs at least one site");
  const v1::DatasetPolicy& dp = policy.datasets();
  for (int i = 0; i < dp.require_attested_size(); ++i) {
    if (dp.require_attested(i) == v1::Dataset::category_unspecified)
      ck.Error(absl::StrCat("datasets.require_attested[", i, "]"), "an unspecified category");
  }
  for (int i = 0; i < dp.cache_sites_size(); ++i) {
    if (!sites.contains(dp.cache_sites(i)))
      ck.Error(absl::StrCat("datasets.cache_sites[", i, "]"),
               absl::StrCat("unknown site '", dp.cache_sites(i), "'"));
  }

  std::set<std::string> link_ids;
  for (int i = 0; i < policy.links_size(); ++i) {
    v1::Link* l = policy.mutable_links(i);
    const std::string f = absl::StrCat("links[", i, "]");
    if (l->id().empty()) {
      ck.Error(f + ".id", "link id is required");
    } else if (!base::IsId(l->id())) {
      ck.Error(f + ".id", absl::StrCat("link id must be ", base::kIdRule));
    }
    if (!link_ids.insert(l->id()).second)
      ck.Error(f + ".id", absl::StrCat("duplicate link id '", l->id(), "'"));
    for (auto [end, name] : {std::pair{l->a(), "a"}, std::pair{l->b(), "b"}}) {
      if (!sites.contains(end))
        ck.Error(absl::StrCat(f, ".", name), absl::StrCat("unknown site '", end, "'"));
    }
    if (l->a() == l->b()) ck.Error(f + ".b", "a link must join two different sites");
    if (!(l->rtt_ms() > 0 && l->rtt_ms() <= kMaxRttMs))
      ck.Error(f + ".rtt_ms",
               absl::StrCat("RTT must be > 0 and at most ", kMaxRttMs, " ms, got ", l->rtt_ms()));
    if (!(l->gbps() > 0 && l->gbps() <= kMaxGbps))
      ck.Error(f + ".gbps", absl::StrCat("capacity must be > 0 and at most ", kMaxGbps,
                                         " Gbps, got ", l->gbps()));
    if (!l->has_up()) l->set_up(true);
  }

  std::set<std::string> rule_ids;
  for (int i = 0; i < policy.rules_size(); ++i) {
    const v1::Rule& r = policy.rules(i);
    const std::string f = absl::StrCat("rules[", i, "]");
    if (r.id().empty()) ck.Error(f + ".id", "rule id is required");
    if (!rule_ids.insert(r.id()).second)
      ck.Error(f + ".id", absl::StrCat("duplicate rule id '", r.id(), "'"));
    if (r.effect() == v1::Rule::effect_unspecified) {
      ck.Error(f + ".effect", "effect is required (allow, deny, require, apply_negative_lists)");
    }
    if (r.effect() == v1::Rule::require && r.require_any_size() == 0) {
      ck.Error(f + ".require_any", "effect require needs at least one instrument");
    }
    if (r.effect() != v1::Rule::require && r.require_any_size() > 0) {
      ck.Error(f + ".require_any", "require_any only goes with effect require");
    }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    if (r.effect() == v1::Rule::require_listed) {
      ck.Error(f + ".effect",
               "require_listed was removed: negative lists now apply at one rule with effect "
               "apply_negative_lists (docs/policy.md, Negative lists)");
    }
    if (r.when().has_negative_listed()) {
      ck.Error(f + ".when.negative_listed",
               "negative_listed was removed: negative lists now apply at one rule with effect "
               "apply_negative_lists (docs/policy.md, Negative lists)");
    }
#pragma GCC diagnostic pop
    if (r.exempt() && r.effect() != v1::Rule::allow) {
      ck.Error(f + ".exempt", "only an allow rule can be a purpose exemption");
    }
    for (int k = 0; k < r.require_any_size(); ++k)
      check_instr(absl::StrCat(f, ".require_any[", k, "]"), r.require_any(k));
    const v1::Condition& c = r.when();
    for (int k = 0; k < c.origin_size(); ++k)
      check_jur(absl::StrCat(f, ".when.origin[", k, "]"), c.origin(k));
    for (int k = 0; k < c.destination_size(); ++k) {
      check_jur(absl::StrCat(f, ".when.destination[", k, "]"), c.destination(k));
    }
    if (c.has_subjects_below() && c.subjects_below() <= c.subjects_at_least()) {
      ck.Error(f + ".when.subjects_below", "must exceed subjects_at_least");
    }
    if (c.has_sensitive_subjects_below() &&
        c.sensitive_subjects_below() <= c.sensitive_subjects_at_least()) {
      ck.Error(f + ".when.sensitive_subjects_below", "must exceed sensitive_subjects_at_least");
    }
  }
  if (policy.default_effect() != v1::Rule::effect_unspecified &&
      policy.default_effect() != v1::Rule::allow && policy.default_effect() != v1::Rule::deny) {
    ck.Error("default_effect", "default_effect must be allow or deny");
  }

  std::map<std::string, std::string> zones;  // id -> parent
  for (int i = 0; i < policy.zones_size(); ++i) {
    const v1::Zone& z = policy.zones(i);
    const std::string f = absl::StrCat("zones[", i, "]");
    if (z.id().empty()) {
      ck.Error(f + ".id", "zone id is required");
    } else if (!base::IsId(z.id())) {
      ck.Error(f + ".id", absl::StrCat("zone id must be ", base::kIdRule));
    }
    if (!zones.emplace(z.id(), z.parent()).second)
      ck.Error(f + ".id", absl::StrCat("duplicate zone id '", z.id(), "'"));
  }
  for (int i = 0; i < policy.zones_size(); ++i) {
    const v1::Zone& z = policy.zones(i);
    if (z.parent().empty()) continue;
    const std::string f = absl::StrCat("zones[", i, "].parent");
    if (!zones.contains(z.parent())) {
      ck.Error(f, absl::StrCat("unknown zone '", z.parent(), "' (declare it in zones)"));
      continue;
    }
    std::set<std::string> seen{z.id()};
    for (std::string p = z.parent(); !p.empty(); p = zones[p]) {
      if (!seen.insert(p).second) {
        ck.Error(f, absl::StrCat("zone '", z.id(), "' lies inside itself (", p, ")"));
        break;
      }
      if (!zones.contains(p)) break;
    }
  }
  auto check_day = [&](const std::string& field, const std::string& day) {
    absl::CivilDay d;
    if (!day.empty() && !absl::ParseCivilTime(day, &d))
      ck.Error(field, absl::StrCat("'", day, "' is not a date (YYYY-MM-DD)"));
  };

  std::set<std::string> list_ids;
  for (const auto& nl : policy.negative_lists()) list_ids.insert(nl.id());
  std::set<std::string> seen_lists;
  for (int i = 0; i < policy.negative_lists_size(); ++i) {
    const v1::NegativeList& nl = policy.negative_lists(i);
    const std::string f = absl::StrCat("negative_lists[", i, "]");
    if (nl.id().empty() || !seen_lists.insert(nl.id()).second)
      ck.Error(f + ".id", "missing or duplicate id");
    if (nl.zones_size() == 0)
      ck.Error(f + ".zones", "a negative list binds tenants of at least one zone");
    if (nl.sectors_size() == 0)
      ck.Error(f + ".sectors",
               "name the sectors the list covers: it relaxes the national rules only inside them");
    check_day(f + ".valid_from", nl.valid_from());
    check_day(f + ".expires", nl.expires());
    absl::CivilDay a, b;
    if (!nl.valid_from().empty() && !nl.expires().empty() &&
        absl::ParseCivilTime(nl.valid_from(), &a) && absl::ParseCivilTime(nl.expires(), &b) &&
        b < a)
      ck.Error(f + ".expires", "expires before valid_from");
    if (!nl.superseded_by().empty() &&
        (nl.superseded_by() == nl.id() || !list_ids.contains(nl.superseded_by()))) {
      ck.Error(f + ".superseded_by",
               absl::StrCat("'", nl.superseded_by(), "' is not another list of this policy"));
    }
    for (int k = 0; k < nl.entries_size(); ++k) {
      const auto& e = nl.entries(k);
      const std::string ef = absl::StrCat(f, ".entries[", k, "]");
      if (!e.sector().empty() &&
          std::find(nl.sectors().begin(), nl.sectors().end(), e.sector()) == nl.sectors().end()) {
        ck.Error(ef + ".sector",
                 absl::StrCat("sector '", e.sector(), "' is not one the list covers (sectors: ",
                              absl::StrJoin(nl.sectors(), ", "), ")"));
      }
      if (e.require_any_size() == 0)
        ck.Error(ef + ".require_any", "name the instrument(s) the entry requires");
      for (int m = 0; m < e.require_any_size(); ++m)
        check_instr(absl::StrCat(ef, ".require_any[", m, "]"), e.require_any(m));
    }
  }

  std::set<std::string> ruled;
  for (int i = 0; i < policy.instrument_rules_size(); ++i) {
    const v1::InstrumentRule& ir = policy.instrument_rules(i);
    const std::string f = absl::StrCat("instrument_rules[", i, "]");
    check_instr(f + ".type", ir.type());
    if (!ruled.insert(ir.type()).second)
      ck.Error(f + ".type", absl::StrCat("a second rule for instrument '", ir.type(), "'"));
    for (int k = 0; k < ir.destinations_size(); ++k)
      check_jur(absl::StrCat(f, ".destinations[", k, "]"), ir.destinations(k));
  }
  for (int i = 0; i < policy.plugins().filters_size(); ++i) {
    const std::string& name = policy.plugins().filters(i);
    if (!plugins.contains(name)) {
      ck.Error(absl::StrCat("plugins.filters[", i, "]"),
               absl::StrCat("unknown plugin '", name, "' (", Known(plugins), ")"));
    }
  }
  if (const std::string& qs = policy.plugins().queue_sort(); !qs.empty() && !plugins.contains(qs)) {
    ck.Error("plugins.queue_sort",
             absl::StrCat("unknown plugin '", qs, "' (", Known(plugins), ")"));
  }
  for (const auto& [name, w] : policy.plugins().scores()) {
    if (!plugins.contains(name)) {
      ck.Error(absl::StrCat("plugins.scores.", name),
               absl::StrCat("unknown plugin '", name, "' (", Known(plugins), ")"));
    }
    if (!(w >= 0 && w <= kMaxWeight)) {
      ck.Error(absl::StrCat("plugins.scores.", name),
               absl::StrCat("weight must be a number from 0 to ", kMaxWeight, ", got ", w));
    }
  }

  const auto& filters = policy.plugins().filters();
  const bool residency_on = std::find(filters.begin(), filters.end(), "residency") != filters.end();
  // A site's isolation minimum is enforced by the `isolation` filter: a
  // minimum without it would be a promise nobody keeps.
  const bool isolation_on = std::find(filters.begin(), filters.end(), "isolation") != filters.end();
  for (int i = 0; i < policy.sites_size(); ++i) {
    if (policy.sites(i).has_isolation_required() && !isolation_on) {
      ck.Error(absl::StrCat("sites[", i, "].isolation_required"),
               "set, but the isolation filter is not in plugins.filters: add it there");
    }
    if (!policy.sites(i).isolation_required().user().empty()) {
      ck.Error(absl::StrCat("sites[", i, "].isolation_required.user"),
               "is what an agent reports, not a requirement; leave it out");
    }
  }
  if (!residency_on && !policy.plugins().allow_without_residency()) {
    ck.Error(
        "plugins.filters",
        "the residency filter is not enabled: no residency rule would be checked; list "
        "residency in plugins.filters, or set plugins.allow_without_residency: true on purpose");
  }
  if (residency_on && policy.plugins().allow_without_residency()) {
    ck.Error("plugins.allow_without_residency", "residency is enabled; remove this flag");
  }

  if (errors != nullptr) errors->insert(errors->end(), ck.errors.begin(), ck.errors.end());
  if (!ck.errors.empty()) {
    std::string msg = ck.first_msg;
    if (ck.errors.size() > 1)
      absl::StrAppend(&msg, " (and ", ck.errors.size() - 1, " more problem(s))");
    return codec::InvalidField(ck.first_field, absl::StrCat(ck.first_field, ": ", msg));
  }

  std::shared_ptr<CompiledPolicy> out(new CompiledPolicy(std::move(policy)));
  out->site_index_.insert(sites.begin(), sites.end());
  std::vector<v1::Site> site_list(out->policy_.sites().begin(), out->policy_.sites().end());
  std::vector<v1::Link> link_list(out->policy_.links().begin(), out->policy_.links().end());
  out->network_ = network::NetworkModel(site_list, link_list);
  v1::NetworkView view = out->network_.View();
  out->warnings_.assign(view.warnings().begin(), view.warnings().end());
  return std::shared_ptr<const CompiledPolicy>(std::move(out));
}

absl::StatusOr<std::shared_ptr<const CompiledPolicy>> LoadPolicyFile(
    const std::string& path, const std::set<std::string>& plugins) {
  v1::Policy p;
  absl::Status st = codec::LoadFile(path, &p);
  if (!st.ok()) return st;
  auto compiled = CompilePolicy(std::move(p), plugins);
  if (!compiled.ok()) {
    return codec::FieldError(compiled.status().code(), codec::StatusField(compiled.status()),
                             absl::StrCat(path, ": ", compiled.status().message()));
  }
  return compiled;
}

namespace {
template <typename R>
std::string Diff(const std::string& what, const R& before, const R& after) {
  std::map<std::string, std::string> a, b;
  for (const auto& x : before) a[x.id()] = x.SerializeAsString();
  for (const auto& x : after) b[x.id()] = x.SerializeAsString();
  int added = 0, removed = 0, changed = 0;
  for (const auto& [id, v] : b) {
    auto it = a.find(id);
    if (it == a.end())
      ++added;
    else if (it->second != v)
      ++changed;
  }
  for (const auto& [id, v] : a) removed += b.contains(id) ? 0 : 1;
  if (added + removed + changed == 0) return "";
  return absl::StrCat(what, ": +", added, " -", removed, " ~", changed);
}
}  // namespace

absl::Status UpdateLink(v1::Policy& p, const std::string& id, const v1::LinkUpdate& update,
                        std::vector<std::string>* changes) {
  v1::Link* link = nullptr;
  for (auto& l : *p.mutable_links()) {
    if (l.id() == id) link = &l;
  }
  if (link == nullptr)
    return codec::FieldError(absl::StatusCode::kNotFound, "id", absl::StrCat("no link '", id, "'"));
  if (update.has_rtt_ms() && !(update.rtt_ms() > 0))
    return codec::InvalidField("rtt_ms", "RTT must be > 0");
  if (update.has_gbps() && !(update.gbps() > 0))
    return codec::InvalidField("gbps", "capacity must be > 0");
  if (update.has_up() && update.up() != link->up()) {
    changes->push_back(absl::StrCat("link ", id, update.up() ? " up" : " down"));
    link->set_up(update.up());
  }
  if (update.has_rtt_ms()) {
    changes->push_back(
        absl::StrCat("link ", id, " rtt ", link->rtt_ms(), " -> ", update.rtt_ms(), " ms"));
    link->set_rtt_ms(update.rtt_ms());
    link->set_estimate(false);
  }
  if (update.has_gbps()) {
    changes->push_back(
        absl::StrCat("link ", id, " capacity ", link->gbps(), " -> ", update.gbps(), " Gbps"));
    link->set_gbps(update.gbps());
  }
  return absl::OkStatus();
}

std::string DiffSummary(const v1::Policy& before, const v1::Policy& after) {
  std::vector<std::string> parts;
  for (std::string s :
       {Diff("sites", before.sites(), after.sites()), Diff("links", before.links(), after.links()),
        Diff("rules", before.rules(), after.rules()),
        Diff("negative_lists", before.negative_lists(), after.negative_lists()),
        Diff("zones", before.zones(), after.zones())}) {
    if (!s.empty()) parts.push_back(s);
  }
  if (!google::protobuf::util::MessageDifferencer::Equals(before.plugins(), after.plugins())) {
    parts.push_back("plugins changed");
  }
  if (before.default_effect() != after.default_effect()) parts.push_back("default_effect changed");
  if (!google::protobuf::util::MessageDifferencer::Equals(before.ledger(), after.ledger()))
    parts.push_back("ledger changed");
  if (before.on_violation() != after.on_violation()) parts.push_back("on_violation changed");
  if (!google::protobuf::util::MessageDifferencer::Equals(before.datasets(), after.datasets()))
    parts.push_back("datasets changed");
  if (before.instrument_rules_size() != after.instrument_rules_size() ||
      !std::equal(before.instrument_rules().begin(), before.instrument_rules().end(),
                  after.instrument_rules().begin(), [](const auto& x, const auto& y) {
                    return google::protobuf::util::MessageDifferencer::Equals(x, y);
                  }))
    parts.push_back("instrument_rules changed");
  if (parts.empty()) return "no change";
  return absl::StrJoin(parts, "; ");
}

}  // namespace portolan::policy
