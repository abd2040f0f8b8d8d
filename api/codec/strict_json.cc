// SPDX-License-Identifier: Apache-2.0
// Strict JSON, checked against a message type before protobuf's parser (which
// is lenient: single quotes, raw control characters, duplicate keys with the
// last one winning, a scalar or an object taken as a one-element list, enum
// numbers, "NaN" and "Infinity") sees the text. Everything here is RFC 8259
// plus the schema's types; errors name the field path.
//
// The same walk also fills the message (ParseStrictJson), through reflection:
// protobuf's JsonStringToMessage (3.21) turns the text into a binary message
// through a TypeResolver and parses that, and was the largest single cost of
// a REST submit (docs/performance.md). What this walk does not cover it
// declines, and ParseJson lets protobuf parse the text instead: bytes fields,
// well-known types (Timestamp included), two members of one oneof, a null map
// value, invalid UTF-8, numbers protobuf would refuse. A parse that declines
// checks the whole text all the same, so its errors are the strict ones.
#include <cmath>
#include <cstdlib>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/reflection.h"
#include "google/protobuf/stubs/common.h"
#include "json_lexer.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/options.pb.h"

namespace portolan::codec::internal {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr int kMaxDepth = 64;

class StrictJson : public JsonLexer {
 public:
  StrictJson(absl::string_view text, JsonMode mode) : JsonLexer(text), mode_(mode) {}

  // Checks the text against `d`; fills `out` (of type `d`) unless it is null
  // or the walk declined (declined()).
  absl::Status Check(const Descriptor* d, Message* out) {
    SkipWs();
    if (Peek() != '{') return InvalidField("", "body must be a JSON object");
    if (absl::Status st = MessageValue(d, "", 0, out); !st.ok()) return st;
    SkipWs();
    if (pos_ != s_.size()) return Syntax("", "unexpected text after the JSON document");
    return absl::OkStatus();
  }

  bool declined() const { return declined_; }

 private:
  // Where a value goes: `m` owns field `f`; null when only checking, or once
  // the walk declined.
  Message* Into(Message* m) const { return declined_ ? nullptr : m; }
  void Decline() { declined_ = true; }
  static bool ValidUtf8(const std::string& s) {
    return google::protobuf::internal::IsStructurallyValidUTF8(s.data(),
                                                               static_cast<int>(s.size()));
  }
  // Before `f` is set in `m`: a second member of one oneof is protobuf's to
  // judge.
  bool OneofTaken(const Message& m, const FieldDescriptor* f) {
    const google::protobuf::OneofDescriptor* o = f->real_containing_oneof();
    if (o != nullptr && m.GetReflection()->HasOneof(m, o)) {
      Decline();
      return true;
    }
    return false;
  }

  static std::string Child(const std::string& path, absl::string_view name) {
    return path.empty() ? std::string(name) : absl::StrCat(path, ".", name);
  }

  // A message: an object whose keys are fields, each at most once.
  absl::Status MessageValue(const Descriptor* d, const std::string& path, int depth, Message* m) {
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
      if (absl::Status st = FieldValue(f, child, depth + 1, m); !st.ok()) return st;
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

  absl::Status FieldValue(const FieldDescriptor* f, const std::string& path, int depth,
                          Message* m) {
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
        Message* entry = nullptr;
        if (Into(m) != nullptr) {
          if (s_.substr(pos_, 4) == "null") {
            Decline();
          } else {
            entry = m->GetReflection()->AddMessage(m, f);
            if (!SetMapKey(entry, kf, key)) Decline();
          }
        }
        if (absl::Status st = Single(vf, child, depth + 1, f, entry); !st.ok()) return st;
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
        if (absl::Status st = Single(f, child, depth + 1, f, m); !st.ok()) return st;
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
    return Single(f, path, depth, f, m);
  }

  // Whether `text` (digits, perhaps after '-') fits integer field `f`'s
  // type; when it does and `m` is not null, sets it in `m` (adds it, for a
  // repeated field).
  static bool PutInteger(const FieldDescriptor* f, absl::string_view text, Message* m) {
    const Reflection* r = m != nullptr ? m->GetReflection() : nullptr;
    const bool add = f->is_repeated();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: {
        int32_t v;
        if (!absl::SimpleAtoi(text, &v)) return false;
        if (m != nullptr) add ? r->AddInt32(m, f, v) : r->SetInt32(m, f, v);
        return true;
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint32_t v;
        if (text.front() == '-' || !absl::SimpleAtoi(text, &v)) return false;
        if (m != nullptr) add ? r->AddUInt32(m, f, v) : r->SetUInt32(m, f, v);
        return true;
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t v;
        if (!absl::SimpleAtoi(text, &v)) return false;
        if (m != nullptr) add ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
        return true;
      }
      default: {
        uint64_t v;
        if (text.front() == '-' || !absl::SimpleAtoi(text, &v)) return false;
        if (m != nullptr) add ? r->AddUInt64(m, f, v) : r->SetUInt64(m, f, v);
        return true;
      }
    }
  }

  // A map entry's key, from its JSON text; false when protobuf should judge.
  bool SetMapKey(Message* entry, const FieldDescriptor* kf, const std::string& key) {
    const Reflection* r = entry->GetReflection();
    switch (kf->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        if (!ValidUtf8(key)) return false;
        r->SetString(entry, kf, key);
        return true;
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT64:
        return PutInteger(kf, key, entry);
      default:
        return false;
    }
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

  // One value of `f`'s type (an element, for a repeated field), set in `m`
  // (added, for a repeated field) unless `m` is null.
  // `range` carries the (minimum)/(maximum) options: the field itself, or the
  // map or repeated field an element belongs to.
  absl::Status Single(const FieldDescriptor* f, const std::string& path, int depth,
                      const FieldDescriptor* range, Message* m) {
    if (Peek() == 'n' && Literal("null")) return absl::OkStatus();
    m = Into(m);
    if (m != nullptr && OneofTaken(*m, f)) m = nullptr;
    const Reflection* r = m != nullptr ? m->GetReflection() : nullptr;
    const bool add = f->is_repeated();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        if (f->message_type()->file()->package() == "google.protobuf") {
          if (m != nullptr) Decline();  // Timestamp and the other well-known types
          if (f->message_type()->full_name() == "google.protobuf.Timestamp") {
            std::string ignored;
            if (Peek() != '"') {
              return InvalidField(path, absl::StrCat(path, " must be an RFC 3339 time string"));
            }
            return String(path, &ignored);
          }
          return MessageValue(f->message_type(), path, depth, nullptr);
        }
        Message* sub = m == nullptr ? nullptr : add ? r->AddMessage(m, f) : r->MutableMessage(m, f);
        return MessageValue(f->message_type(), path, depth, sub);
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string text;
        if (Peek() != '"') return InvalidField(path, absl::StrCat(path, " must be a string"));
        if (absl::Status st = String(path, &text); !st.ok()) return st;
        if (m == nullptr) return absl::OkStatus();
        if (f->type() == FieldDescriptor::TYPE_BYTES || !ValidUtf8(text)) {
          Decline();  // base64, and what protobuf makes of broken UTF-8
        } else if (add) {
          r->AddString(m, f, std::move(text));
        } else {
          r->SetString(m, f, std::move(text));
        }
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool v = true;
        if (!Literal("true")) {
          if (!Literal("false"))
            return InvalidField(path, absl::StrCat(path, " must be true or false"));
          v = false;
        }
        if (m != nullptr) add ? r->AddBool(m, f, v) : r->SetBool(m, f, v);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const std::string words = EnumWordList(f);
        if (Peek() != '"' && mode_ == JsonMode::kAny) {
          // A newer peer's value this build does not know (proto3 writes it
          // as a number); requests must use the words.
          absl::string_view text;
          bool integral = false;
          absl::Status st = Number(path, &text, &integral);
          if (st.ok() && integral) {
            int32_t v;
            if (m != nullptr && !absl::SimpleAtoi(text, &v)) {
              Decline();
            } else if (m != nullptr) {
              add ? r->AddEnumValue(m, f, v) : r->SetEnumValue(m, f, v);
            }
            return absl::OkStatus();
          }
        }
        if (Peek() != '"') {
          return InvalidField(
              path, absl::StrCat(path, " must be one of ", words, " (a word, not a number)"));
        }
        std::string word;
        if (absl::Status st = String(path, &word); !st.ok()) return st;
        const google::protobuf::EnumValueDescriptor* v = f->enum_type()->FindValueByName(word);
        if (v == nullptr) {
          return InvalidField(path, absl::StrCat("invalid value \"", base::CleanForMessage(word),
                                                 "\" for ", path, ": expected one of ", words));
        }
        if (m != nullptr) add ? r->AddEnum(m, f, v) : r->SetEnum(m, f, v);
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
        const bool is_float = f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT;
        const double limit = is_float ? 3.4028234663852886e38 : 1.7976931348623157e308;
        if (!std::isfinite(v) || std::fabs(v) > limit) {
          return InvalidField(
              path, absl::StrCat(path, " is out of range: ", base::CleanForMessage(text, 32)));
        }
        if (absl::Status st = InRange(range, path, v, text); !st.ok()) return st;
        if (m == nullptr) return absl::OkStatus();
        if (is_float) {
          add ? r->AddFloat(m, f, static_cast<float>(v)) : r->SetFloat(m, f, static_cast<float>(v));
        } else {
          add ? r->AddDouble(m, f, v) : r->SetDouble(m, f, v);
        }
        return absl::OkStatus();
      }
      default:
        return Integer(f, path, range, m);
    }
  }

  // An integer value of `f` (see Single).
  absl::Status Integer(const FieldDescriptor* f, const std::string& path,
                       const FieldDescriptor* range, Message* m) {
    const bool wide = f->cpp_type() == FieldDescriptor::CPPTYPE_INT64 ||
                      f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
    std::string digits;
    absl::string_view text;
    if (Peek() == '"' && wide) {
      // proto3 JSON writes 64-bit integers as strings.
      if (absl::Status st = String(path, &digits); !st.ok()) return st;
      bool ok = !digits.empty();
      for (size_t i = 0; i < digits.size(); ++i)
        ok = ok && (absl::ascii_isdigit(digits[i]) || (i == 0 && digits[i] == '-'));
      if (!ok) return InvalidField(path, absl::StrCat(path, " must be an integer"));
      text = digits;
    } else {
      bool integral = false;
      absl::Status st = Number(path, &text, &integral);
      if (!st.ok() || !integral) {
        return InvalidField(path, absl::StrCat(path, " must be an integer"));
      }
    }
    const bool quoted = !digits.empty();
    const bool fits = PutInteger(f, text, m);
    if (quoted) {
      // As before this walk filled messages: the digits' range is protobuf's
      // to judge (and to word).
      if (!fits) Decline();
      return absl::OkStatus();
    }
    if (!fits) {
      return InvalidField(path, absl::StrCat(path, " is out of range for a ", f->type_name(), ": ",
                                             base::CleanForMessage(text, 32)));
    }
    return InRange(range, path, std::strtod(std::string(text).c_str(), nullptr), text);
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

  JsonMode mode_;
  bool ranges_ = true;  // off inside a message that checks its own ranges
  bool declined_ = false;
};

}  // namespace

absl::Status CheckStrictJson(absl::string_view json, const google::protobuf::Descriptor* type,
                             JsonMode mode) {
  return StrictJson(json, mode).Check(type, nullptr);
}

absl::Status ParseStrictJson(absl::string_view json, google::protobuf::Message* msg, JsonMode mode,
                             bool* filled) {
  StrictJson parser(json, mode);
  absl::Status st = parser.Check(msg->GetDescriptor(), msg);
  *filled = st.ok() && !parser.declined();
  return st;
}

}  // namespace portolan::codec::internal
