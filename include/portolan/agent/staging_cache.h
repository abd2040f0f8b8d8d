// SPDX-License-Identifier: Apache-2.0
#pragma once

// The site's cache of staged inputs (the policy's datasets.cache_sites):
// under <--data-dir>/.portolan-cache, one directory per dataset holding the
// newest version pulled, v<version>/{data/, digest}. Bounded in bytes
// (--staging-cache-max-gb): the entries used longest ago go first.
//
// Several stages may call these at once (each from its own thread): an entry
// is renamed out of the way before it is removed, so a stage sees a whole
// entry or none, and one whose entry goes while it links from it pulls the
// data again (agent/staging.cc).
#include <cstdint>
#include <string>

namespace portolan::agent {

// The cache's folder under --data-dir, the agent's alone (0700).
inline constexpr char kCacheDir[] = ".portolan-cache";
// Beside an entry's data/: "<bytes> <sha256>" of it, as the pull measured
// it, so a later job linking it need not read it all again, and TrimCache
// knows its size.
inline constexpr char kCacheDigest[] = "digest";

// What TrimCache did.
struct CacheTrim {
  uint64_t entries_removed = 0;
  uint64_t bytes_removed = 0;
  uint64_t bytes_kept = 0;  // what the remaining entries hold
};

// Marks `entry` (a <root>/<dataset>/v<version> directory) used now: its
// modification time is what TrimCache orders by.
void TouchCacheEntry(const std::string& entry);

// Removes whole entries under `root`, least recently used first, until those
// left hold at most `max_bytes`, never `keep` (the entry just made, which
// may alone be larger). An entry's size is the one its digest file records
// (the pull measured it), else its files' sizes. `max_bytes` 0: no bound,
// nothing removed. What an earlier removal left half done (an agent that
// stopped in it) goes in any case.
CacheTrim TrimCache(const std::string& root, uint64_t max_bytes, const std::string& keep);

}  // namespace portolan::agent
