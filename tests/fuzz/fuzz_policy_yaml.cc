// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the policy loader — YAML converted against the Policy
// schema, then validated and compiled (network model, residency rules,
// negative lists, plugin configuration). Invariants: no crash, the parsed
// policy is what protobuf's parser makes of the same JSON, and a policy that
// compiles prints to JSON that parses and compiles again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "google/protobuf/util/message_differencer.h"
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
  // The direct parse (strict_json.cc) gives what protobuf's parser gives.
  auto json = portolan::codec::YamlToJson(text, portolan::v1::Policy::descriptor());
  portolan::v1::Policy slow;
  if (!json.ok() || !portolan::codec::internal::ProtobufParseJson(*json, &slow).ok()) abort();
  if (!google::protobuf::util::MessageDifferencer::Equals(policy, slow)) abort();
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
