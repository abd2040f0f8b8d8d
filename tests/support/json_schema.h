// SPDX-License-Identifier: Apache-2.0
#pragma once

// Validates JSON (parsed into google::protobuf::Value) against the OpenAPI
// 3.0 schema subset api/openapi.yaml uses: $ref to #/components/schemas,
// type (object, array, string, integer, number, boolean), properties,
// additionalProperties (false or a schema), items, enum, minimum and the
// int64 / date-time formats. Returns "" when valid, else "PATH: why".
#include <cmath>
#include <regex>
#include <string>

#include <yaml-cpp/yaml.h>

#include "google/protobuf/struct.pb.h"

namespace portolan::test_support {

// yaml-cpp pitfalls avoided here: operator[] on a non-const Node inserts
// missing keys, and assigning one Node handle to another rewrites the node
// it refers to; so schemas are only read through const handles.
inline std::string ValidateJson(const YAML::Node& schema, const google::protobuf::Value& v,
                                const YAML::Node& root, const std::string& path = "$",
                                int depth = 0) {
  using google::protobuf::Value;
  if (schema["$ref"]) {
    const std::string ref = schema["$ref"].as<std::string>();
    const std::string prefix = "#/components/schemas/";
    if (ref.rfind(prefix, 0) != 0 || depth > 64) return path + ": unsupported $ref " + ref;
    const YAML::Node target = root["components"]["schemas"][ref.substr(prefix.size())];
    if (!target) return path + ": dangling $ref " + ref;
    return ValidateJson(target, v, root, path, depth + 1);
  }
  const std::string type = schema["type"] ? schema["type"].as<std::string>() : "";
  if (type == "object") {
    if (v.kind_case() != Value::kStructValue) return path + ": expected an object";
    const YAML::Node props = schema["properties"];
    const YAML::Node extra = schema["additionalProperties"];
    const YAML::Node& cprops = props;
    for (const auto& [key, child] : v.struct_value().fields()) {
      const std::string p = path + "." + key;
      if (cprops && cprops[key]) {
        std::string err = ValidateJson(cprops[key], child, root, p, depth + 1);
        if (!err.empty()) return err;
      } else if (extra && extra.IsMap()) {
        std::string err = ValidateJson(extra, child, root, p, depth + 1);
        if (!err.empty()) return err;
      } else if (extra && extra.IsScalar() && !extra.as<bool>()) {
        return p + ": not in the schema";
      }
    }
    if (schema["required"]) {
      for (const YAML::Node& r : schema["required"]) {
        if (!v.struct_value().fields().contains(r.as<std::string>()))
          return path + ": missing required " + r.as<std::string>();
      }
    }
    return "";
  }
  if (type == "array") {
    if (v.kind_case() != Value::kListValue) return path + ": expected an array";
    for (int i = 0; i < v.list_value().values_size(); ++i) {
      std::string err = ValidateJson(schema["items"], v.list_value().values(i), root,
                                     path + "[" + std::to_string(i) + "]", depth + 1);
      if (!err.empty()) return err;
    }
    return "";
  }
  if (type == "string") {
    if (v.kind_case() != Value::kStringValue) return path + ": expected a string";
    const std::string& s = v.string_value();
    if (schema["enum"]) {
      bool found = false;
      for (const YAML::Node& e : schema["enum"]) found = found || e.as<std::string>() == s;
      if (!found) return path + ": '" + s + "' is not one of the enum values";
    }
    const std::string format = schema["format"] ? schema["format"].as<std::string>() : "";
    if (format == "int64" && !std::regex_match(s, std::regex("-?[0-9]+")))
      return path + ": '" + s + "' is not an int64";
    if (format == "date-time" &&
        !std::regex_match(s, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)")))
      return path + ": '" + s + "' is not an RFC 3339 UTC time";
    return "";
  }
  if (type == "integer" || type == "number") {
    if (v.kind_case() == Value::kStringValue && type == "number" &&
        (v.string_value() == "NaN" || v.string_value() == "Infinity" ||
         v.string_value() == "-Infinity"))
      return "";
    if (v.kind_case() != Value::kNumberValue) return path + ": expected a number";
    const double d = v.number_value();
    if (type == "integer" && d != std::floor(d)) return path + ": expected an integer";
    if (schema["minimum"] && d < schema["minimum"].as<double>()) return path + ": below minimum";
    return "";
  }
  if (type == "boolean") {
    return v.kind_case() == Value::kBoolValue ? "" : path + ": expected a boolean";
  }
  return type.empty() ? "" : path + ": unknown type " + type;
}

}  // namespace portolan::test_support
