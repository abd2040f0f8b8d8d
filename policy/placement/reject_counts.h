// SPDX-License-Identifier: Apache-2.0
// Private to the placement module: how the engine counts agent rejections.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>

#include "absl/container/inlined_vector.h"

namespace portolan::placement {

// Rejections counted by a plugin's static reason code, without allocating
// per agent (AgentVerdict::code points at a string literal).
class RejectCounts {
 public:
  using Item = std::pair<std::string_view, uint32_t>;
  void Add(std::string_view code, uint32_t k = 1) {
    // Runs of one reason are common (a site's cordoned agents, a large job's
    // too-small ones): the last code first, by pointer; then every code by
    // pointer; by text only then (the same code from another plugin's
    // translation unit is another literal).
    if (last_ < items_.size() && items_[last_].first.data() == code.data()) {
      items_[last_].second += k;
      return;
    }
    for (size_t i = 0; i < items_.size(); ++i) {
      if (items_[i].first.data() == code.data()) return Bump(i, k);
    }
    for (size_t i = 0; i < items_.size(); ++i) {
      if (items_[i].first == code) return Bump(i, k);
    }
    items_.emplace_back(code, k);
    last_ = items_.size() - 1;
  }
  bool Has(std::string_view code) const {
    return std::any_of(items_.begin(), items_.end(),
                       [&](const Item& c) { return c.first == code; });
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  void Bump(size_t i, uint32_t k) {
    items_[i].second += k;
    last_ = i;
  }
  absl::InlinedVector<Item, 8> items_;
  size_t last_ = 0;
};

}  // namespace portolan::placement
