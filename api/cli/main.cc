// SPDX-License-Identifier: Apache-2.0
// portolan: command-line client for tenants, operators and admins. The
// global flags and settings are read here; the commands are a table
// (api/cli/cli.h), one file per group.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/cli/cli.h"
#include "portolan/client/client.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/config.pb.h"

using namespace portolan;
using namespace portolan::cli;

namespace {

const char kUsageHead[] =
    "usage: portolan [--server URL] [--ca FILE] [-o table|json|yaml] COMMAND [ARGS]\n\nCommands:\n";
const char kUsageTail[] = R"(
"portolan COMMAND --help" (or "portolan help COMMAND") shows one command's usage;
"portolan --version" the CLI's version, "portolan version" the server's too.

Global flags:
  --server URL   scheduler REST address (default: $PORTOLAN_SERVER, the config file's
                 server, or http://127.0.0.1:7080); https://... for HTTPS
  --ca FILE      CA certificate (PEM) that signed the scheduler's HTTPS certificate
                 (default: $PORTOLAN_CA, the config file's ca, or the system's CAs)
  -o FORMAT      table (default), json or yaml
  Token: $PORTOLAN_TOKEN, else the config file's token, sent as a Bearer token.
  Config file: $PORTOLAN_CONFIG, else ~/.config/portolan/cli.yaml (YAML; fields
  server, token, ca). Keep it private: it holds a credential.

Exit codes: 0 success, 1 request refused or job not succeeded, 2 usage error, 3 server unreachable.
)";

std::string Indented(const std::string& block) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(block, '\n'))
    absl::StrAppend(&out, "  ", line, "\n");
  return out;
}

std::string FullUsage(const CommandTable& table) {
  std::string out = kUsageHead;
  for (const Command& c : table.all()) absl::StrAppend(&out, Indented(c.help));
  return out + kUsageTail;
}

// Where the CLI connects and how it prints: flag > environment > config file > default.
struct Settings {
  std::string server, token, ca, output = "table";
};

// Reads the config file and environment into `s`; false (with a message) on a bad file.
bool LoadSettings(Settings& s) {
  v1::CliConfig file_cfg;
  const char* env_cfg = std::getenv("PORTOLAN_CONFIG");
  const char* home = std::getenv("HOME");
  const std::string path =
      env_cfg ? env_cfg : (home ? absl::StrCat(home, "/.config/portolan/cli.yaml") : "");
  if (!path.empty() && (env_cfg || access(path.c_str(), F_OK) == 0)) {
    if (absl::Status st = codec::LoadFile(path, &file_cfg); !st.ok()) {
      std::cerr << "portolan: config file: " << st.message() << "\n";
      return false;
    }
  }
  auto pick = [](const char* env, const std::string& from_file, const std::string& fallback) {
    const char* v = std::getenv(env);
    if (v != nullptr && *v != '\0') return std::string(v);
    return from_file.empty() ? fallback : from_file;
  };
  s.server = pick("PORTOLAN_SERVER", file_cfg.server(), "http://127.0.0.1:7080");
  s.token = pick("PORTOLAN_TOKEN", file_cfg.token(), "");
  s.ca = pick("PORTOLAN_CA", file_cfg.ca(), "");
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const CommandTable table = AllCommands();
  std::vector<std::string> args(argv + 1, argv + argc);
  Settings s;
  if (!LoadSettings(s)) return kExitUsage;
  // Global flags come before the command: what follows it is the command's
  // (a job's own "-o" after "--" stays the job's).
  size_t i = 0;
  for (; i < args.size(); ++i) {
    if (args[i] == "--server" && i + 1 < args.size()) {
      s.server = args[++i];
    } else if (args[i] == "--ca" && i + 1 < args.size()) {
      s.ca = args[++i];
    } else if ((args[i] == "-o" || args[i] == "--output") && i + 1 < args.size()) {
      s.output = args[++i];
    } else if (args[i] == "-h" || args[i] == "--help" || args[i] == "help") {
      // "portolan help submit": that command's usage, as "submit --help".
      const Command* one = i + 1 < args.size() ? table.Find(args[i + 1]) : nullptr;
      if (one != nullptr) {
        std::cout << "usage:\n" << Indented(one->help);
      } else if (i + 1 < args.size()) {
        std::cerr << "portolan: help: unknown command '" << args[i + 1] << "'\n"
                  << FullUsage(table);
        return kExitUsage;
      } else {
        std::cout << FullUsage(table);
      }
      return kExitOk;
    } else if (args[i] == "--version") {
      std::cout << "portolan " << PORTOLAN_VERSION << "\n";
      return kExitOk;
    } else {
      break;
    }
  }
  if (s.output != "table" && s.output != "json" && s.output != "yaml") {
    std::cerr << "portolan: -o must be table, json or yaml\n";
    return kExitUsage;
  }
  if (s.server.find("://") == std::string::npos) s.server = "http://" + s.server;
  if (i >= args.size()) {
    std::cerr << FullUsage(table);
    return kExitUsage;
  }
  const std::string name = args[i++];
  const std::vector<std::string> words(args.begin() + i, args.end());
  const Command* c = table.Find(name);
  if (c == nullptr) {
    std::cerr << "portolan: unknown command '" << name << "'\n" << FullUsage(table);
    return kExitUsage;
  }
  for (const std::string& w : words) {
    if (w == "--") break;
    if (w == "--help" || w == "-h") {
      std::cout << "usage:\n" << Indented(c->help);
      return kExitOk;
    }
  }
  Args parsed;
  if (absl::Status st = ParseArgs(*c, words, &parsed); !st.ok()) {
    std::cerr << "portolan: " << name << ": " << st.message() << "\n"
              << "portolan: usage: portolan " << c->synopsis << "\n";
    return kExitUsage;
  }
  Context ctx;
  ctx.output = s.output == "json"   ? Output::kJson
               : s.output == "yaml" ? Output::kYaml
                                    : Output::kTable;
  ctx.out = &std::cout;
  ctx.err = &std::cerr;
  ctx.connection = {s.server, !s.token.empty(), !s.ca.empty()};
  std::unique_ptr<client::Client> client;
  ctx.client = [&]() -> client::Client& {
    if (!client) {
      if (!s.ca.empty() && access(s.ca.c_str(), R_OK) != 0) {
        std::cerr << "portolan: CA file " << s.ca
                  << " cannot be read (--ca, $PORTOLAN_CA or config)\n";
        std::exit(kExitUsage);
      }
      client = std::make_unique<client::Client>(s.server, s.token, s.ca);
    }
    return *client;
  };
  return c->run(ctx, parsed);
}
