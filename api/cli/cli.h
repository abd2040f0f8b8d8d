// SPDX-License-Identifier: Apache-2.0
#pragma once

// The CLI's command table. Each command declares its flags and positional
// arguments on Boost.Program_options and runs against a Context; command
// groups live in one file each (jobs.cc, agents.cc, policy.cc, tenants.cc,
// tools.cc) and add themselves to the table in main.cc. Single-threaded.
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "portolan/client/client.h"

namespace portolan::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the server refused or the job did not succeed
inline constexpr int kExitUsage = 2;  // bad command line
inline constexpr int kExitUnreachable = 3;

enum class Output { kTable, kJson, kYaml };

// Where the CLI talks to and with what, for the hints errors get.
struct ConnectionSettings {
  std::string server;
  bool has_token = false;
  bool has_ca = false;
};
// A line that says what to set after `st` (diagnose.cc): the scheme the
// server really speaks, --ca / PORTOLAN_CA, PORTOLAN_TOKEN; "" when none
// applies. May probe the server (one TLS handshake, two seconds at most).
std::string ConnectionHint(const ConnectionSettings& s, const absl::Status& st);

// What a command runs with. The client is made on first use, so offline
// commands (token, completion) never need a server.
struct Context {
  Output output = Output::kTable;
  std::function<client::Client&()> client;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  ConnectionSettings connection;

  bool structured() const { return output != Output::kTable; }
  // Prints `m` as JSON or YAML (-o json|yaml).
  void Emit(const google::protobuf::Message& m) const;
  // Prints "portolan: message (field: f)" and returns the exit status for
  // `st`: 3 when the server could not be reached, else 1.
  int Report(const absl::Status& st) const;
  // "portolan: usage: ..." and kExitUsage.
  int Usage(const std::string& usage) const;
  // A file named on the command line that cannot be read or parsed:
  // "portolan: FILE: why" and kExitUsage.
  int FileError(const absl::Status& st) const;
  // The common answer of a command: the error reported, or the message
  // emitted (-o json|yaml) or printed by `print` (-o table); kExitOk.
  template <typename M, typename Printer>
  int Show(const absl::StatusOr<M>& answer, Printer print) const {
    if (!answer.ok()) return Report(answer.status());
    if (structured()) {
      Emit(*answer);
    } else {
      print(*out, *answer);
    }
    return kExitOk;
  }
};

// A command's parsed arguments: flags in `vm`, positional words in `args`,
// and with `takes_rest` everything after "--" in `rest`.
struct Args {
  boost::program_options::variables_map vm;
  std::vector<std::string> args;
  std::vector<std::string> rest;

  bool has(const std::string& flag) const { return vm.count(flag) > 0; }
  template <typename T>
  T get(const std::string& flag, T fallback) const {
    return vm.count(flag) ? vm[flag].as<T>() : fallback;
  }
};

struct Command {
  std::string name;
  // One line: what usage errors print after "portolan: usage: portolan ".
  std::string synopsis;
  // Its lines in `portolan --help` and `portolan NAME --help` (the first
  // starts with the name; no indentation).
  std::string help;
  // Declares its flags (may be null: none).
  std::function<void(boost::program_options::options_description&)> flags;
  // Positional words accepted: at least `min_args`, at most `max_args`.
  size_t min_args = 0, max_args = 0;
  bool takes_rest = false;  // "-- CMD ARGS" allowed
  std::function<int(Context&, const Args&)> run;
};

// The commands by name, in the order of `portolan --help`. Add refuses a
// second command of the same name (a programming error: it aborts).
class CommandTable {
 public:
  void Add(Command c);
  const Command* Find(const std::string& name) const;
  const std::vector<Command>& all() const { return commands_; }
  // Space-separated names, for the bash completion.
  std::string Names() const;

 private:
  std::vector<Command> commands_;
};

// Parses `words` (what follows the command name) for `c`. On error returns
// the message (without "portolan: ").
absl::Status ParseArgs(const Command& c, const std::vector<std::string>& words, Args* out);

// The command groups.
void AddJobCommands(CommandTable& t);
void AddAgentCommands(CommandTable& t);
void AddPolicyCommands(CommandTable& t);
void AddTenantCommands(CommandTable& t);
void AddDatasetCommands(CommandTable& t);
void AddToolCommands(CommandTable& t);
// `watch` without a job id: the event stream (events.cc).
int WatchEvents(Context& ctx, const Args& a);
// Every command, in help order.
CommandTable AllCommands();

// portolan(1) in roff, and the zsh completion around the bash one (manual.cc).
std::string ManualPage(const CommandTable& table);
std::string ZshCompletion(const CommandTable& table);

// Loads a JSON or YAML file ("-": JSON from stdin) as `m`; errors name the file.
absl::Status LoadMessage(const std::string& path, google::protobuf::Message* m);

// What `submit` and `plan` fill in when a job names no CPUs or memory: one CPU
// and 256 MiB, from a file as from flags (jobs.cc; docs/cli.md).
void ApplySubmitDefaults(v1::Job& spec);

}  // namespace portolan::cli
