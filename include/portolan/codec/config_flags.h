// SPDX-License-Identifier: Apache-2.0
#pragma once

// Daemon config files as flags: the file (YAML or JSON, a config message of
// api/proto/portolan/v1/config.proto) is turned into the flags it stands for
// and parsed by the same option parser, after the command line, so a flag
// given on the command line wins and every config field is also a flag.
#include <map>
#include <string>

#include <boost/program_options.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "portolan/codec/codec.h"

namespace portolan::codec {

template <typename ConfigMessage>
absl::Status StoreConfigFile(const std::string& path,
                             const boost::program_options::options_description& desc,
                             boost::program_options::variables_map& vm,
                             const std::map<std::string, std::string>& renames = {}) {
  ConfigMessage config;
  if (absl::Status st = LoadFile(path, &config); !st.ok()) return st;
  try {
    boost::program_options::store(
        boost::program_options::command_line_parser(ConfigToFlags(config, renames))
            .options(desc)
            .run(),
        vm);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace portolan::codec
