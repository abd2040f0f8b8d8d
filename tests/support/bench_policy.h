// SPDX-License-Identifier: Apache-2.0
#pragma once

// For the in-process benchmarks (tests/bench/*_bench.cc): the project's
// default policy, read from the source tree, and quiet logging. The target
// defines PORTOLAN_SOURCE_DIR.
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "portolan/base/log.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::testing {

// deploy/policy/default.yaml, or nothing (with the reason on stderr).
inline std::optional<v1::Policy> BenchPolicy() {
  spdlog::set_level(spdlog::level::warn);
  std::ifstream f(PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml");
  std::stringstream text;
  text << f.rdbuf();
  v1::Policy policy;
  if (absl::Status st = codec::ParseYaml(text.str(), &policy); !st.ok()) {
    fprintf(stderr, "policy: %s\n", std::string(st.message()).c_str());
    return std::nullopt;
  }
  return policy;
}

}  // namespace portolan::testing
