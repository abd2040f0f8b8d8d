// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "portolan/network/network.h"
#include "portolan/residency/residency.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::policy {

// A validated policy with its derived structures. Immutable once built and
// shared (std::shared_ptr<const CompiledPolicy>) by every decision that uses
// it; a policy change or a link change builds a new one and swaps it in.
class CompiledPolicy {
 public:
  const v1::Policy& policy() const { return policy_; }
  const network::NetworkModel& network() const { return network_; }
  const residency::ResidencyEngine& residency() const { return residency_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  // nullptr when the site is not in the catalogue.
  const v1::Site* FindSite(const std::string& id) const;

 private:
  friend absl::StatusOr<std::shared_ptr<const CompiledPolicy>> CompilePolicy(
      v1::Policy policy, const std::set<std::string>& plugins, std::vector<std::string>* errors);
  explicit CompiledPolicy(v1::Policy p) : policy_(std::move(p)), residency_(&policy_) {}

  v1::Policy policy_;
  absl::flat_hash_map<std::string, int> site_index_;  // looked up per agent examined
  network::NetworkModel network_;
  residency::ResidencyEngine residency_;
  std::vector<std::string> warnings_;
};

// Validates `policy` and builds it. Every problem found is appended to
// `errors` (when given) as "field: reason"; the returned error names the first
// one, with the field as its payload. `plugins` are the registered plugin
// names the policy may enable. Warnings (e.g. an isolated site) do not fail.
absl::StatusOr<std::shared_ptr<const CompiledPolicy>> CompilePolicy(
    v1::Policy policy, const std::set<std::string>& plugins,
    std::vector<std::string>* errors = nullptr);

// Loads and compiles a policy file (YAML or JSON); errors name the file.
absl::StatusOr<std::shared_ptr<const CompiledPolicy>> LoadPolicyFile(
    const std::string& path, const std::set<std::string>& plugins);

// One line saying what changed between two policies ("rules: +1 -0 ~2; ...").
std::string DiffSummary(const v1::Policy& before, const v1::Policy& after);

// Applies `update` to link `id` of `policy` (PATCH /v1/links/{id}, and the
// link changes of a what-if): NotFound naming "id" for an unknown link,
// InvalidArgument naming "rtt_ms" or "gbps" for a value not above 0. Appends
// what changed, in words, to `changes`; nothing when the update changes nothing.
absl::Status UpdateLink(v1::Policy& policy, const std::string& id, const v1::LinkUpdate& update,
                        std::vector<std::string>* changes);

}  // namespace portolan::policy
