// SPDX-License-Identifier: Apache-2.0
#include "portolan/agent/staging_cache.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "portolan/base/strings.h"

namespace portolan::agent {
namespace fs = std::filesystem;

namespace {

// Renamed out of the way, being removed.
constexpr char kGone[] = ".gone-";

uint64_t EntryBytes(const fs::path& entry) {
  uint64_t bytes = 0;
  if (std::ifstream(entry / kCacheDigest) >> bytes) return bytes;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(entry, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) bytes += it->file_size(ec);
  }
  return bytes;
}

struct Entry {
  struct timespec used;
  fs::path path;
  uint64_t bytes;
};

}  // namespace

void TouchCacheEntry(const std::string& entry) {
  utimensat(AT_FDCWD, entry.c_str(), nullptr, 0);  // now; a failure only ages it
}

CacheTrim TrimCache(const std::string& root, uint64_t max_bytes, const std::string& keep) {
  CacheTrim out;
  std::vector<Entry> entries;
  std::error_code ec;
  for (const auto& dataset : fs::directory_iterator(root, ec)) {
    if (!dataset.is_directory(ec)) continue;
    std::error_code dec;
    for (const auto& version : fs::directory_iterator(dataset.path(), dec)) {
      // v<version> only: not the .new-* a stage is filling. A .gone-* is
      // what a removal left (another trim's now, or one the agent stopped in).
      const std::string name = version.path().filename().string();
      if (name.rfind(kGone, 0) == 0) {
        std::error_code rec;
        fs::remove_all(version.path(), rec);
        continue;
      }
      if (name.rfind("v", 0) != 0) continue;
      struct stat st;
      if (stat(version.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
      const uint64_t bytes = EntryBytes(version.path());
      out.bytes_kept += bytes;
      entries.push_back({st.st_mtim, version.path(), bytes});
    }
  }
  if (max_bytes == 0) return out;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.used.tv_sec, a.used.tv_nsec, a.path) <
           std::tie(b.used.tv_sec, b.used.tv_nsec, b.path);
  });
  for (const Entry& e : entries) {
    if (out.bytes_kept <= max_bytes) break;
    if (e.path == fs::path(keep)) continue;
    // Out of the way first: a stage looking for v<version> finds none.
    const fs::path gone = e.path.parent_path() / absl::StrCat(kGone, base::NewId("c"));
    fs::rename(e.path, gone, ec);
    if (ec) continue;  // another trim took it
    fs::remove_all(gone, ec);
    out.entries_removed++;
    out.bytes_removed += e.bytes;
    out.bytes_kept -= e.bytes;
  }
  return out;
}

}  // namespace portolan::agent
