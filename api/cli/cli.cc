// SPDX-License-Identifier: Apache-2.0
#include "api/cli/cli.h"

#include <cstdlib>
#include <iostream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/codec/codec.h"

namespace portolan::cli {

namespace po = boost::program_options;

void Context::Emit(const google::protobuf::Message& m) const {
  const std::string json = codec::ToJson(m, true);
  if (output == Output::kYaml) {
    auto yaml = codec::JsonToYaml(json);
    *out << (yaml.ok() ? *yaml : json + "\n");
  } else {
    *out << json << (json.empty() || json.back() != '\n' ? "\n" : "");  // one newline, not two
  }
}

int Context::Report(const absl::Status& st) const {
  *err << "portolan: " << st.message();
  std::string field = codec::StatusField(st);
  if (!field.empty()) *err << " (field: " << field << ")";
  *err << "\n";
  if (const std::string hint = ConnectionHint(connection, st); !hint.empty())
    *err << "portolan: hint: " << hint << "\n";
  return st.code() == absl::StatusCode::kUnavailable ? kExitUnreachable : kExitError;
}

int Context::FileError(const absl::Status& st) const {
  *err << "portolan: " << st.message() << "\n";
  return kExitUsage;
}

int Context::Usage(const std::string& usage) const {
  *err << "portolan: usage: portolan " << usage << "\n";
  return kExitUsage;
}

void CommandTable::Add(Command c) {
  if (Find(c.name) != nullptr) {
    std::cerr << "portolan: internal error: command '" << c.name << "' defined twice\n";
    std::abort();
  }
  commands_.push_back(std::move(c));
}

const Command* CommandTable::Find(const std::string& name) const {
  for (const Command& c : commands_)
    if (c.name == name) return &c;
  return nullptr;
}

std::string CommandTable::Names() const {
  std::vector<std::string> names;
  for (const Command& c : commands_) names.push_back(c.name);
  names.push_back("help");
  return absl::StrJoin(names, " ");
}

absl::Status ParseArgs(const Command& c, const std::vector<std::string>& words, Args* out) {
  std::vector<std::string> mine = words;
  auto dashes = std::find(mine.begin(), mine.end(), "--");
  if (dashes != mine.end()) {
    if (!c.takes_rest) return absl::InvalidArgumentError("unexpected '--'");
    out->rest.assign(dashes + 1, mine.end());
    mine.erase(dashes, mine.end());
  }
  po::options_description desc;
  if (c.flags) c.flags(desc);
  desc.add_options()("args", po::value<std::vector<std::string>>(), "");
  po::positional_options_description pos;
  pos.add("args", -1);
  try {
    po::store(po::command_line_parser(mine).options(desc).positional(pos).run(), out->vm);
    po::notify(out->vm);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  if (out->vm.count("args")) out->args = out->vm["args"].as<std::vector<std::string>>();
  if (out->args.size() < c.min_args || out->args.size() > c.max_args)
    return absl::InvalidArgumentError("wrong number of arguments");
  return absl::OkStatus();
}

absl::Status LoadMessage(const std::string& path, google::protobuf::Message* m) {
  if (path == "-") {
    std::string body((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    return codec::ParseJson(body, m);
  }
  return codec::LoadFile(path, m);
}

CommandTable AllCommands() {
  CommandTable t;
  AddJobCommands(t);
  AddAgentCommands(t);
  AddPolicyCommands(t);
  AddTenantCommands(t);
  AddDatasetCommands(t);
  AddToolCommands(t);
  return t;
}

}  // namespace portolan::cli
