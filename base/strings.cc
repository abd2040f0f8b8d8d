// SPDX-License-Identifier: Apache-2.0
#include "portolan/base/strings.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace portolan::base {

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view s) {
  HostPort hp;
  absl::string_view port_part;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == absl::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("bad address '", s, "': expected [host]:port"));
    }
    hp.host = std::string(s.substr(1, close - 1));
    port_part = s.substr(close + 2);
  } else {
    size_t colon = s.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad address '", s, "': expected host:port"));
    }
    hp.host = std::string(s.substr(0, colon));
    port_part = s.substr(colon + 1);
  }
  if (hp.host.empty()) hp.host = "127.0.0.1";
  if (hp.host == "localhost") hp.host = "127.0.0.1";
  uint32_t port = 0;
  if (!absl::SimpleAtoi(port_part, &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad address '", s, "': port must be 0-65535"));
  }
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

std::string NewId(absl::string_view prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  uint64_t v;
  {
    std::lock_guard<std::mutex> lock(mu);
    v = rng();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(prefix);
  out.push_back('-');
  for (int i = 0; i < 12; ++i) out.push_back(kHex[(v >> (i * 4)) & 0xf]);
  return out;
}

std::string NewOrderedId(absl::string_view prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  static uint64_t last = 0;
  constexpr int kRandomBits = 22;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  uint64_t v;
  {
    std::lock_guard<std::mutex> lock(mu);
    const uint64_t fresh = (static_cast<uint64_t>(std::max<int64_t>(ms, 0)) << kRandomBits) |
                           (rng() & ((uint64_t{1} << kRandomBits) - 1));
    v = std::max(last + 1, fresh);
    last = v;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(prefix);
  out.push_back('-');
  for (int i = 15; i >= 0; --i)
    out.push_back(kHex[(v >> (i * 4)) & 0xf]);  // most significant first
  return out;
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  int64_t nanos = absl::ToUnixNanos(t);
  ts.set_seconds(nanos / 1'000'000'000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  if (ts.nanos() < 0) {
    ts.set_seconds(ts.seconds() - 1);
    ts.set_nanos(ts.nanos() + 1'000'000'000);
  }
  return ts;
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

void AppendJsonEscaped(absl::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xf]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
}

std::string FormatIdList(std::vector<uint32_t> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::string out;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!out.empty()) out.push_back(',');
    absl::StrAppend(&out, ids[i]);
    if (j > i) absl::StrAppend(&out, "-", ids[j]);
    i = j + 1;
  }
  return out;
}

std::string SanitizeUtf8(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    unsigned char c = in[i];
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xe  ? 3
                 : (c >> 3) == 0x1e ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= in.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(in[i + k]) >> 6) == 0x2;
    // RFC 3629: no overlong forms, no surrogates (U+D800-DFFF), nothing
    // past U+10FFFF. The second byte's range is what rules these out.
    if (ok && len == 2 && c < 0xc2) ok = false;
    if (ok && len >= 3) {
      const unsigned char c1 = static_cast<unsigned char>(in[i + 1]);
      if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
          (c == 0xf4 && c1 > 0x8f) || c > 0xf4) {
        ok = false;
      }
    }
    if (ok) {
      out.append(in.data() + i, len);
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

std::string ReadTail(const std::string& path, size_t max_bytes, bool* truncated) {
  *truncated = false;
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return "";
  std::streamoff size = f.tellg();
  std::streamoff start = 0;
  if (size > static_cast<std::streamoff>(max_bytes)) {
    start = size - static_cast<std::streamoff>(max_bytes);
    *truncated = true;
  }
  f.seekg(start);
  std::string data(static_cast<size_t>(size - start), '\0');
  f.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<size_t>(f.gcount()));
  if (*truncated) {
    // Skip continuation bytes so the tail starts on a character boundary.
    size_t skip = 0;
    while (skip < data.size() && skip < 3 && (static_cast<unsigned char>(data[skip]) >> 6) == 0x2)
      ++skip;
    data.erase(0, skip);
  }
  return SanitizeUtf8(data);
}

bool IsId(absl::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool IsTaskId(absl::string_view s) {
  const size_t open = s.rfind('[');
  if (open == absl::string_view::npos || s.back() != ']' || open + 2 >= s.size() ||
      s.size() - open - 2 > 6)
    return false;
  for (char c : s.substr(open + 1, s.size() - open - 2)) {
    if (c < '0' || c > '9') return false;
  }
  return IsId(s.substr(0, open));
}

bool HasControlCharacters(absl::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool IsPlainText(absl::string_view s, size_t max) {
  return s.size() <= max && !HasControlCharacters(s);
}

bool IsSafeRelativePath(absl::string_view p) {
  if (p.empty() || p.front() == '/' || !IsPlainText(p, 1024)) return false;
  for (absl::string_view part : absl::StrSplit(p, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

std::string CleanForMessage(absl::string_view in, size_t max_bytes) {
  std::string out;
  const std::string valid = SanitizeUtf8(in.substr(0, max_bytes + 4));
  for (size_t i = 0; i < valid.size() && out.size() < max_bytes; ++i) {
    const unsigned char c = valid[i];
    if (c < 0x20 || c == 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (in.size() > max_bytes || out.size() > max_bytes) {
    // Cut at a character boundary, then mark the cut.
    size_t cut = std::min(out.size(), max_bytes);
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) >> 6) == 0x2) --cut;
    out.resize(cut);
    out.append("...");
  }
  return out;
}

}  // namespace portolan::base
