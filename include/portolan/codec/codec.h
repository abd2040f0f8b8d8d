// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace portolan::codec {

// The single schema: every REST body, config/policy file and stored record is
// a protobuf message in api/proto, written as its proto3 JSON mapping with
// snake_case names. These functions are the only place JSON/YAML meets protos.
//
// Errors are absl::Status values; when a particular field is to blame its path
// ("resources.cpus", "datasets[1].idx") travels as a payload, read back with
// StatusField(). All functions are thread-safe.

// InvalidArgument naming `field`.
absl::Status FieldError(absl::StatusCode code, absl::string_view field, absl::string_view message);
inline absl::Status InvalidField(absl::string_view field, absl::string_view message) {
  return FieldError(absl::StatusCode::kInvalidArgument, field, message);
}
// The field path attached to `status`, or "" when none.
std::string StatusField(const absl::Status& status);
// A more specific error code than the status code's word for the REST error
// body (e.g. "idempotency_conflict" on an AlreadyExists); StatusErrorCode
// reads it back, "" when none.
absl::Status WithErrorCode(absl::Status status, absl::string_view code);
std::string StatusErrorCode(const absl::Status& status);

// What a JSON text is: anything of the schema (a server's answer), or a
// client's request or file, where fields marked (portolan.v1.output_only)
// must be left out or empty and numbers must be within their fields'
// (minimum)/(maximum) options. ParseYaml and LoadFile read requests.
enum class JsonMode { kAny, kRequest };

// Parses proto3 JSON into `msg` (cleared first). The text must be strict
// RFC 8259 JSON whose shape follows the schema: no unknown or repeated keys,
// lists only where the field is repeated, enums by their words, numbers
// finite (64-bit integers may be strings, as proto3 JSON writes them),
// timestamps as RFC 3339 strings. Errors name the field path.
absl::Status ParseJson(absl::string_view json, google::protobuf::Message* msg,
                       JsonMode mode = JsonMode::kAny);

// YAML converted against `msg`'s schema, then parsed like JSON: scalars take
// the type of the field they fill (so `name: 123` is the string "123"), and
// unknown keys are rejected with their path. `source` names the file in errors.
absl::Status ParseYaml(absl::string_view yaml, google::protobuf::Message* msg,
                       absl::string_view source = "", JsonMode mode = JsonMode::kRequest);

// Block-style YAML of a JSON document (for `-o yaml` output).
absl::StatusOr<std::string> JsonToYaml(absl::string_view json);

// The schema-checked JSON text of a YAML document (see ParseYaml).
absl::StatusOr<std::string> YamlToJson(absl::string_view yaml,
                                       const google::protobuf::Descriptor* type);

// Proto3 JSON with snake_case names and every field printed (defaults too),
// so clients always see the full shape.
// Map keys come out in key order, so the same message always prints the
// same bytes. Output comes from a direct reflection printer
// (internal::FastJson; pretty output is its text indented as protobuf
// indents); messages with well-known types other than Timestamp from
// protobuf's printer.
std::string ToJson(const google::protobuf::Message& msg, bool pretty = false);

// `m` in the binary form, serialized deterministically (map entries in key
// order), so that equal messages give equal bytes: cache keys, comparisons.
std::string DeterministicBytes(const google::protobuf::Message& m);

namespace internal {
// The strict checks of ParseJson alone, against `type`.
absl::Status CheckStrictJson(absl::string_view json, const google::protobuf::Descriptor* type,
                             JsonMode mode);
// The strict checks, filling `msg` as they go (cleared first by the caller).
// `*filled` is false when the walk declined something protobuf must parse
// (then `msg` is unspecified): bytes, well-known types, a second member of
// a oneof, a null map value, invalid UTF-8, a quoted 64-bit integer out of
// range.
absl::Status ParseStrictJson(absl::string_view json, google::protobuf::Message* msg, JsonMode mode,
                             bool* filled);
// protobuf's JsonStringToMessage, its errors worded as ParseJson's (no strict
// checks: call them first).
absl::Status ProtobufParseJson(absl::string_view json, google::protobuf::Message* msg);
// The direct printer: the same JSON as ProtobufJson(msg, false) except for
// map order; false (and `out` unspecified) for what it does not cover.
bool FastJson(const google::protobuf::Message& msg, std::string* out);
// Compact JSON indented the way protobuf's add_whitespace prints it: one
// space per level, "key": value, each member and element on its own line,
// empty objects and arrays as {} and [], and a final newline.
std::string IndentJson(absl::string_view compact);
// protobuf's MessageToJsonString with ToJson's options.
std::string ProtobufJson(const google::protobuf::Message& msg, bool pretty);
}  // namespace internal

// Loads a .json, .yaml or .yml file into `msg`. Errors name the file.
absl::Status LoadFile(const std::string& path, google::protobuf::Message* msg);

// The command-line flags a daemon config message stands for, so a config
// file and flags share one parser: each set (non-default) field becomes
// "--field-name=VALUE" ('_' becomes '-'), a true bool "--field-name", a
// repeated field one flag per element, a map<string,string> entry
// "--flag=KEY=VALUE". `renames` maps field names to other flag names.
std::vector<std::string> ConfigToFlags(const google::protobuf::Message& config,
                                       const std::map<std::string, std::string>& renames = {});

}  // namespace portolan::codec
