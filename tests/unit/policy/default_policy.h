// SPDX-License-Identifier: Apache-2.0
#pragma once

// The shipped default policy, compiled against the built-in placement
// plugins (their real names, from the registry, not a copy of the list).
#include <gtest/gtest.h>

#include <memory>

#include "portolan/placement/placement.h"
#include "portolan/policy/policy.h"

namespace portolan::test_support {

inline std::set<std::string> BuiltinPluginNames() {
  placement::Registry registry;
  placement::RegisterBuiltins(registry);
  return registry.NameSet();
}

inline std::shared_ptr<const policy::CompiledPolicy> DefaultPolicy() {
  static const std::shared_ptr<const policy::CompiledPolicy> compiled = [] {
    auto c = policy::LoadPolicyFile(PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml",
                                    BuiltinPluginNames());
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : nullptr;
  }();
  return compiled;
}

}  // namespace portolan::test_support
