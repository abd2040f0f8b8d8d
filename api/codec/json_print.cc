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
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
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

// Bytes that print as they are inside a JSON string (see AppendString).
constexpr std::array<bool, 256> kPlainByte = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x100; ++c) t[c] = true;
  for (const int c : std::array<int, 6>{'"', '\\', '<', '>', 0x7f, 0xe2})
    t[c] = false;  // 0xe2: maybe U+2028/9
  return t;
}();

void AppendString(std::string* out, absl::string_view s) {
  // protobuf's JSON escaping: quotes, backslash, control characters, and
  // <, >, DEL and U+2028/U+2029 as \u escapes (safe to embed in HTML/JS).
  // Runs of bytes that need none are appended at once.
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run = 0;  // where the bytes not yet appended begin
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (kPlainByte[c]) continue;
    const char* escape = nullptr;
    size_t width = 1;  // input bytes the escape replaces
    switch (c) {
      case '"':
        escape = "\\\"";
        break;
      case '\\':
        escape = "\\\\";
        break;
      case '\b':
        escape = "\\b";
        break;
      case '\f':
        escape = "\\f";
        break;
      case '\n':
        escape = "\\n";
        break;
      case '\r':
        escape = "\\r";
        break;
      case '\t':
        escape = "\\t";
        break;
      case 0xe2:
        if (i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
            (static_cast<unsigned char>(s[i + 2]) == 0xa8 ||
             static_cast<unsigned char>(s[i + 2]) == 0xa9)) {
          escape = static_cast<unsigned char>(s[i + 2]) == 0xa8 ? "\\u2028" : "\\u2029";
          width = 3;
          break;
        }
        continue;  // another character starting with 0xe2: as it is
      default:
        break;
    }
    out->append(s.data() + run, i - run);
    if (escape != nullptr) {
      out->append(escape);
    } else {  // other control characters, <, > and DEL
      const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
      out->append(u, sizeof(u));
    }
    i += width - 1;
    run = i + 1;
  }
  out->append(s.data() + run, s.size() - run);
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

// `v` as exactly `width` decimal digits at `p` (v >= 0, < 10^width).
void PutDigits(char* p, int64_t v, int width) {
  for (int k = width - 1; k >= 0; --k, v /= 10) p[k] = static_cast<char>('0' + v % 10);
}

// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protobuf writes it.
bool AppendTimestamp(std::string* out, const Message& m, const Descriptor* d, const Reflection* r) {
  const int64_t seconds = r->GetInt64(m, d->field(0));  // google.protobuf.Timestamp.seconds
  const int32_t nanos = r->GetInt32(m, d->field(1));    // and .nanos
  // protobuf refuses what RFC 3339 cannot write: leave those to it.
  if (seconds < -62135596800 || seconds > 253402300799 || nanos < 0 || nanos > 999999999)
    return false;
  const absl::CivilSecond t =
      absl::ToCivilSecond(absl::FromUnixSeconds(seconds), absl::UTCTimeZone());
  char buf[] = "\"0000-00-00T00:00:00.000000000Z\"";
  PutDigits(buf + 1, t.year(), 4);  // years 1 to 9999 (checked above)
  PutDigits(buf + 6, t.month(), 2);
  PutDigits(buf + 9, t.day(), 2);
  PutDigits(buf + 12, t.hour(), 2);
  PutDigits(buf + 15, t.minute(), 2);
  PutDigits(buf + 18, t.second(), 2);
  size_t end = 20;  // after the seconds
  if (nanos != 0) {
    const int digits = nanos % 1000000 == 0 ? 3 : nanos % 1000 == 0 ? 6 : 9;
    PutDigits(buf + 21, digits == 3 ? nanos / 1000000 : digits == 6 ? nanos / 1000 : nanos, digits);
    end = 21 + digits;
  }
  buf[end] = 'Z';
  buf[end + 1] = '"';
  out->append(buf, end + 2);
  return true;
}

// A message type's fields in protobuf's print order, worked out once per
// type (PlanOf) rather than for each message printed.
struct Plan {
  // google.protobuf.Timestamp, another well-known type, or one of ours.
  enum class Kind { kMessage, kTimestamp, kOtherWellKnown } kind = Kind::kMessage;
  struct Field {
    const FieldDescriptor* f;
    std::string key;  // ,"name": (proto field names need no escaping)
    // Printed only when set: a singular message, a Timestamp, a oneof member.
    bool only_when_set;
  };
  // protobuf's order (its DefaultValueObjectWriter): first the fields outside
  // oneofs in declaration order, set messages among them; then, by field
  // number, what it renders as a plain value or does not pre-fill: set
  // Timestamps and set oneof members (proto3 `optional` included).
  std::vector<Field> fields;
};

std::unique_ptr<Plan> MakePlan(const Descriptor* d) {
  auto plan = std::make_unique<Plan>();
  if (d->file()->name().rfind("google/protobuf/", 0) == 0) {
    plan->kind = d->full_name() == "google.protobuf.Timestamp" ? Plan::Kind::kTimestamp
                                                               : Plan::Kind::kOtherWellKnown;
    return plan;
  }
  auto is_timestamp = [](const FieldDescriptor* f) {
    return f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated() &&
           f->message_type()->full_name() == "google.protobuf.Timestamp";
  };
  std::vector<Plan::Field> late;
  for (int n = 0; n < d->field_count(); ++n) {
    const FieldDescriptor* f = d->field(n);
    Plan::Field field{f, absl::StrCat(",\"", f->name(), "\":"), false};
    if (f->containing_oneof() != nullptr || is_timestamp(f)) {
      field.only_when_set = true;
      late.push_back(std::move(field));
      continue;
    }
    // Unset messages are left out; empty repeated and maps print as [] and {}.
    field.only_when_set = !f->is_repeated() && f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
    plan->fields.push_back(std::move(field));
  }
  std::sort(late.begin(), late.end(), [](const Plan::Field& a, const Plan::Field& b) {
    return a.f->number() < b.f->number();
  });
  for (Plan::Field& f : late) plan->fields.push_back(std::move(f));
  return plan;
}

// The plan of `d`. Types of the generated pool live as long as the process,
// so their plans are kept, per thread (no lock on the REST path); other
// types (a dynamic pool may free them) get one made into `scratch`.
const Plan& PlanOf(const Descriptor* d, std::unique_ptr<Plan>* scratch) {
  if (d->file()->pool() != google::protobuf::DescriptorPool::generated_pool()) {
    *scratch = MakePlan(d);
    return **scratch;
  }
  thread_local absl::flat_hash_map<const Descriptor*, std::unique_ptr<Plan>> plans;
  std::unique_ptr<Plan>& plan = plans[d];
  if (plan == nullptr) plan = MakePlan(d);
  return *plan;
}

bool AppendMessage(std::string* out, const Message& m);

// An integer, inside quotes when `quoted` (map keys, and 64-bit integers
// anywhere).
template <typename T>
void AppendInteger(std::string* out, T v, bool quoted) {
  if (quoted) out->push_back('"');
  absl::StrAppend(out, v);
  if (quoted) out->push_back('"');
}

// One value of `f` (the i-th when repeated, -1 when singular). `r` is m's
// reflection: passed down, since each GetReflection() goes through
// protobuf's once-per-type initialisation check (callgrind: a fifth of the
// printer's instructions when it was looked up per value).
bool AppendValue(std::string* out, const Message& m, const Reflection* r, const FieldDescriptor* f,
                 int i, bool map_key = false) {
  const bool rep = i >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      AppendInteger(out, rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f), map_key);
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
      AppendInteger(out, rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f), map_key);
      return true;
    case FieldDescriptor::CPPTYPE_INT64:
      AppendInteger(out, rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f), true);
      return true;
    case FieldDescriptor::CPPTYPE_UINT64:
      AppendInteger(out, rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f), true);
      return true;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      AppendFloat(out, rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f));
      return true;
    case FieldDescriptor::CPPTYPE_FLOAT:
      AppendFloat(out, rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f));
      return true;
    case FieldDescriptor::CPPTYPE_BOOL: {
      const bool v = rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f);
      out->append(map_key ? (v ? "\"true\"" : "\"false\"") : (v ? "true" : "false"));
      return true;
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int v = rep ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
      const EnumValueDescriptor* e = f->enum_type()->FindValueByNumber(v);
      if (e != nullptr) {
        AppendString(out, e->name());
      } else {
        absl::StrAppend(out, v);
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

// Map entries of one map (so of one type, with reflection `r`) by key.
bool KeyLess(const Message& a, const Message& b, const Reflection* r, const FieldDescriptor* key) {
  const Reflection* ra = r;
  const Reflection* rb = r;
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

// The value of field `f` (its "name": is already written).
bool AppendFieldValue(std::string* out, const Message& m, const Reflection* r,
                      const FieldDescriptor* f) {
  if (f->is_map()) {
    const FieldDescriptor* key = f->message_type()->map_key();
    const FieldDescriptor* value = f->message_type()->map_value();
    out->push_back('{');
    // Keys in order (numbers by value), so the output is deterministic;
    // protobuf's printer uses the map's own (unspecified) order.
    const int size = r->FieldSize(m, f);
    absl::InlinedVector<const Message*, 8> entries(size);
    for (int i = 0; i < size; ++i) entries[i] = &r->GetRepeatedMessage(m, f, i);
    const Reflection* er = size > 0 ? entries[0]->GetReflection() : nullptr;
    std::sort(entries.begin(), entries.end(),
              [er, key](const Message* a, const Message* b) { return KeyLess(*a, *b, er, key); });
    for (int i = 0; i < size; ++i) {
      if (i > 0) out->push_back(',');
      if (!AppendValue(out, *entries[i], er, key, -1, /*map_key=*/true)) return false;
      out->push_back(':');
      if (!AppendValue(out, *entries[i], er, value, -1)) return false;
    }
    out->push_back('}');
    return true;
  }
  if (f->is_repeated()) {
    out->push_back('[');
    const int size = r->FieldSize(m, f);
    for (int i = 0; i < size; ++i) {
      if (i > 0) out->push_back(',');
      if (!AppendValue(out, m, r, f, i)) return false;
    }
    out->push_back(']');
    return true;
  }
  return AppendValue(out, m, r, f, -1);
}

bool AppendMessage(std::string* out, const Message& m) {
  const Descriptor* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  std::unique_ptr<Plan> scratch;
  const Plan& plan = PlanOf(d, &scratch);
  if (plan.kind == Plan::Kind::kTimestamp) return AppendTimestamp(out, m, d, r);
  if (plan.kind == Plan::Kind::kOtherWellKnown) return false;  // protobuf's printer
  out->push_back('{');
  bool first = true;
  for (const Plan::Field& field : plan.fields) {
    if (field.only_when_set && !r->HasField(m, field.f)) continue;
    // The key with its comma before it, but for the first.
    out->append(field.key.data() + (first ? 1 : 0), field.key.size() - (first ? 1 : 0));
    first = false;
    if (!AppendFieldValue(out, m, r, field.f)) return false;
  }
  out->push_back('}');
  return true;
}

}  // namespace

bool internal::FastJson(const google::protobuf::Message& msg, std::string* out) {
  out->clear();
  out->reserve(1024);  // a job's answer is about 1 KiB: no regrowth on the way
  return AppendMessage(out, msg);
}

}  // namespace portolan::codec
