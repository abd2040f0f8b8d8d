// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace portolan::base {

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;
};

// Parses "host:port", "[v6]:port" or ":port" (host defaults to 127.0.0.1).
absl::StatusOr<HostPort> ParseHostPort(absl::string_view s);

// A random identifier "<prefix>-<12 lowercase hex digits>". Thread-safe.
std::string NewId(absl::string_view prefix);

// A time-ordered identifier "<prefix>-<16 lowercase hex digits>": the Unix
// time in milliseconds in the top 42 bits, 22 random bits below, and larger
// than every id this function returned before in this process (one more
// than the last when the clock has not moved past it). So ids made in one
// process never repeat, ids of two processes (an HA peer, the process before
// a restart) repeat only within the same millisecond with the same 22 random
// bits, and ids sort in the order they were made: records keyed by them go
// at the end of the store's index instead of dirtying a random page of it
// per insert. Not for secrets: the time is readable. Thread-safe.
std::string NewOrderedId(absl::string_view prefix);

google::protobuf::Timestamp ToProto(absl::Time t);
absl::Time FromProto(const google::protobuf::Timestamp& ts);

// Last `max_bytes` of a file (cut at a UTF-8 boundary); `truncated` tells
// whether anything was dropped. Missing file reads as empty.
std::string ReadTail(const std::string& path, size_t max_bytes, bool* truncated);

// Appends `s` to `out` as the inside of a JSON string (quotes and control
// characters escaped, no surrounding quotes).
void AppendJsonEscaped(absl::string_view s, std::string* out);

// "0-3,8,10-11" for a list of ids (sorted, duplicates dropped).
std::string FormatIdList(std::vector<uint32_t> ids);

// Makes arbitrary bytes valid UTF-8 (invalid sequences become U+FFFD), so
// process output can travel in proto string fields and JSON.
std::string SanitizeUtf8(absl::string_view in);

// An id as the API takes them everywhere (jobs, tenants, sites, links,
// zones, datasets, agents): [A-Za-z0-9._-]{1,128}.
bool IsId(absl::string_view s);
// A task of a job array: "<id>[<index>]", the id as IsId, the index decimal.
bool IsTaskId(absl::string_view s);
inline constexpr char kIdRule[] = "1-128 letters, digits, '-', '_' or '.'";

// True when `s` holds an ASCII control character (below 0x20, or DEL).
bool HasControlCharacters(absl::string_view s);

// Free text the scheduler stores and prints (labels, origins, sectors):
// at most `max` bytes and no control characters to split log lines or drive
// a terminal.
bool IsPlainText(absl::string_view s, size_t max);

// A path below some root that cannot leave it: relative, non-empty, no empty,
// "." or ".." part, no control characters, at most 1024 bytes. (Symbolic
// links on disk are the reader's to refuse: this looks at the text only.)
bool IsSafeRelativePath(absl::string_view p);

// Untrusted text made fit for an error message or a log line: control
// characters and invalid UTF-8 escaped as \xNN, cut to `max_bytes` with "..."
// when longer. Ids, paths and values echoed back to a client or written to a
// log go through this, so they cannot split lines or drive a terminal.
std::string CleanForMessage(absl::string_view in, size_t max_bytes = 128);

}  // namespace portolan::base
