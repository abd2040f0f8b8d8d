// SPDX-License-Identifier: Apache-2.0
// portolan-openapi: writes api/openapi.yaml from the hand-written paths
// (api/openapi/paths.yaml) and JSON schemas generated from the protobuf
// messages they reference, so the OpenAPI document never restates the
// schema by hand. `cmake --build build --target openapi` runs it.
//
//   portolan-openapi api/openapi/paths.yaml > api/openapi.yaml
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>

#include <yaml-cpp/yaml.h>

#include "google/protobuf/descriptor.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/cluster.pb.h"
#include "portolan/v1/dataset.pb.h"
#include "portolan/v1/events.pb.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/ledger.pb.h"
#include "portolan/v1/options.pb.h"
#include "portolan/v1/policy.pb.h"
#include "portolan/v1/simulate.pb.h"

namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;

const std::string kRef = "#/components/schemas/";

void CollectRefs(const YAML::Node& node, std::set<std::string>* out) {
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it->first.as<std::string>() == "$ref") {
        const std::string ref = it->second.as<std::string>();
        if (ref.rfind(kRef, 0) == 0) out->insert(ref.substr(kRef.size()));
      } else {
        CollectRefs(it->second, out);
      }
    }
  } else if (node.IsSequence()) {
    for (const YAML::Node& n : node) CollectRefs(n, out);
  }
}

void Emit(YAML::Emitter& e, const FieldDescriptor* f, bool element, std::set<std::string>* todo,
          const FieldDescriptor* range = nullptr);

// minimum / maximum from the (portolan.v1.minimum) / (maximum) options of
// `range` (the field, or the map or list it is an element of).
void EmitRange(YAML::Emitter& e, const FieldDescriptor* range, bool unsigned_min = false) {
  const auto& o = range->options();
  if (o.HasExtension(portolan::v1::minimum)) {
    e << YAML::Key << "minimum" << YAML::Value << o.GetExtension(portolan::v1::minimum);
  } else if (unsigned_min) {
    e << YAML::Key << "minimum" << YAML::Value << 0;
  }
  if (o.HasExtension(portolan::v1::maximum))
    e << YAML::Key << "maximum" << YAML::Value << o.GetExtension(portolan::v1::maximum);
}

void EmitScalar(YAML::Emitter& e, const FieldDescriptor* f, std::set<std::string>* todo,
                const FieldDescriptor* range) {
  e << YAML::BeginMap;
  switch (f->type()) {
    case FieldDescriptor::TYPE_STRING:
      e << YAML::Key << "type" << YAML::Value << "string";
      break;
    case FieldDescriptor::TYPE_BYTES:
      e << YAML::Key << "type" << YAML::Value << "string" << YAML::Key << "format" << YAML::Value
        << "byte";
      break;
    case FieldDescriptor::TYPE_BOOL:
      e << YAML::Key << "type" << YAML::Value << "boolean";
      break;
    case FieldDescriptor::TYPE_INT32:
    case FieldDescriptor::TYPE_SINT32:
    case FieldDescriptor::TYPE_SFIXED32:
      e << YAML::Key << "type" << YAML::Value << "integer" << YAML::Key << "format" << YAML::Value
        << "int32";
      EmitRange(e, range);
      break;
    case FieldDescriptor::TYPE_UINT32:
    case FieldDescriptor::TYPE_FIXED32:
      e << YAML::Key << "type" << YAML::Value << "integer";
      EmitRange(e, range, /*unsigned_min=*/true);
      break;
    case FieldDescriptor::TYPE_INT64:
    case FieldDescriptor::TYPE_SINT64:
    case FieldDescriptor::TYPE_SFIXED64:
    case FieldDescriptor::TYPE_UINT64:
    case FieldDescriptor::TYPE_FIXED64:
      // proto3 JSON prints 64-bit integers as strings.
      e << YAML::Key << "type" << YAML::Value << "string" << YAML::Key << "format" << YAML::Value
        << "int64";
      break;
    case FieldDescriptor::TYPE_DOUBLE:
    case FieldDescriptor::TYPE_FLOAT:
      e << YAML::Key << "type" << YAML::Value << "number";
      EmitRange(e, range);
      break;
    case FieldDescriptor::TYPE_ENUM: {
      e << YAML::Key << "type" << YAML::Value << "string" << YAML::Key << "enum" << YAML::Value
        << YAML::Flow << YAML::BeginSeq;
      for (int i = 0; i < f->enum_type()->value_count(); ++i) e << f->enum_type()->value(i)->name();
      e << YAML::EndSeq;
      break;
    }
    case FieldDescriptor::TYPE_MESSAGE:
    case FieldDescriptor::TYPE_GROUP:
      if (f->message_type()->full_name() == "google.protobuf.Timestamp") {
        e << YAML::Key << "type" << YAML::Value << "string" << YAML::Key << "format" << YAML::Value
          << "date-time";
      } else {
        e << YAML::Key << "$ref" << YAML::Value << kRef + f->message_type()->name();
        todo->insert(f->message_type()->name());
      }
      break;
  }
  e << YAML::EndMap;
}

void Emit(YAML::Emitter& e, const FieldDescriptor* f, bool element, std::set<std::string>* todo,
          const FieldDescriptor* range) {
  if (range == nullptr) range = f;
  if (!element && f->is_map()) {
    e << YAML::BeginMap << YAML::Key << "type" << YAML::Value << "object" << YAML::Key
      << "additionalProperties" << YAML::Value;
    Emit(e, f->message_type()->FindFieldByName("value"), true, todo, f);
    e << YAML::EndMap;
  } else if (!element && f->is_repeated()) {
    e << YAML::BeginMap << YAML::Key << "type" << YAML::Value << "array" << YAML::Key << "items"
      << YAML::Value;
    Emit(e, f, true, todo, f);
    e << YAML::EndMap;
  } else {
    EmitScalar(e, f, todo, range);
  }
}

void EmitMessage(YAML::Emitter& e, const Descriptor* d, std::set<std::string>* todo) {
  e << YAML::BeginMap << YAML::Key << "type" << YAML::Value << "object";
  e << YAML::Key << "additionalProperties" << YAML::Value << false;
  e << YAML::Key << "properties" << YAML::Value << YAML::BeginMap;
  for (int i = 0; i < d->field_count(); ++i) {
    e << YAML::Key << d->field(i)->name() << YAML::Value;
    if (d->field(i)->options().GetExtension(portolan::v1::output_only)) {
      // Set by the scheduler; refused in requests (allOf: $ref takes no siblings).
      e << YAML::BeginMap << YAML::Key << "readOnly" << YAML::Value << true << YAML::Key << "allOf"
        << YAML::Value << YAML::BeginSeq;
      Emit(e, d->field(i), false, todo);
      e << YAML::EndSeq << YAML::EndMap;
      continue;
    }
    Emit(e, d->field(i), false, todo);
  }
  e << YAML::EndMap << YAML::EndMap;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: portolan-openapi api/openapi/paths.yaml > api/openapi.yaml\n";
    return 2;
  }
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(argv[1]);
  } catch (const YAML::Exception& e) {
    std::cerr << "portolan-openapi: " << argv[1] << ": " << e.what() << "\n";
    return 2;
  }
  // Link the generated descriptors in.
  (void)portolan::v1::Job::descriptor();
  (void)portolan::v1::Agent::descriptor();
  (void)portolan::v1::Policy::descriptor();
  (void)portolan::v1::ErrorResponse::descriptor();
  (void)portolan::v1::ClusterView::descriptor();
  (void)portolan::v1::Event::descriptor();
  (void)portolan::v1::SimulateRequest::descriptor();
  (void)portolan::v1::ListLedgerResponse::descriptor();
  (void)portolan::v1::RegisteredDataset::descriptor();
  std::set<std::string> todo;
  CollectRefs(doc, &todo);
  std::set<std::string> done;
  YAML::Emitter schemas;
  schemas << YAML::BeginMap;
  while (!todo.empty()) {
    const std::string name = *todo.begin();
    todo.erase(todo.begin());
    if (!done.insert(name).second) continue;
    const Descriptor* d =
        DescriptorPool::generated_pool()->FindMessageTypeByName("portolan.v1." + name);
    if (d == nullptr) {
      std::cerr << "portolan-openapi: " << argv[1] << " refers to " << name
                << ", which is not a portolan.v1 message\n";
      return 2;
    }
    schemas << YAML::Key << name << YAML::Value;
    EmitMessage(schemas, d, &todo);
  }
  schemas << YAML::EndMap;
  // The hand-written text is kept verbatim (comments, quoting of status
  // codes); the schemas go last, under its final `components:` section.
  std::string last_key;
  for (auto it = doc.begin(); it != doc.end(); ++it) last_key = it->first.as<std::string>();
  if (last_key != "components" || doc["components"]["schemas"]) {
    std::cerr << "portolan-openapi: " << argv[1]
              << " must end with a components section without schemas\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  std::stringstream text;
  text << in.rdbuf();
  std::string body = text.str();
  if (!body.empty() && body.back() != '\n') body += '\n';
  std::cout << "# GENERATED by portolan-openapi from api/openapi/paths.yaml and api/proto;\n"
            << "# edit those and run: cmake --build build --target openapi\n"
            << body << "  schemas:\n";
  std::istringstream lines(schemas.c_str());
  std::string line;
  while (std::getline(lines, line)) std::cout << "    " << line << "\n";
  return 0;
}
