// SPDX-License-Identifier: Apache-2.0
// Private to the placement module: how the engine counts agent rejections.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/container/inlined_vector.h"

namespace portolan::placement {

// Rejections counted by a plugin's static reason code, without allocating
// per agent (AgentVerdict::code points at a string literal).
class RejectCounts {
 public:
  using Item = std::pair<std::string_view, uint32_t>;
  RejectCounts() = default;
  // Not copyable: it keeps a pointer into its own items.
  RejectCounts(const RejectCounts&) = delete;
  RejectCounts& operator=(const RejectCounts&) = delete;
  // Counts `k` more rejections for `code`; true when the code was not
  // counted before (the engine spells out a reason once per site).
  bool Add(std::string_view code, uint32_t k = 1) {
    // Runs of one reason are common (a site's cordoned agents, a large job's
    // too-small ones): the last code first, by pointer; then every code by
    // pointer (a site sees a handful, and agents of mixed states alternate
    // between them); by text only then (the same code from another plugin's
    // translation unit is another literal).
    if (code.data() == last_code_ && last_count_ != nullptr) {
      *last_count_ += k;
      return false;
    }
    for (size_t i = 0, n = items_.size(); i < n; ++i) {
      if (items_[i].first.data() == code.data()) return Bump(i, k);
    }
    return AddOther(code, k);
  }

  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  // Add() for a code no item holds by pointer: out of line, so that the
  // common cases above stay small enough to inline into the engine's loop.
  ABSL_ATTRIBUTE_NOINLINE bool AddOther(std::string_view code, uint32_t k) {
    for (size_t i = 0; i < items_.size(); ++i) {
      if (items_[i].first == code) return Bump(i, k);
    }
    items_.emplace_back(code, k);
    Remember(items_.size() - 1);
    return true;
  }
  bool Bump(size_t i, uint32_t k) {
    items_[i].second += k;
    Remember(i);
    return false;
  }
  // After any change to items_ (the pointer may move when it grows).
  void Remember(size_t i) {
    last_code_ = items_[i].first.data();
    last_count_ = &items_[i].second;
  }
  absl::InlinedVector<Item, 8> items_;
  // The last code counted (its literal's address) and its counter.
  const char* last_code_ = nullptr;
  uint32_t* last_count_ = nullptr;
};

}  // namespace portolan::placement
