// SPDX-License-Identifier: Apache-2.0
// A direct proto3 JSON printer over protobuf reflection.
//
// Why: protobuf's MessageToJsonString (3.21) converts every message to its
// binary form and back through a TypeResolver that rebuilds
// google.protobuf.Type descriptions for each call; perf showed it as the
// largest allocator in the REST submit path (tests/bench/rest_wrk.sh). This
// printer writes the same JSON as MessageToJsonString with
// preserve_proto_field_names and always_print_primitive_fields, byte for
// byte (checked by CodecTest and the fuzz_job_json target), and declines
// (returns false) for what it does not cover, so the caller falls back to
// protobuf: well-known types other than Timestamp, and pretty printing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/reflection.h"
#include "portolan/codec/codec.h"

namespace portolan::codec {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

void AppendString(std::string* out, const std::string& s) {
  // protobuf's JSON escaping: quotes, backslash, control characters, and
  // <, >, DEL and U+2028/U+2029 as \u escapes (safe to embed in HTML/JS).
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out->append("\\\"");
        continue;
      case '\\':
        out->append("\\\\");
        continue;
      case '\b':
        out->append("\\b");
        continue;
      case '\f':
        out->append("\\f");
        continue;
      case '\n':
        out->append("\\n");
        continue;
      case '\r':
        out->append("\\r");
        continue;
      case '\t':
        out->append("\\t");
        continue;
      default:
        break;
    }
    if (c < 0x20 || c == '<' || c == '>' || c == 0x7f) {
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xf]);
    } else if (c == 0xe2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(s[i + 2]) == 0xa8 ||
                static_cast<unsigned char>(s[i + 2]) == 0xa9)) {
      out->append(static_cast<unsigned char>(s[i + 2]) == 0xa8 ? "\\u2028" : "\\u2029");
      i += 2;
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  out->push_back('"');
}

template <class F>
void AppendFloat(std::string* out, F v) {
  if (std::isnan(v)) {
    out->append("\"NaN\"");
    return;
  }
  if (std::isinf(v)) {
    out->append(v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return;
  }
  // protobuf's SimpleDtoa/SimpleFtoa: %.15g (%.6g for float) when that
  // reads back exactly, otherwise %.17g (%.9g).
  constexpr bool kDouble = sizeof(F) == sizeof(double);
  char buf[64];
  snprintf(buf, sizeof(buf), kDouble ? "%.15g" : "%.6g", static_cast<double>(v));
  if (static_cast<F>(strtod(buf, nullptr)) != v)
    snprintf(buf, sizeof(buf), kDouble ? "%.17g" : "%.9g", static_cast<double>(v));
  out->append(buf);
}

// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protobuf writes it.
bool AppendTimestamp(std::string* out, const Message& m) {
  const Descriptor* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  const int64_t seconds = r->GetInt64(m, d->FindFieldByNumber(1));
  const int32_t nanos = r->GetInt32(m, d->FindFieldByNumber(2));
  // protobuf refuses what RFC 3339 cannot write: leave those to it.
  if (seconds < -62135596800 || seconds > 253402300799 || nanos < 0 || nanos > 999999999)
    return false;
  const absl::Time t = absl::FromUnixSeconds(seconds);
  out->push_back('"');
  out->append(absl::FormatTime("%Y-%m-%dT%H:%M:%S", t, absl::UTCTimeZone()));
  if (nanos != 0) {
    char frac[16];
    if (nanos % 1000000 == 0) {
      snprintf(frac, sizeof(frac), ".%03d", nanos / 1000000);
    } else if (nanos % 1000 == 0) {
      snprintf(frac, sizeof(frac), ".%06d", nanos / 1000);
    } else {
      snprintf(frac, sizeof(frac), ".%09d", nanos);
    }
    out->append(frac);
  }
  out->append("Z\"");
  return true;
}

bool AppendMessage(std::string* out, const Message& m);

// One value of `f` (the i-th when repeated, -1 when singular).
bool AppendValue(std::string* out, const Message& m, const FieldDescriptor* f, int i,
                 bool map_key = false) {
  const Reflection* r = m.GetReflection();
  const bool rep = i >= 0;
  // Map keys are always strings; 64-bit integers are strings anywhere.
  auto number_or_key = [&](const std::string& s) {
    if (map_key) {
      AppendString(out, s);
    } else {
      out->append(s);
    }
  };
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      number_or_key(absl::StrCat(rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f)));
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
      number_or_key(absl::StrCat(rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f)));
      return true;
    case FieldDescriptor::CPPTYPE_INT64:
      AppendString(out, absl::StrCat(rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f)));
      return true;
    case FieldDescriptor::CPPTYPE_UINT64:
      AppendString(out, absl::StrCat(rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f)));
      return true;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      AppendFloat(out, rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f));
      return true;
    case FieldDescriptor::CPPTYPE_FLOAT:
      AppendFloat(out, rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f));
      return true;
    case FieldDescriptor::CPPTYPE_BOOL:
      number_or_key((rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f)) ? "true" : "false");
      return true;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int v = rep ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
      const EnumValueDescriptor* e = f->enum_type()->FindValueByNumber(v);
      if (e != nullptr) {
        AppendString(out, e->name());
      } else {
        out->append(absl::StrCat(v));
      }
      return true;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, i, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        AppendString(out, absl::Base64Escape(s));
      } else {
        AppendString(out, s);
      }
      return true;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return AppendMessage(out, rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f));
  }
  return false;
}

bool KeyLess(const Message& a, const Message& b, const FieldDescriptor* key) {
  const Reflection* ra = a.GetReflection();
  const Reflection* rb = b.GetReflection();
  switch (key->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return ra->GetInt32(a, key) < rb->GetInt32(b, key);
    case FieldDescriptor::CPPTYPE_UINT32:
      return ra->GetUInt32(a, key) < rb->GetUInt32(b, key);
    case FieldDescriptor::CPPTYPE_INT64:
      return ra->GetInt64(a, key) < rb->GetInt64(b, key);
    case FieldDescriptor::CPPTYPE_UINT64:
      return ra->GetUInt64(a, key) < rb->GetUInt64(b, key);
    case FieldDescriptor::CPPTYPE_BOOL:
      return ra->GetBool(a, key) < rb->GetBool(b, key);
    default: {
      std::string sa, sb;
      return ra->GetStringReference(a, key, &sa) < rb->GetStringReference(b, key, &sb);
    }
  }
}

// `"name":value` for one field, with the comma before it unless first.
bool AppendField(std::string* out, const Message& m, const FieldDescriptor* f, bool* first) {
  const Reflection* r = m.GetReflection();
  if (!*first) out->push_back(',');
  *first = false;
  AppendString(out, f->name());
  out->push_back(':');
  if (f->is_map()) {
    const FieldDescriptor* key = f->message_type()->map_key();
    const FieldDescriptor* value = f->message_type()->map_value();
    out->push_back('{');
    // Keys in order (numbers by value), so the output is deterministic;
    // protobuf's printer uses the map's own (unspecified) order.
    const int size = r->FieldSize(m, f);
    std::vector<const Message*> entries(size);
    for (int i = 0; i < size; ++i) entries[i] = &r->GetRepeatedMessage(m, f, i);
    std::sort(entries.begin(), entries.end(),
              [key](const Message* a, const Message* b) { return KeyLess(*a, *b, key); });
    for (int i = 0; i < size; ++i) {
      if (i > 0) out->push_back(',');
      if (!AppendValue(out, *entries[i], key, -1, /*map_key=*/true)) return false;
      out->push_back(':');
      if (!AppendValue(out, *entries[i], value, -1)) return false;
    }
    out->push_back('}');
    return true;
  }
  if (f->is_repeated()) {
    out->push_back('[');
    const int size = r->FieldSize(m, f);
    for (int i = 0; i < size; ++i) {
      if (i > 0) out->push_back(',');
      if (!AppendValue(out, m, f, i)) return false;
    }
    out->push_back(']');
    return true;
  }
  return AppendValue(out, m, f, -1);
}

bool AppendMessage(std::string* out, const Message& m) {
  const Descriptor* d = m.GetDescriptor();
  if (d->file()->name().rfind("google/protobuf/", 0) == 0) {
    if (d->full_name() == "google.protobuf.Timestamp") return AppendTimestamp(out, m);
    return false;  // other well-known types: protobuf's printer
  }
  const Reflection* r = m.GetReflection();
  out->push_back('{');
  bool first = true;
  // protobuf's field order (its DefaultValueObjectWriter): first the fields
  // outside oneofs in declaration order, set messages among them; then, by
  // field number, what it renders as a plain value or does not pre-fill:
  // set Timestamps and set oneof members (proto3 `optional` included).
  auto is_timestamp = [](const FieldDescriptor* f) {
    return f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated() &&
           f->message_type()->full_name() == "google.protobuf.Timestamp";
  };
  std::vector<const FieldDescriptor*> late;
  for (int n = 0; n < d->field_count(); ++n) {
    const FieldDescriptor* f = d->field(n);
    const bool in_oneof = f->containing_oneof() != nullptr;
    if (in_oneof || is_timestamp(f)) {
      if (r->HasField(m, f)) late.push_back(f);
      continue;
    }
    if (!f->is_repeated() && f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
        !r->HasField(m, f))
      continue;  // unset messages are left out; empty repeated and maps print as [] and {}
    if (!AppendField(out, m, f, &first)) return false;
  }
  std::sort(late.begin(), late.end(), [](const FieldDescriptor* a, const FieldDescriptor* b) {
    return a->number() < b->number();
  });
  for (const FieldDescriptor* f : late) {
    if (!AppendField(out, m, f, &first)) return false;
  }
  out->push_back('}');
  return true;
}

}  // namespace

bool internal::FastJson(const google::protobuf::Message& msg, std::string* out) {
  out->clear();
  return AppendMessage(out, msg);
}

}  // namespace portolan::codec
