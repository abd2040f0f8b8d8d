// SPDX-License-Identifier: Apache-2.0
// Strict JSON, checked against a message type before protobuf's parser (which
// is lenient: single quotes, raw control characters, duplicate keys with the
// last one winning, a scalar or an object taken as a one-element list, enum
// numbers, "NaN" and "Infinity") sees the text. Everything here is RFC 8259
// plus the schema's types; errors name the field path.
#include <cmath>
#include <cstdlib>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/options.pb.h"

namespace portolan::codec::internal {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

constexpr int kMaxDepth = 64;

class StrictJson {
 public:
  StrictJson(absl::string_view text, JsonMode mode) : s_(text), mode_(mode) {}

  absl::Status Check(const Descriptor* d) {
    SkipWs();
    if (Peek() != '{') return InvalidField("", "body must be a JSON object");
    if (absl::Status st = MessageValue(d, "", 0); !st.ok()) return st;
    SkipWs();
    if (pos_ != s_.size()) return Syntax("", "unexpected text after the JSON document");
    return absl::OkStatus();
  }

 private:
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
  static std::string Child(const std::string& path, absl::string_view name) {
    return path.empty() ? std::string(name) : absl::StrCat(path, ".", name);
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

  // A message: an object whose keys are fields, each at most once.
  absl::Status MessageValue(const Descriptor* d, const std::string& path, int depth) {
    if (depth > kMaxDepth) return InvalidField(path, "JSON nested too deeply");
    if (d->options().GetExtension(v1::ranges_checked_by_validation)) ranges_ = false;
    if (Peek() != '{') return InvalidField(path, absl::StrCat(Name(path), " must be an object"));
    ++pos_;
    std::set<const FieldDescriptor*> seen;
    SkipWs();
    if (Peek() == '}') {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      SkipWs();
      std::string key;
      if (absl::Status st = String(path, &key); !st.ok()) return st;
      const std::string child = Child(path, key);
      const FieldDescriptor* f = d->FindFieldByName(key);
      if (f == nullptr) f = d->FindFieldByCamelcaseName(key);
      if (f == nullptr) {
        return InvalidField(child,
                            absl::StrCat("unknown field '", base::CleanForMessage(child), "'"));
      }
      if (!seen.insert(f).second) {
        return InvalidField(
            child, absl::StrCat("field '", base::CleanForMessage(child), "' is given twice"));
      }
      SkipWs();
      if (Peek() != ':') return Syntax(child, "expected ':' after the key");
      ++pos_;
      SkipWs();
      const size_t value_start = pos_;
      if (absl::Status st = FieldValue(f, child, depth + 1); !st.ok()) return st;
      if (mode_ == JsonMode::kRequest && f->options().GetExtension(v1::output_only) &&
          !IsEmptyValue(f, s_.substr(value_start, pos_ - value_start))) {
        return InvalidField(child,
                            absl::StrCat(child, " is output-only (set by the scheduler); omit it"));
      }
      SkipWs();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') {
        ++pos_;
        return absl::OkStatus();
      }
      return Syntax(child, "expected ',' or '}'");
    }
  }

  static std::string Name(const std::string& path) { return path.empty() ? "the body" : path; }

  // null, "", 0, false, [], {} or an enum's *_unspecified word.
  static bool IsEmptyValue(const FieldDescriptor* f, absl::string_view raw) {
    std::string compact;
    for (char c : raw) {
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') compact.push_back(c);
    }
    if (compact == "null" || compact == "\"\"" || compact == "0" || compact == "false" ||
        compact == "[]" || compact == "{}" || compact == "\"0\"") {
      return true;
    }
    if (f->enum_type() != nullptr && !f->is_repeated()) {
      return compact == absl::StrCat("\"", f->enum_type()->value(0)->name(), "\"");
    }
    return false;
  }

  absl::Status FieldValue(const FieldDescriptor* f, const std::string& path, int depth) {
    if (Literal("null")) return absl::OkStatus();
    if (f->is_map()) {
      if (Peek() != '{') return InvalidField(path, absl::StrCat(path, " must be an object"));
      ++pos_;
      const FieldDescriptor* kf = f->message_type()->map_key();
      const FieldDescriptor* vf = f->message_type()->map_value();
      std::set<std::string> keys;
      SkipWs();
      if (Peek() == '}') {
        ++pos_;
        return absl::OkStatus();
      }
      while (true) {
        SkipWs();
        std::string key;
        if (absl::Status st = String(path, &key); !st.ok()) return st;
        const std::string child = absl::StrCat(path, ".", key);
        if (!keys.insert(key).second) {
          return InvalidField(path, absl::StrCat("key '", base::CleanForMessage(key), "' of ", path,
                                                 " is given twice"));
        }
        if (kf->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
          bool digits = !key.empty();
          for (size_t i = 0; i < key.size(); ++i) {
            digits = digits && (absl::ascii_isdigit(key[i]) || (i == 0 && key[i] == '-'));
          }
          if (!digits) {
            return InvalidField(path, absl::StrCat("keys of ", path, " are integers, not '",
                                                   base::CleanForMessage(key), "'"));
          }
        }
        SkipWs();
        if (Peek() != ':') return Syntax(child, "expected ':' after the key");
        ++pos_;
        SkipWs();
        if (absl::Status st = Single(vf, child, depth + 1, f); !st.ok()) return st;
        SkipWs();
        if (Peek() == ',') {
          ++pos_;
          continue;
        }
        if (Peek() == '}') {
          ++pos_;
          return absl::OkStatus();
        }
        return Syntax(child, "expected ',' or '}'");
      }
    }
    if (f->is_repeated()) {
      if (Peek() != '[') {
        return InvalidField(path, absl::StrCat(path, " must be a list ([...])"));
      }
      ++pos_;
      SkipWs();
      if (Peek() == ']') {
        ++pos_;
        return absl::OkStatus();
      }
      for (size_t i = 0;; ++i) {
        SkipWs();
        const std::string child = absl::StrCat(path, "[", i, "]");
        if (Peek() == 'n' && s_.substr(pos_, 4) == "null")
          return InvalidField(child, absl::StrCat(child, " cannot be null"));
        if (absl::Status st = Single(f, child, depth + 1, f); !st.ok()) return st;
        SkipWs();
        if (Peek() == ',') {
          ++pos_;
          continue;
        }
        if (Peek() == ']') {
          ++pos_;
          return absl::OkStatus();
        }
        return Syntax(child, "expected ',' or ']'");
      }
    }
    return Single(f, path, depth, f);
  }

  // The documented range of `range` (requests only; see options.proto).
  absl::Status InRange(const FieldDescriptor* range, const std::string& path, double v,
                       absl::string_view text) const {
    if (mode_ != JsonMode::kRequest || !ranges_) return absl::OkStatus();
    const auto& o = range->options();
    const bool has_min = o.HasExtension(v1::minimum), has_max = o.HasExtension(v1::maximum);
    if ((has_min && v < o.GetExtension(v1::minimum)) ||
        (has_max && v > o.GetExtension(v1::maximum))) {
      return InvalidField(
          path,
          absl::StrCat(path, " must be ", has_min ? absl::StrCat(o.GetExtension(v1::minimum)) : "",
                       has_min && has_max ? "-" : (has_min ? " or more" : "at most "),
                       has_max ? absl::StrCat(o.GetExtension(v1::maximum)) : "", ", got ",
                       base::CleanForMessage(text, 32)));
    }
    return absl::OkStatus();
  }

  // One value of `f`'s type (an element, for a repeated field).
  // `range` carries the (minimum)/(maximum) options: the field itself, or the
  // map or repeated field an element belongs to.
  absl::Status Single(const FieldDescriptor* f, const std::string& path, int depth,
                      const FieldDescriptor* range) {
    if (Peek() == 'n' && Literal("null")) return absl::OkStatus();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        if (f->message_type()->full_name() == "google.protobuf.Timestamp") {
          std::string ignored;
          if (Peek() != '"') {
            return InvalidField(path, absl::StrCat(path, " must be an RFC 3339 time string"));
          }
          return String(path, &ignored);
        }
        return MessageValue(f->message_type(), path, depth);
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string ignored;
        if (Peek() != '"') return InvalidField(path, absl::StrCat(path, " must be a string"));
        return String(path, &ignored);
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        if (Literal("true") || Literal("false")) return absl::OkStatus();
        return InvalidField(path, absl::StrCat(path, " must be true or false"));
      case FieldDescriptor::CPPTYPE_ENUM: {
        const std::string words = EnumWordList(f);
        if (Peek() != '"' && mode_ == JsonMode::kAny) {
          // A newer peer's value this build does not know (proto3 writes it
          // as a number); requests must use the words.
          absl::string_view text;
          bool integral = false;
          absl::Status st = Number(path, &text, &integral);
          if (st.ok() && integral) return absl::OkStatus();
        }
        if (Peek() != '"') {
          return InvalidField(
              path, absl::StrCat(path, " must be one of ", words, " (a word, not a number)"));
        }
        std::string word;
        if (absl::Status st = String(path, &word); !st.ok()) return st;
        if (f->enum_type()->FindValueByName(word) == nullptr) {
          return InvalidField(path, absl::StrCat("invalid value \"", base::CleanForMessage(word),
                                                 "\" for ", path, ": expected one of ", words));
        }
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        if (Peek() == '"') {
          return InvalidField(path, absl::StrCat(path, " must be a finite number, not a string"));
        }
        absl::string_view text;
        bool integral = false;
        if (absl::Status st = Number(path, &text, &integral); !st.ok()) {
          return InvalidField(path, absl::StrCat(path, " must be a finite number"));
        }
        const double v = std::strtod(std::string(text).c_str(), nullptr);
        const double limit = f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT
                                 ? 3.4028234663852886e38
                                 : 1.7976931348623157e308;
        if (!std::isfinite(v) || std::fabs(v) > limit) {
          return InvalidField(
              path, absl::StrCat(path, " is out of range: ", base::CleanForMessage(text, 32)));
        }
        return InRange(range, path, v, text);
      }
      default: {  // integers
        const bool wide = f->cpp_type() == FieldDescriptor::CPPTYPE_INT64 ||
                          f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
        if (Peek() == '"' && wide) {
          // proto3 JSON writes 64-bit integers as strings.
          std::string digits;
          if (absl::Status st = String(path, &digits); !st.ok()) return st;
          bool ok = !digits.empty();
          for (size_t i = 0; i < digits.size(); ++i)
            ok = ok && (absl::ascii_isdigit(digits[i]) || (i == 0 && digits[i] == '-'));
          if (!ok) return InvalidField(path, absl::StrCat(path, " must be an integer"));
          return absl::OkStatus();
        }
        absl::string_view text;
        bool integral = false;
        absl::Status st = Number(path, &text, &integral);
        if (!st.ok() || !integral) {
          return InvalidField(path, absl::StrCat(path, " must be an integer"));
        }
        bool fits = false;
        switch (f->cpp_type()) {
          case FieldDescriptor::CPPTYPE_INT32: {
            int32_t v;
            fits = absl::SimpleAtoi(text, &v);
            break;
          }
          case FieldDescriptor::CPPTYPE_UINT32: {
            uint32_t v;
            fits = text.front() != '-' && absl::SimpleAtoi(text, &v);
            break;
          }
          case FieldDescriptor::CPPTYPE_INT64: {
            int64_t v;
            fits = absl::SimpleAtoi(text, &v);
            break;
          }
          default: {
            uint64_t v;
            fits = text.front() != '-' && absl::SimpleAtoi(text, &v);
            break;
          }
        }
        if (!fits) {
          return InvalidField(path, absl::StrCat(path, " is out of range for a ", f->type_name(),
                                                 ": ", base::CleanForMessage(text, 32)));
        }
        return InRange(range, path, std::strtod(std::string(text).c_str(), nullptr), text);
      }
    }
  }

  static std::string EnumWordList(const FieldDescriptor* f) {
    std::string out;
    for (int i = 0; i < f->enum_type()->value_count(); ++i) {
      const std::string& n = f->enum_type()->value(i)->name();
      if (absl::EndsWith(n, "_unspecified")) continue;
      absl::StrAppend(&out, out.empty() ? "" : ", ", n);
    }
    return out;
  }

  absl::string_view s_;
  JsonMode mode_;
  bool ranges_ = true;  // off inside a message that checks its own ranges
  size_t pos_ = 0;
};

}  // namespace

absl::Status CheckStrictJson(absl::string_view json, const google::protobuf::Descriptor* type,
                             JsonMode mode) {
  return StrictJson(json, mode).Check(type);
}

}  // namespace portolan::codec::internal
