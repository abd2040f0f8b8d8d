// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the policy loader — YAML converted against the Policy
// schema, then validated and compiled (network model, residency rules,
// negative lists, plugin configuration). Invariants: no crash, and a policy
// that compiles prints to JSON that parses and compiles again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "portolan/codec/codec.h"
#include "portolan/placement/placement.h"
#include "portolan/policy/policy.h"
#include "portolan/v1/policy.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::set<std::string>* plugins = [] {
    static portolan::placement::Registry registry;
    portolan::placement::RegisterBuiltins(registry);
    auto* names = new std::set<std::string>();
    *names = registry.NameSet();
    return names;
  }();
  portolan::v1::Policy policy;
  std::string text(reinterpret_cast<const char*>(data), size);
  if (!portolan::codec::ParseYaml(text, &policy, "fuzz.yaml").ok()) return 0;
  std::vector<std::string> errors;
  auto compiled = portolan::policy::CompilePolicy(policy, *plugins, &errors);
  if (!compiled.ok()) {
    if (errors.empty()) abort();  // a refusal always says why
    return 0;
  }
  portolan::v1::Policy again;
  if (!portolan::codec::ParseJson(portolan::codec::ToJson(policy), &again).ok()) abort();
  if (!portolan::policy::CompilePolicy(again, *plugins).ok()) abort();
  return 0;
}
