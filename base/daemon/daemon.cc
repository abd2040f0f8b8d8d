// SPDX-License-Identifier: Apache-2.0
#include "portolan/daemon/daemon.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "portolan/base/files.h"
#include "portolan/base/log.h"
#include "portolan/service/notify.h"

namespace portolan::daemon {

int Fail(const std::string& program, const std::string& message) {
  // Logged only once base::SetupLogging named the default logger: before,
  // spdlog's unnamed default logger would print the line a second time.
  if (!spdlog::default_logger_raw()->name().empty()) spdlog::critical("{}", message);
  std::cerr << program << ": " << message << "\n";
  return 2;
}

sigset_t BlockSignals(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> AgentProtocolTls(const tls::Files& files,
                                                                            bool insecure,
                                                                            bool server) {
  if (!files.cert.empty() || !files.key.empty() || !files.ca.empty()) {
    if (insecure)
      return absl::InvalidArgumentError("--insecure contradicts --tls-cert/--tls-key/--tls-ca");
    auto ctx = server ? tls::MakeServerContext(files) : tls::MakeClientContext(files);
    if (!ctx.ok())
      return absl::InvalidArgumentError(
          absl::StrCat(server ? "agent RPC TLS: " : "TLS: ", ctx.status().message()));
    return *ctx;
  }
  if (insecure) {
    spdlog::warn(server ? "agent RPC is plain TCP (--insecure): agents are not authenticated and "
                          "traffic is not encrypted"
                        : "--insecure: the agent RPC is plain TCP; anyone on the path can read "
                          "jobs and impersonate the scheduler");
    return std::shared_ptr<boost::asio::ssl::context>();
  }
  return absl::InvalidArgumentError(
      "the agent RPC needs --tls-cert, --tls-key and --tls-ca (deploy/dev-ca.sh makes a "
      "development CA), or --insecure on a closed test network");
}

absl::Status CheckSecrets(const std::vector<std::pair<std::string, std::string>>& flag_paths) {
  for (const auto& [flag, path] : flag_paths) {
    if (path.empty()) continue;
    if (absl::Status st = base::CheckNotWorldReadable(path, flag); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status MakeStatePrivate(const std::string& dir, const std::vector<std::string>& files) {
  auto narrowed = base::MakePrivateDir(dir, 0700);
  if (!narrowed.ok()) return narrowed.status();
  if (*narrowed) spdlog::warn("state directory {} was open to others; now mode 0700", dir);
  for (const std::string& f : files) {
    const std::string path = absl::StrCat(dir, "/", f);
    auto n = base::NarrowFileMode(path, 0600);
    if (!n.ok()) return n.status();
    if (*n) spdlog::warn("{} was readable by others; now mode 0600", path);
  }
  return absl::OkStatus();
}

std::string HostId(int port) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return absl::StrCat(host, "-", port);
}

absl::Status WritePortsFile(const std::string& path,
                            const std::vector<std::pair<std::string, int64_t>>& fields) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << "{";
    for (size_t i = 0; i < fields.size(); ++i)
      f << (i ? ", " : "") << "\"" << fields[i].first << "\": " << fields[i].second;
    f << "}\n";
    if (!f.flush()) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot write ", path, ": ", ec.message()));
  return absl::OkStatus();
}

PeriodicTask::PeriodicTask(boost::asio::io_context& io, absl::Duration period,
                           std::function<void()> task)
    : timer_(io), period_(period), task_(std::move(task)), watchdog_(service::WatchdogInterval()) {}

void PeriodicTask::Start() { Arm(); }

void PeriodicTask::Cancel() { timer_.cancel(); }

void PeriodicTask::Arm() {
  timer_.expires_after(absl::ToChronoNanoseconds(period_));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    task_();
    if (watchdog_ > absl::ZeroDuration() && absl::Now() - last_ping_ >= watchdog_ / 4) {
      service::WatchdogPing();
      last_ping_ = absl::Now();
    }
    Arm();
  });
}

}  // namespace portolan::daemon
