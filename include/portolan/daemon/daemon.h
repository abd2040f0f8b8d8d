// SPDX-License-Identifier: Apache-2.0
#pragma once

// What both daemons (portolan-scheduler, portolan-agent) do the same way
// before and around serving: the command line with its config file, signals,
// the TLS choice for the agent protocol, private state, a periodic task that
// also feeds the systemd watchdog, and the ports file. Each main keeps only
// what is its own. Nothing here is thread-safe unless it says so; the mains
// call it from their main thread before any other thread starts.
#include <signal.h>

#include <chrono>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/program_options.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "portolan/codec/config_flags.h"
#include "portolan/tls/tls.h"

namespace portolan::daemon {

// Parses `argv` into `vm`, then the file named by --config (a config message
// of type `Config`, api/proto/portolan/v1/config.proto) as the flags it stands
// for, so that the command line wins; answers --help and --version. Returns
// the exit status when the program should end here (0 after --help/--version,
// 2 after an error, which is printed as "`program`: reason"), nullopt to go on.
template <typename Config>
std::optional<int> ParseCommandLine(int argc, char** argv, const std::string& program,
                                    const boost::program_options::options_description& desc,
                                    boost::program_options::variables_map& vm,
                                    const std::map<std::string, std::string>& renames = {});

// Prints "`program`: `message`" to stderr (and logs it as critical once
// logging is set up) and returns 2, the exit status of a refused start.
int Fail(const std::string& program, const std::string& message);

// Blocks `signals` in the calling thread (threads started afterwards inherit
// the mask, so only a sigwait() sees them) and ignores SIGPIPE. Returns the set.
sigset_t BlockSignals(std::initializer_list<int> signals);

// The agent protocol's TLS: all of cert/key/CA, or `insecure` (plain TCP, a
// warning logged), or an error saying what is missing. `server`: the
// scheduler's context (it checks agents' certificates); else the agent's.
// Null with OK status means plain TCP.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> AgentProtocolTls(const tls::Files& files,
                                                                            bool insecure,
                                                                            bool server);

// Refuses secret files (keys, tokens) that every local user can read:
// each pair is (flag, path); empty paths are skipped.
absl::Status CheckSecrets(const std::vector<std::pair<std::string, std::string>>& flag_paths);

// Makes `dir` (created if missing) mode 0700 and narrows `files` in it to
// 0600, logging a warning for each that was open to others.
absl::Status MakeStatePrivate(const std::string& dir, const std::vector<std::string>& files = {});

// "<host name>-<port>": a default name for a daemon that has none.
std::string HostId(int port);

// Writes {"key": value, ...} atomically (a temporary file renamed): the
// bound ports of a daemon started with port 0, for scripts and tests.
absl::Status WritePortsFile(const std::string& path,
                            const std::vector<std::pair<std::string, int64_t>>& fields);

// Runs `task` on `io` every `period` and pings the systemd watchdog (when
// the unit has one) after the task returned, at most every quarter of the
// watchdog interval: a wedged io loop, or a task stuck on a lock, stops the
// pings and systemd restarts the service. Start/Cancel on the io thread or
// before it runs.
class PeriodicTask {
 public:
  PeriodicTask(boost::asio::io_context& io, absl::Duration period, std::function<void()> task);
  void Start();
  void Cancel();

 private:
  void Arm();

  boost::asio::steady_timer timer_;
  absl::Duration period_;
  std::function<void()> task_;
  absl::Duration watchdog_;
  absl::Time last_ping_ = absl::InfinitePast();
};

// ---- implementation of the template ----

template <typename Config>
std::optional<int> ParseCommandLine(int argc, char** argv, const std::string& program,
                                    const boost::program_options::options_description& desc,
                                    boost::program_options::variables_map& vm,
                                    const std::map<std::string, std::string>& renames) {
  namespace po = boost::program_options;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("config")) {
      absl::Status st =
          codec::StoreConfigFile<Config>(vm["config"].as<std::string>(), desc, vm, renames);
      if (!st.ok()) return Fail(program, "--config: " + std::string(st.message()));
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << "\n" << desc << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << program << " " << PORTOLAN_VERSION << "\n";
    return 0;
  }
  return std::nullopt;
}

}  // namespace portolan::daemon
