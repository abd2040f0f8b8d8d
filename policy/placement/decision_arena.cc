// SPDX-License-Identifier: Apache-2.0
#include <memory>

#include "portolan/placement/placement.h"

namespace portolan::placement {

namespace {
// Each thread's scratch block for DecisionArena, and whether one holds it.
constexpr size_t kScratchBytes = 64 << 10;  // a decision is a few KiB
thread_local std::unique_ptr<char[]> scratch;
thread_local bool scratch_held = false;

google::protobuf::ArenaOptions ArenaOptionsFor(bool use_scratch) {
  google::protobuf::ArenaOptions options;
  if (use_scratch) {
    if (scratch == nullptr) scratch = std::make_unique<char[]>(kScratchBytes);
    options.initial_block = scratch.get();
    options.initial_block_size = kScratchBytes;
  }
  options.start_block_size = 16 << 10;
  options.max_block_size = 64 << 10;
  return options;
}
}  // namespace

DecisionArena::DecisionArena()
    : holds_scratch_(!scratch_held), arena_(ArenaOptionsFor(holds_scratch_)) {
  if (holds_scratch_) scratch_held = true;
}

// The arena (a member) is destroyed right after this body, on this thread,
// before anything else could take the scratch block.
DecisionArena::~DecisionArena() {
  if (holds_scratch_) scratch_held = false;
}

v1::Decision* DecisionArena::NewDecision() {
  return google::protobuf::Arena::CreateMessage<v1::Decision>(&arena_);
}

}  // namespace portolan::placement
