// SPDX-License-Identifier: Apache-2.0
#include "portolan/codec/codec.h"
#include <cmath>
#include "portolan/base/strings.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/json_util.h"
#include "yaml-cpp/yaml.h"

namespace portolan::codec {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;

constexpr char kFieldPayload[] = "portolan.dev/field";
constexpr char kCodePayload[] = "portolan.dev/code";

// protobuf 3.21 has its own Status type; carry code and message over.
absl::Status FromProtobuf(const google::protobuf::util::Status& st) {
  if (st.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(st.code()),
                      std::string(st.message().data(), st.message().size()));
}

std::string EnumWords(const EnumDescriptor* e) {
  std::vector<std::string> words;
  for (int i = 0; i < e->value_count(); ++i) {
    const std::string& n = e->value(i)->name();
    if (!absl::EndsWith(n, "_unspecified")) words.push_back(n);
  }
  return absl::StrJoin(words, ", ");
}

// Resolves "a.b[2].c" against `root`; returns the last field or null.
const FieldDescriptor* FindPath(const Descriptor* root, absl::string_view path) {
  const Descriptor* d = root;
  const FieldDescriptor* f = nullptr;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (d == nullptr) return nullptr;
    size_t bracket = part.find('[');
    if (bracket != absl::string_view::npos) part = part.substr(0, bracket);
    f = d->FindFieldByName(std::string(part));
    if (f == nullptr) f = d->FindFieldByCamelcaseName(std::string(part));
    if (f == nullptr) return nullptr;
    d = f->message_type();
    if (f->is_map()) d = f->message_type()->map_value()->message_type();
  }
  return f;
}

// Turns protobuf's JSON parser messages into a field path and a sentence:
//   "(resources) memry_mb: Cannot find field."  -> resources.memry_mb
//   "(kind): invalid value \"X\" for type ..."   -> kind
absl::Status TranslateJsonError(const absl::Status& st, const Descriptor* root) {
  std::string msg(st.message());
  std::string path;
  std::string rest = msg;
  if (absl::StartsWith(rest, "(")) {
    size_t close = rest.find(')');
    if (close != std::string::npos) {
      path = rest.substr(1, close - 1);
      rest = std::string(absl::StripLeadingAsciiWhitespace(rest.substr(close + 1)));
    }
  }
  if (absl::StartsWith(rest, ":"))
    rest = std::string(absl::StripLeadingAsciiWhitespace(rest.substr(1)));
  size_t cannot = rest.find(": Cannot find field.");
  if (cannot != std::string::npos) {
    std::string name = rest.substr(0, cannot);
    std::string full = path.empty() ? name : absl::StrCat(path, ".", name);
    return InvalidField(full, absl::StrCat("unknown field '", full, "'"));
  }
  // Map entries are reported as env[0].value; name the map instead.
  size_t map_entry = path.find("].value");
  if (map_entry == std::string::npos) map_entry = path.find("].key");
  if (map_entry != std::string::npos) path = path.substr(0, path.rfind('[', map_entry));
  if (absl::StrContains(rest, "invalid value") && !path.empty()) {
    const FieldDescriptor* f = FindPath(root, path);
    std::string value = rest.substr(rest.find("invalid value") + 14);
    size_t for_type = value.find(" for type");
    if (for_type != std::string::npos) value = value.substr(0, for_type);
    if (f != nullptr && f->enum_type() != nullptr) {
      return InvalidField(path, absl::StrCat("invalid value ", value, " for ", path,
                                             ": expected one of ", EnumWords(f->enum_type())));
    }
    std::string type = f == nullptr ? "value" : f->cpp_type_name();
    if (f != nullptr && f->is_map()) type = "map of strings";
    return InvalidField(path, absl::StrCat("invalid value ", value, " for ", path, ": expected ",
                                           type == "string" ? "a string" : type));
  }
  if (msg.find("Root element must be a message") != std::string::npos) {
    return InvalidField("", "body must be a JSON object");
  }
  // Syntax errors: keep protobuf's description, without its caret drawing.
  std::string first_line = msg.substr(0, msg.find('\n'));
  return InvalidField(path, absl::StrCat("malformed JSON: ", first_line));
}

void AppendJsonString(absl::string_view s, std::string* out) {
  out->push_back('"');
  base::AppendJsonEscaped(s, out);
  out->push_back('"');
}

class YamlConverter {
 public:
  absl::Status Message(const YAML::Node& node, const Descriptor* d, const std::string& path,
                       std::string* out) {
    if (IsWellKnown(d)) return Generic(node, path, out);
    if (node.IsNull()) {
      out->append("{}");
      return absl::OkStatus();
    }
    if (!node.IsMap()) return InvalidField(path, Where(node, path, "expected a mapping"));
    out->push_back('{');
    bool first = true;
    for (const auto& kv : node) {
      std::string key = kv.first.Scalar();
      std::string child = path.empty() ? key : absl::StrCat(path, ".", key);
      const FieldDescriptor* f = d->FindFieldByName(key);
      if (f == nullptr) f = d->FindFieldByCamelcaseName(key);
      if (f == nullptr) return InvalidField(child, Where(kv.first, child, "unknown field"));
      if (!first) out->push_back(',');
      first = false;
      AppendJsonString(f->name(), out);
      out->push_back(':');
      absl::Status st = Field(kv.second, f, child, out);
      if (!st.ok()) return st;
    }
    out->push_back('}');
    return absl::OkStatus();
  }

 private:
  static bool IsWellKnown(const Descriptor* d) {
    return absl::StartsWith(d->full_name(), "google.protobuf.");
  }

  static std::string Where(const YAML::Node& node, const std::string& path,
                           absl::string_view what) {
    const YAML::Mark m = node.Mark();
    std::string loc = m.line >= 0 ? absl::StrCat("line ", m.line + 1, ": ") : "";
    return absl::StrCat(loc, path.empty() ? "document" : path, ": ", what);
  }

  absl::Status Field(const YAML::Node& node, const FieldDescriptor* f, const std::string& path,
                     std::string* out) {
    if (f->is_map()) {
      if (node.IsNull()) {
        out->append("{}");
        return absl::OkStatus();
      }
      if (!node.IsMap()) return InvalidField(path, Where(node, path, "expected a mapping"));
      const FieldDescriptor* vf = f->message_type()->map_value();
      out->push_back('{');
      bool first = true;
      for (const auto& kv : node) {
        if (!first) out->push_back(',');
        first = false;
        AppendJsonString(kv.first.Scalar(), out);
        out->push_back(':');
        absl::Status st = Single(kv.second, vf, absl::StrCat(path, ".", kv.first.Scalar()), out);
        if (!st.ok()) return st;
      }
      out->push_back('}');
      return absl::OkStatus();
    }
    if (f->is_repeated()) {
      if (node.IsNull()) {
        out->append("[]");
        return absl::OkStatus();
      }
      if (!node.IsSequence()) return InvalidField(path, Where(node, path, "expected a list"));
      out->push_back('[');
      for (size_t i = 0; i < node.size(); ++i) {
        if (i > 0) out->push_back(',');
        absl::Status st = Single(node[i], f, absl::StrCat(path, "[", i, "]"), out);
        if (!st.ok()) return st;
      }
      out->push_back(']');
      return absl::OkStatus();
    }
    return Single(node, f, path, out);
  }

  absl::Status Single(const YAML::Node& node, const FieldDescriptor* f, const std::string& path,
                      std::string* out) {
    if (f->type() == FieldDescriptor::TYPE_MESSAGE || f->type() == FieldDescriptor::TYPE_GROUP) {
      return Message(node, f->message_type(), path, out);
    }
    if (!node.IsScalar()) {
      if (node.IsNull()) {
        out->append("null");
        return absl::OkStatus();
      }
      return InvalidField(path, Where(node, path, "expected a single value"));
    }
    const std::string& s = node.Scalar();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
      case FieldDescriptor::CPPTYPE_ENUM:
        AppendJsonString(s, out);
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_BOOL: {
        std::string l = absl::AsciiStrToLower(s);
        if (l == "true" || l == "yes" || l == "on") {
          out->append("true");
        } else if (l == "false" || l == "no" || l == "off") {
          out->append("false");
        } else {
          return InvalidField(
              path, Where(node, path, absl::StrCat("expected true or false, got '", s, "'")));
        }
        return absl::OkStatus();
      }
      default: {
        double d;
        if (!absl::SimpleAtod(s, &d)) {
          return InvalidField(path,
                              Where(node, path, absl::StrCat("expected a number, got '", s, "'")));
        }
        // Infinity and NaN are no JSON numbers, and no value this schema means.
        if (!std::isfinite(d)) {
          return InvalidField(
              path, Where(node, path, absl::StrCat("expected a finite number, got '", s, "'")));
        }
        out->append(s);
        return absl::OkStatus();
      }
    }
  }

  // Schema-less conversion for google.protobuf.* types (Timestamp, Struct, ...).
  absl::Status Generic(const YAML::Node& node, const std::string& path, std::string* out) {
    if (node.IsNull()) {
      out->append("null");
    } else if (node.IsScalar()) {
      AppendJsonString(node.Scalar(), out);
    } else if (node.IsSequence()) {
      out->push_back('[');
      for (size_t i = 0; i < node.size(); ++i) {
        if (i > 0) out->push_back(',');
        absl::Status st = Generic(node[i], absl::StrCat(path, "[", i, "]"), out);
        if (!st.ok()) return st;
      }
      out->push_back(']');
    } else {
      out->push_back('{');
      bool first = true;
      for (const auto& kv : node) {
        if (!first) out->push_back(',');
        first = false;
        AppendJsonString(kv.first.Scalar(), out);
        out->push_back(':');
        absl::Status st = Generic(kv.second, absl::StrCat(path, ".", kv.first.Scalar()), out);
        if (!st.ok()) return st;
      }
      out->push_back('}');
    }
    return absl::OkStatus();
  }
};

absl::Status Prefix(const absl::Status& st, absl::string_view source) {
  if (st.ok() || source.empty()) return st;
  return FieldError(st.code(), StatusField(st), absl::StrCat(source, ": ", st.message()));
}

}  // namespace

absl::Status FieldError(absl::StatusCode code, absl::string_view field, absl::string_view message) {
  absl::Status st(code, std::string(message));
  if (!field.empty()) st.SetPayload(kFieldPayload, absl::Cord(std::string(field)));
  return st;
}

std::string StatusField(const absl::Status& status) {
  auto p = status.GetPayload(kFieldPayload);
  return p.has_value() ? std::string(*p) : "";
}

absl::Status WithErrorCode(absl::Status status, absl::string_view code) {
  status.SetPayload(kCodePayload, absl::Cord(std::string(code)));
  return status;
}

std::string StatusErrorCode(const absl::Status& status) {
  auto p = status.GetPayload(kCodePayload);
  return p.has_value() ? std::string(*p) : "";
}

absl::Status ParseJson(absl::string_view json, google::protobuf::Message* msg, JsonMode mode) {
  msg->Clear();
  bool filled = false;
  if (absl::Status st = internal::ParseStrictJson(json, msg, mode, &filled); !st.ok() || filled)
    return st;
  // What the direct walk declined (see strict_json.cc): protobuf parses it,
  // into a message it clears first.
  return internal::ProtobufParseJson(json, msg);
}

namespace internal {
absl::Status ProtobufParseJson(absl::string_view json, google::protobuf::Message* msg) {
  msg->Clear();
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  absl::Status st = FromProtobuf(google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), msg, opts));
  if (st.ok()) return st;
  return TranslateJsonError(st, msg->GetDescriptor());
}
}  // namespace internal

namespace {
// Whether a plain (unquoted) YAML scalar `s` would be read back as something
// other than this string: a boolean or null word of YAML 1.1 or 1.2 (yes,
// no, on, off, true, null, ~ ...), or a number (0123, 1e5, .inf, 0x1F).
bool ReadsAsNonString(const std::string& s) {
  static const char* const kWords[] = {"y",   "n",    "yes", "no",   "true",  "false", "on",
                                       "off", "null", "~",   ".inf", "-.inf", "+.inf", ".nan"};
  const std::string lower = absl::AsciiStrToLower(s);
  for (const char* w : kWords) {
    if (lower == w) return true;
  }
  double d = 0;
  return !s.empty() && (absl::SimpleAtod(s, &d) || absl::StartsWith(lower, "0x") ||
                        absl::StartsWith(lower, "0o") ||
                        s.find_first_not_of("0123456789_:.+-eE") == std::string::npos);
}

// Block style throughout; strings (quoted in the JSON) that YAML would read
// as booleans, nulls or numbers are double-quoted. Map keys are left plain:
// the only non-word keys are those of numeric maps (NUMA node numbers).
void EmitYaml(YAML::Emitter& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      out << YAML::BeginMap;
      for (auto it = node.begin(); it != node.end(); ++it) {
        out << YAML::Key << it->first.Scalar() << YAML::Value;
        EmitYaml(out, it->second);
      }
      out << YAML::EndMap;
      break;
    case YAML::NodeType::Sequence:
      out << YAML::BeginSeq;
      for (auto it = node.begin(); it != node.end(); ++it) EmitYaml(out, *it);
      out << YAML::EndSeq;
      break;
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!" && ReadsAsNonString(node.Scalar())) out << YAML::DoubleQuoted;
      out << node.Scalar();
      break;
    default:
      out << YAML::Null;
  }
}
}  // namespace

absl::StatusOr<std::string> JsonToYaml(absl::string_view json) {
  try {
    YAML::Node root = YAML::Load(std::string(json));
    YAML::Emitter out;
    EmitYaml(out, root);
    return std::string(out.c_str()) + "\n";
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot convert to YAML: ", e.what()));
  }
}

absl::StatusOr<std::string> YamlToJson(absl::string_view yaml, const Descriptor* type) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return InvalidField("", absl::StrCat("malformed YAML: line ", e.mark.line + 1, ", column ",
                                         e.mark.column + 1, ": ", e.msg));
  }
  std::string out;
  YamlConverter conv;
  try {
    absl::Status st = conv.Message(root, type, "", &out);
    if (!st.ok()) return st;
  } catch (const YAML::Exception& e) {
    return InvalidField("", absl::StrCat("malformed YAML: ", e.what()));
  }
  return out;
}

absl::Status ParseYaml(absl::string_view yaml, google::protobuf::Message* msg,
                       absl::string_view source, JsonMode mode) {
  auto json = YamlToJson(yaml, msg->GetDescriptor());
  if (!json.ok()) return Prefix(json.status(), source);
  return Prefix(ParseJson(*json, msg, mode), source);
}

std::string DeterministicBytes(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream sink(&out);
    google::protobuf::io::CodedOutputStream coded(&sink);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string ToJson(const google::protobuf::Message& msg, bool pretty) {
  std::string out;
  if (internal::FastJson(msg, &out)) {
    if (pretty) return internal::IndentJson(out);
    return out;  // moved: a `pretty ? ... : out` would copy it
  }
  return internal::ProtobufJson(msg, pretty);
}

std::string internal::IndentJson(absl::string_view in) {
  std::string out;
  out.reserve(in.size() * 2);
  int depth = 0;
  bool in_string = false, escaped = false;
  auto newline = [&](int d) {
    out.push_back('\n');
    out.append(static_cast<size_t>(std::max(d, 0)), ' ');
  };
  for (size_t i = 0; i < in.size(); ++i) {
    const char ch = in[i];
    if (in_string) {
      out.push_back(ch);
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    switch (ch) {
      case '"':
        in_string = true;
        out.push_back(ch);
        break;
      case '{':
      case '[':
        out.push_back(ch);
        if (i + 1 < in.size() && (in[i + 1] == '}' || in[i + 1] == ']')) {
          out.push_back(in[++i]);  // {} and [] stay on one line
        } else {
          newline(++depth);
        }
        break;
      case '}':
      case ']':
        newline(--depth);
        out.push_back(ch);
        break;
      case ',':
        out.push_back(ch);
        newline(depth);
        break;
      case ':':
        out.append(": ");
        break;
      default:
        out.push_back(ch);
    }
  }
  out.push_back('\n');  // as protobuf ends it
  return out;
}

std::string internal::ProtobufJson(const google::protobuf::Message& msg, bool pretty) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  opts.add_whitespace = pretty;
  std::string out;
  absl::Status st = FromProtobuf(google::protobuf::util::MessageToJsonString(msg, &out, opts));
  if (!st.ok())
    return absl::StrCat(R"({"error":{"code":"internal","message":"cannot encode: )", st.message(),
                        R"("}})");
  return out;
}

absl::Status LoadFile(const std::string& path, google::protobuf::Message* msg) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  std::stringstream ss;
  ss << f.rdbuf();
  if (absl::EndsWith(path, ".yaml") || absl::EndsWith(path, ".yml")) {
    return ParseYaml(ss.str(), msg, path);
  }
  return Prefix(ParseJson(ss.str(), msg, JsonMode::kRequest), path);
}

std::vector<std::string> ConfigToFlags(const google::protobuf::Message& config,
                                       const std::map<std::string, std::string>& renames) {
  using google::protobuf::FieldDescriptor;
  std::vector<std::string> out;
  const google::protobuf::Reflection* r = config.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(config, &fields);
  for (const FieldDescriptor* f : fields) {
    auto renamed = renames.find(f->name());
    std::string flag = renamed != renames.end() ? renamed->second : f->name();
    std::replace(flag.begin(), flag.end(), '_', '-');
    flag = "--" + flag;
    auto scalar = [&](int index) -> std::string {
      const bool rep = f->is_repeated();
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING:
          return rep ? r->GetRepeatedString(config, f, index) : r->GetString(config, f);
        case FieldDescriptor::CPPTYPE_INT32:
          return std::to_string(rep ? r->GetRepeatedInt32(config, f, index)
                                    : r->GetInt32(config, f));
        case FieldDescriptor::CPPTYPE_INT64:
          return std::to_string(rep ? r->GetRepeatedInt64(config, f, index)
                                    : r->GetInt64(config, f));
        case FieldDescriptor::CPPTYPE_UINT32:
          return std::to_string(rep ? r->GetRepeatedUInt32(config, f, index)
                                    : r->GetUInt32(config, f));
        case FieldDescriptor::CPPTYPE_UINT64:
          return std::to_string(rep ? r->GetRepeatedUInt64(config, f, index)
                                    : r->GetUInt64(config, f));
        case FieldDescriptor::CPPTYPE_DOUBLE:
          return absl::StrFormat(
              "%.17g", rep ? r->GetRepeatedDouble(config, f, index) : r->GetDouble(config, f));
        case FieldDescriptor::CPPTYPE_FLOAT:
          return absl::StrFormat(
              "%.9g", rep ? r->GetRepeatedFloat(config, f, index) : r->GetFloat(config, f));
        case FieldDescriptor::CPPTYPE_ENUM:
          return rep ? r->GetRepeatedEnum(config, f, index)->name() : r->GetEnum(config, f)->name();
        default:
          return "";
      }
    };
    if (f->is_map()) {
      for (int i = 0; i < r->FieldSize(config, f); ++i) {
        const google::protobuf::Message& entry = r->GetRepeatedMessage(config, f, i);
        const google::protobuf::Reflection* er = entry.GetReflection();
        const google::protobuf::Descriptor* ed = entry.GetDescriptor();
        out.push_back(absl::StrCat(flag, "=", er->GetString(entry, ed->FindFieldByNumber(1)), "=",
                                   er->GetString(entry, ed->FindFieldByNumber(2))));
      }
    } else if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(config, f); ++i) out.push_back(flag + "=" + scalar(i));
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
      if (r->GetBool(config, f)) out.push_back(flag);
    } else {
      out.push_back(flag + "=" + scalar(0));
    }
  }
  return out;
}

}  // namespace portolan::codec
