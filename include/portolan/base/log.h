// SPDX-License-Identifier: Apache-2.0
#pragma once

// Include this instead of spdlog/spdlog.h: Debian's abseil has its own
// absl::string_view (not std::string_view), which fmt cannot format without
// the formatter below. absl::Status::message() returns one.
#include "absl/strings/string_view.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};
