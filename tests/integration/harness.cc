// SPDX-License-Identifier: Apache-2.0
#include "harness.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "portolan/auth/auth.h"
#include "portolan/executor/cgroup.h"
#include "portolan/executor/isolation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <tuple>

namespace portolan::testing {

Process::Process(std::vector<std::string> argv, const std::string& log_path) : log_path_(log_path) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // Die with the test: a test that crashes must not leave daemons behind.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the test died before prctl took effect
    dup2(fd, 1);
    dup2(fd, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fd);
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Process::running() {
  if (reaped_) return false;
  int status;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

void Process::Signal(int sig) {
  if (!reaped_) kill(pid_, sig);
}

int Process::Wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

v1::Job JobSpec(std::vector<std::string> cmd, int cpus, const std::string& tenant) {
  v1::Job j;
  j.set_name("it");
  if (!tenant.empty()) j.set_tenant(tenant);
  for (auto& c : cmd) j.add_command(c);
  j.mutable_resources()->set_cpus(cpus);
  j.mutable_resources()->set_memory_mb(64);
  return j;
}

bool InState(client::Client& c, const std::string& id, v1::Job::State state) {
  auto j = c.GetJob(id);
  return j.ok() && j->state() == state;
}

bool WaitForState(client::Client& c, const std::string& id, v1::Job::State state,
                  std::chrono::milliseconds timeout) {
  return WaitFor([&] { return InState(c, id, state); }, timeout);
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

pid_t PrintedPid(client::Client& c, const std::string& job_id) {
  // The agent's `running` event says "started as pid N": N is the job's top
  // process as this machine sees it (its init when sandboxed; a pid the job
  // prints itself is its own namespace's).
  pid_t pid = 0;
  WaitFor(
      [&] {
        auto job = c.GetJob(job_id);
        if (!job.ok()) return false;
        for (const auto& e : job->events()) {
          if (e.state() != v1::Job::running) continue;
          const std::string& m = e.message();
          const size_t at = m.find("started as pid ");
          if (at == std::string::npos) continue;
          const size_t from = at + 15;
          return absl::SimpleAtoi(m.substr(from, m.find_first_not_of("0123456789", from) - from),
                                  &pid) &&
                 pid > 0;
        }
        return false;
      },
      std::chrono::seconds(20));
  return pid;
}

int ConnectLoopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  const int rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  EXPECT_EQ(rc, 0) << "connect to 127.0.0.1:" << port << ": " << strerror(errno);
  if (rc != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool ClosedByServer(int fd) {
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

Cluster::Cluster() {
  // Named after the test, or the suite when made in SetUpTestSuite.
  const auto* unit = ::testing::UnitTest::GetInstance();
  const std::string name = unit->current_test_info() != nullptr ? unit->current_test_info()->name()
                           : unit->current_test_suite() != nullptr
                               ? unit->current_test_suite()->name()
                               : "suite";
  dir_ = std::filesystem::temp_directory_path() /
         ("portolan-it-" + std::to_string(getpid()) + "-" + name);
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  std::ofstream tokens(tokens_path());
  tokens << "tokens:\n"
         << "  - {name: it-admin, role: admin, sha256: " << auth::Sha256Hex(kAdminToken) << "}\n"
         << "  - {name: it-acme, role: tenant, tenant_id: acme, sha256: "
         << auth::Sha256Hex(kAcmeToken) << "}\n"
         << "  - {name: it-globex, role: tenant, tenant_id: globex, sha256: "
         << auth::Sha256Hex(kGlobexToken) << "}\n"
         << "  - {name: it-ops, role: operator, sites: [lingang-idc-1], sha256: "
         << auth::Sha256Hex(kOperatorToken) << "}\n"
         << "  - {name: lee, role: data_officer, sha256: " << auth::Sha256Hex(kOfficerToken)
         << "}\n";
  tokens.close();
  // The scheduler refuses a tokens file every local user can read.
  std::filesystem::permissions(
      tokens_path(), std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

std::unique_ptr<client::Client> Cluster::ClientWith(const std::string& token) const {
  return std::make_unique<client::Client>(base_url(), token, tls_ ? pki() + "/ca.pem" : "");
}

void Cluster::EnableTls() {
  RunDevCa("init");
  RunDevCa("scheduler");
  tls_ = true;
}

void Cluster::RunDevCa(const std::string& args) const {
  const std::string cmd = std::string(PORTOLAN_SOURCE_DIR "/deploy/dev-ca.sh ") + pki() + " " +
                          args + " >>" + dir_ + "/dev-ca.log 2>&1";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
}

std::string Cluster::AgentCert(const std::string& id, const std::string& site) const {
  const std::string prefix = pki() + "/agent-" + id;
  if (!std::filesystem::exists(prefix + ".pem")) RunDevCa("agent " + id + " " + site);
  return prefix;
}

Cluster::~Cluster() {
  // Every test ends with a graceful scheduler shutdown while its agents are
  // still connected, so teardown bugs show in every test.
  if (scheduler_ && scheduler_->running()) StopScheduler();
  for (Member& m : members_) {
    if (m.process && m.process->running()) {
      m.process->Signal(SIGCONT);  // a test may have paused it
      m.process->Signal(SIGTERM);
      EXPECT_GE(m.process->Wait(std::chrono::seconds(20)), 0) << "a member did not stop";
    }
  }
  agents_.clear();  // SIGKILL what is still running
  SweepJobs();
  scheduler_.reset();
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir_);
  if (!shared_dir_.empty()) std::filesystem::remove_all(shared_dir_);
}

std::string Cluster::SchedulerLog() const {
  std::ifstream f(dir_ + "/scheduler.log");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> Cluster::SchedulerArgv(const std::string& ports,
                                                const std::string& rest_addr,
                                                const std::string& rpc_addr,
                                                std::vector<std::string> extra) const {
  std::vector<std::string> argv = {PORTOLAN_SCHEDULER_BIN, "--rest-addr",  rest_addr,
                                   "--rpc-addr",           rpc_addr,       "--state-dir",
                                   dir_ + "/state",        "--ports-file", ports};
  // Fast defaults for tests; a test may give its own value of each.
  for (const auto& [flag, value] :
       std::vector<std::pair<std::string, std::string>>{{"--heartbeat-interval-ms", "200"},
                                                        {"--agent-ttl-ms", "1500"},
                                                        {"--resend-interval-ms", "500"},
                                                        {"--tick-ms", "50"}}) {
    if (std::find(extra.begin(), extra.end(), flag) == extra.end()) {
      argv.insert(argv.end(), {flag, value});
    }
  }
  if (std::find(extra.begin(), extra.end(), "--tokens") == extra.end() &&
      std::find(extra.begin(), extra.end(), "--no-auth") == extra.end()) {
    argv.push_back("--tokens");
    argv.push_back(tokens_path());
  }
  if (tls_) {
    for (const char* flag : {"--tls-cert", "--https-cert"}) {
      argv.insert(argv.end(), {flag, pki() + "/scheduler.pem"});
    }
    for (const char* flag : {"--tls-key", "--https-key"}) {
      argv.insert(argv.end(), {flag, pki() + "/scheduler.key"});
    }
    argv.insert(argv.end(), {"--tls-ca", pki() + "/ca.pem"});
  } else if (std::find(extra.begin(), extra.end(), "--insecure") == extra.end()) {
    argv.push_back("--insecure");
  }
  if (std::find(extra.begin(), extra.end(), "--policy") == extra.end()) {
    argv.push_back("--policy");
    argv.push_back(PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml");
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

namespace {

// {"rest": N, "rpc": N, ...} as written by --ports-file.
std::pair<uint16_t, uint16_t> ReadPorts(const std::string& path) {
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto num = [&](const std::string& key) {
    size_t p = text.find("\"" + key + "\": ");
    return static_cast<uint16_t>(std::stoi(text.substr(p + key.size() + 4)));
  };
  return {num("rest"), num("rpc")};
}

}  // namespace

void Cluster::StartMember(int i, const std::string& store_url, std::vector<std::string> extra) {
  if (static_cast<int>(members_.size()) <= i) members_.resize(i + 1);
  Member& m = members_[i];
  const std::string ports = absl::StrCat(dir_, "/ports-m", i, "-", ++m.starts, ".json");
  extra.insert(extra.end(), {"--store", store_url, "--member-id", absl::StrCat("s", i + 1)});
  auto argv = SchedulerArgv(ports, absl::StrCat("127.0.0.1:", m.rest),
                            absl::StrCat("127.0.0.1:", m.rpc), extra);
  m.process = std::make_unique<Process>(argv, absl::StrCat(dir_, "/scheduler-", i + 1, ".log"));
  if (!WaitFor([&] { return std::filesystem::exists(ports); }, std::chrono::seconds(20))) {
    throw std::runtime_error("scheduler member did not start:\n" + MemberLog(i));
  }
  std::tie(m.rest, m.rpc) = ReadPorts(ports);
  std::vector<std::string> urls;
  for (const Member& x : members_) {
    if (x.rest != 0) urls.push_back(absl::StrCat(tls_ ? "https" : "http", "://127.0.0.1:", x.rest));
  }
  client_ = std::make_unique<client::Client>(absl::StrJoin(urls, ","), kAdminToken,
                                             tls_ ? pki() + "/ca.pem" : "");
}

namespace {

// GET /readyz over plain HTTP with a 1 s timeout (a member may be frozen):
// the status code, 0 when none came.
int ReadyzStatus(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int code = 0;
  const std::string req = "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  char buf[64] = {0};
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()) &&
      read(fd, buf, sizeof buf - 1) > 12 && std::strncmp(buf, "HTTP/1.1 ", 9) == 0) {
    code = std::atoi(buf + 9);
  }
  close(fd);
  return code;
}

}  // namespace

int Cluster::WaitForLeader(std::chrono::milliseconds timeout) {
  int leader = -1;
  WaitFor(
      [&] {
        for (size_t i = 0; i < members_.size(); ++i) {
          if (!members_[i].process || !members_[i].process->running()) continue;
          int code;
          if (tls_) {
            client::Client c(absl::StrCat("https://127.0.0.1:", members_[i].rest), "",
                             pki() + "/ca.pem");
            std::string body;
            auto got = c.Raw("GET", "/readyz", "", &body);
            code = got.ok() ? *got : 0;
          } else {
            code = ReadyzStatus(members_[i].rest);
          }
          if (code == 200) {
            leader = static_cast<int>(i);
            return true;
          }
        }
        return false;
      },
      timeout);
  return leader;
}

std::string Cluster::SchedulerAddresses() const {
  if (members_.empty()) return "127.0.0.1:" + std::to_string(rpc_port_);
  std::vector<std::string> out;
  for (const Member& m : members_) out.push_back(absl::StrCat("127.0.0.1:", m.rpc));
  return absl::StrJoin(out, ",");
}

std::string Cluster::MemberLog(int i) const {
  std::ifstream f(absl::StrCat(dir_, "/scheduler-", i + 1, ".log"));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void Cluster::StartScheduler(uint16_t rpc_port, std::vector<std::string> extra) {
  const std::string ports = dir_ + "/ports-" + std::to_string(++scheduler_starts_) + ".json";
  auto argv = SchedulerArgv(ports, "127.0.0.1:0", "127.0.0.1:" + std::to_string(rpc_port),
                            std::move(extra));
  scheduler_ = std::make_unique<Process>(argv, dir_ + "/scheduler.log");
  // Thrown, not ASSERTed: gtest reports it as this test's failure and the
  // test body stops instead of going on with no client.
  if (!WaitFor([&] { return std::filesystem::exists(ports); }, std::chrono::seconds(20))) {
    throw std::runtime_error("scheduler did not start:\n" + SchedulerLog());
  }
  std::tie(rest_port_, rpc_port_) = ReadPorts(ports);
  client_ = ClientWith(kAdminToken);
  std::string body;
  const bool ready = WaitFor(
      [&] {
        auto c = client_->Raw("GET", "/readyz", "", &body);
        return c.ok() && *c == 200;
      },
      std::chrono::seconds(20));
  if (!ready) throw std::runtime_error("scheduler never became ready:\n" + SchedulerLog());
}

void Cluster::KillScheduler() {
  scheduler_->Signal(SIGKILL);
  EXPECT_GE(scheduler_->Wait(std::chrono::seconds(20)), 0);
}

void Cluster::SignalScheduler(int sig) { scheduler_->Signal(sig); }

void Cluster::StopScheduler() {
  scheduler_->Signal(SIGTERM);
  const int status = scheduler_->Wait(std::chrono::seconds(20));
  EXPECT_GE(status, 0) << "scheduler did not stop on SIGTERM";
  // A clean exit: under the sanitizers a report at shutdown (a use after
  // free in teardown, a leak) makes the exit status non-zero.
  EXPECT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "scheduler exit status " << status << "\n"
      << SchedulerLog();
}

std::string Cluster::SharedDir() {
  if (!shared_dir_.empty()) return shared_dir_;
  shared_dir_ = geteuid() == 0
                    ? "/run/portolan-it/" + std::filesystem::path(dir_).filename().string()
                    : dir_ + "/shared";
  std::filesystem::remove_all(shared_dir_);
  std::filesystem::create_directories(shared_dir_);
  std::filesystem::permissions(shared_dir_,
                               std::filesystem::perms::all | std::filesystem::perms::sticky_bit);
  return shared_dir_;
}

std::string Cluster::CgroupParent(const std::string& id) const {
  return "portolan-it/" + std::filesystem::path(dir_).filename().string() + "/" + id;
}

void Cluster::SweepJobs() {
  for (const auto& [id, block] : uid_blocks_) {
    for (int round = 0; round < 20; ++round) {
      std::set<uid_t> left = executor::UidsInUse("/proc", block->first(), block->last());
      if (left.empty()) break;
      for (uid_t uid : left) executor::KillAllOfUid(uid);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (geteuid() != 0 || agent_ids_.empty()) return;
  std::string why;
  const std::string test_parent = "portolan-it/" + std::filesystem::path(dir_).filename().string();
  for (const std::string& id : agent_ids_) {
    auto driver = executor::OpenCgroups("auto", "/proc/self/mounts", CgroupParent(id), &why);
    if (!driver.ok() || *driver == nullptr) continue;
    for (const std::string& name : (*driver)->List()) {
      auto cg = (*driver)->Open(name);
      if (!cg.ok()) continue;
      for (int round = 0; round < 100 && !(*cg)->Remove().ok(); ++round) {
        (*cg)->KillAll();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
  // The per-test and per-agent parents themselves.
  auto top = executor::OpenCgroups("auto", "/proc/self/mounts", test_parent, &why);
  if (top.ok() && *top != nullptr) {
    for (const std::string& name : (*top)->List()) {
      auto cg = (*top)->Open(name);
      if (cg.ok()) (void)(*cg)->Remove();
    }
    auto root = executor::OpenCgroups("auto", "/proc/self/mounts", "portolan-it", &why);
    if (root.ok() && *root != nullptr) {
      auto cg = (*root)->Open(std::filesystem::path(dir_).filename().string());
      if (cg.ok()) (void)(*cg)->Remove();
    }
  }
}

std::string Cluster::JobUidRange(const std::string& id) {
  auto& block = uid_blocks_[id];
  if (!block) block = std::make_unique<UidBlock>();
  EXPECT_TRUE(block->ok()) << "no free test uid block under /tmp/portolan-test-uids";
  return block->range();
}

Process* Cluster::StartAgent(const std::string& id, const std::string& site,
                             const std::string& synthetic, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {PORTOLAN_AGENT_BIN,
                                   "--id",
                                   id,
                                   "--site",
                                   site,
                                   "--scheduler",
                                   SchedulerAddresses(),
                                   "--state-dir",
                                   dir_ + "/agent-" + id,
                                   "--kill-grace-ms",
                                   "1000",
                                   "--reconnect-max-ms",
                                   "400"};
  if (tls_) {
    const std::string cert = AgentCert(id, site);
    argv.insert(argv.end(), {"--tls-cert", cert + ".pem", "--tls-key", cert + ".key", "--tls-ca",
                             pki() + "/ca.pem"});
  } else {
    argv.push_back("--insecure");
  }
  if (!synthetic.empty()) {  // empty: the real machine, as hwloc sees it
    argv.push_back("--topology-synthetic");
    argv.push_back(synthetic);
  }
  if (geteuid() == 0 && std::find(extra.begin(), extra.end(), "--job-uid-range") == extra.end()) {
    argv.insert(argv.end(), {"--job-uid-range", JobUidRange(id)});
  }
  if (geteuid() == 0 && std::find(extra.begin(), extra.end(), "--cgroup-parent") == extra.end()) {
    argv.insert(argv.end(), {"--cgroup-parent", CgroupParent(id)});
  }
  agent_ids_.insert(id);
  argv.insert(argv.end(), extra.begin(), extra.end());
  agents_.push_back(std::make_unique<Process>(argv, dir_ + "/agent-" + id + ".log"));
  bool up = WaitFor(
      [&] {
        auto a = client_->GetAgent(id);
        return a.ok() && a->connected();
      },
      std::chrono::seconds(20));
  EXPECT_TRUE(up) << "agent " << id << " did not register";
  return agents_.back().get();
}

std::pair<int, std::string> Cli(const Cluster& c, const std::string& args, bool with_stderr) {
  const std::string cmd = std::string("PORTOLAN_TOKEN=") + Cluster::kAdminToken +
                          " HOME=" + c.dir() + " " PORTOLAN_CLI_BIN " --server " + c.base_url() +
                          " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace portolan::testing
