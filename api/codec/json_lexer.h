// SPDX-License-Identifier: Apache-2.0
// Private to the codec: the lexical layer of the strict JSON walk
// (strict_json.cc): RFC 8259 strings, numbers and literals over a text,
// errors as InvalidField statuses naming the field path and the byte.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"

namespace portolan::codec::internal {

// Reads one text front to back; not thread-safe (one walk at a time). The
// text must outlive it.
class JsonLexer {
 protected:
  explicit JsonLexer(absl::string_view text) : s_(text) {}

  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool AtEnd() const { return pos_ >= s_.size(); }
  void SkipWs() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  absl::Status Syntax(const std::string& path, absl::string_view what) const {
    return InvalidField(path, absl::StrCat("malformed JSON at byte ", pos_, ": ", what));
  }
  // A string literal, decoded into *out (escapes resolved).
  absl::Status String(const std::string& path, std::string* out) {
    if (Peek() != '"') {
      return Syntax(path, Peek() == '\'' ? "strings take double quotes, not single"
                                         : "expected a string in double quotes");
    }
    ++pos_;
    out->clear();
    while (true) {
      if (AtEnd()) return Syntax(path, "unterminated string");
      const unsigned char c = s_[pos_++];
      if (c == '"') return absl::OkStatus();
      if (c < 0x20) return Syntax(path, "raw control character in a string (escape it)");
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      if (AtEnd()) return Syntax(path, "unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return Syntax(path, "\\u needs four hex digits");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo = 0;
            if (pos_ + 1 < s_.size() && s_[pos_] == '\\' && s_[pos_ + 1] == 'u') {
              pos_ += 2;
              if (!Hex4(&lo) || lo < 0xDC00 || lo > 0xDFFF)
                return Syntax(path, "unpaired UTF-16 surrogate");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              return Syntax(path, "unpaired UTF-16 surrogate");
            }
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Syntax(path, "unpaired UTF-16 surrogate");
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Syntax(path,
                        absl::StrCat("invalid escape '\\", base::CleanForMessage({&e, 1}), "'"));
      }
    }
  }
  bool Hex4(uint32_t* out) {
    if (pos_ + 4 > s_.size()) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_ + i];
      int d = absl::ascii_isdigit(c)   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) return false;
      v = v * 16 + d;
    }
    pos_ += 4;
    *out = v;
    return true;
  }
  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // A JSON number; *integral tells whether it has no fraction or exponent.
  absl::Status Number(const std::string& path, absl::string_view* text, bool* integral) {
    const size_t start = pos_;
    if (Peek() == '-') ++pos_;
    if (Peek() == '0') {
      ++pos_;
    } else if (absl::ascii_isdigit(Peek())) {
      while (absl::ascii_isdigit(Peek())) ++pos_;
    } else {
      return Syntax(path, "expected a number");
    }
    *integral = true;
    if (Peek() == '.') {
      *integral = false;
      ++pos_;
      if (!absl::ascii_isdigit(Peek())) return Syntax(path, "expected digits after '.'");
      while (absl::ascii_isdigit(Peek())) ++pos_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      *integral = false;
      ++pos_;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (!absl::ascii_isdigit(Peek())) return Syntax(path, "expected digits in the exponent");
      while (absl::ascii_isdigit(Peek())) ++pos_;
    }
    *text = s_.substr(start, pos_ - start);
    return absl::OkStatus();
  }

  bool Literal(absl::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

}  // namespace portolan::codec::internal
