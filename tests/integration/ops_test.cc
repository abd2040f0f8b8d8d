// SPDX-License-Identifier: Apache-2.0
// Operability against the real daemons: Prometheus metrics.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "../support/prometheus_text.h"
#include "gtest/gtest.h"
#include "harness.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/config.pb.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;
using test_support::ParsePrometheusText;

std::string RunCapture(const std::string& cmd);

// What `promtool check metrics` (Prometheus's exposition linter, from the
// Debian package prometheus that deploy/install-deps.sh installs) says about
// `body`: "" when it is clean.
std::string PromtoolCheckMetrics(const std::string& dir, const std::string& body) {
  const std::string file = dir + "/metrics.txt";
  std::ofstream(file) << body;
  const std::string out = RunCapture("promtool check metrics < " + file + " 2>&1; echo rc=$?");
  return out == "rc=0\n" ? "" : out;
}

TEST(OpsIT, SchedulerMetricsParseStrictlyAndCountWhatHappened) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  v1::Job spec = JobSpec({"/bin/sleep", "30"}, 8, "acme");  // the whole agent
  auto job = c.client().Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(WaitForState(c.client(), job->id(), v1::Job::running));
  // One job waits for PUs to free up; one can never fit (20 PUs on 8).
  spec.mutable_resources()->set_cpus(1);
  ASSERT_TRUE(c.client().Submit(spec).ok());
  spec.mutable_resources()->set_cpus(20);
  ASSERT_TRUE(c.client().Submit(spec).ok());

  std::string body;
  auto code = c.client().Raw("GET", "/metrics", "", &body);
  ASSERT_TRUE(code.ok());
  ASSERT_EQ(*code, 200) << body;
  auto ex = ParsePrometheusText(body);
  ASSERT_TRUE(ex.ok()) << ex.error << "\n" << body;
  EXPECT_EQ(ex.Value("portolan_submits_total", {{"tenant", "acme"}}), 3);
  EXPECT_GE(ex.Value("portolan_decisions_total", {{"result", "placed"}}), 1);
  EXPECT_GE(ex.Value("portolan_decisions_total", {{"result", "waiting"}}), 1);
  EXPECT_EQ(ex.Value("portolan_decisions_total", {{"result", "unschedulable"}}), 1);
  EXPECT_GE(ex.Sum("portolan_rejections_total"), 1);
  EXPECT_GE(ex.Value("portolan_decision_duration_seconds_count"), 3);
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "running"}, {"tenant", "acme"}}), 1);
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "unschedulable"}, {"tenant", "acme"}}), 1);
  EXPECT_EQ(ex.Value("portolan_jobs", {{"state", "queued"}, {"tenant", "acme"}}), 1);
  EXPECT_EQ(ex.Value("portolan_queue_depth"), 1);
  EXPECT_GE(ex.Value("portolan_oldest_waiting_job_age_seconds"), 0);
  EXPECT_EQ(ex.Value("portolan_agents", {{"site", "lingang-idc-1"}, {"state", "ready"}}), 1);
  EXPECT_EQ(ex.Value("portolan_agent_connections"), 1);
  EXPECT_GE(ex.Value("portolan_store_commit_duration_seconds_count"), 3);
  EXPECT_GE(ex.Value("portolan_store_commit_writes_sum"), 3);
  EXPECT_EQ(ex.Value("portolan_policy_version"), 1);
  EXPECT_GE(ex.Value("portolan_http_requests_total", {{"code", "201"}}), 3);
  EXPECT_TRUE(WaitFor(
      [&] {
        if (!c.client().Raw("GET", "/metrics", "", &body).ok()) return false;
        auto e = ParsePrometheusText(body);
        return e.Value("portolan_agent_heartbeat_rtt_seconds",
                       {{"agent", "lg1"}, {"site", "lingang-idc-1"}}) > 0;
      },
      seconds(10)))
      << body;
  // Job ids never become labels.
  EXPECT_EQ(body.find(job->id()), std::string::npos);
  // Each link of the policy in force, up; Prometheus's own linter is clean.
  auto links = ParsePrometheusText(body);
  EXPECT_GE(links.Sum("portolan_link_up"), 10) << body;
  EXPECT_EQ(links.Value("portolan_link_up",
                        {{"link", "sjc2-lg1-hkg"}, {"kind", "submarine"}, {"cable", "SJC2"}}),
            1)
      << body;
  EXPECT_EQ(PromtoolCheckMetrics(c.dir(), body), "") << "promtool check metrics";

  // Metrics name tenants and agents: operators and admins only.
  auto tenant = c.ClientWith(Cluster::kAcmeToken);
  EXPECT_EQ(*tenant->Raw("GET", "/metrics", "", &body), 403);
  auto op = c.ClientWith(Cluster::kOperatorToken);
  EXPECT_EQ(*op->Raw("GET", "/metrics", "", &body), 200);
  auto anonymous = c.ClientWith("");
  EXPECT_EQ(*anonymous->Raw("GET", "/metrics", "", &body), 401);
  EXPECT_TRUE(c.client().Cancel(job->id()).ok());
}

TEST(OpsIT, AgentMetricsListenerServesItsOwnState) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1", "pack:1 numa:1(memory=16GiB) core:4 pu:2",
               {"--metrics-addr", "127.0.0.1:0"});
  // The bound port is in the agent's log.
  std::string url;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::ifstream f(c.dir() + "/agent-lg1.log");
        std::string log((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        size_t p = log.find("metrics at http://");
        if (p == std::string::npos) return false;
        size_t end = log.find("/metrics", p + 18);
        url = log.substr(p + 11, end - p - 11);
        return true;
      },
      seconds(10)));
  v1::Job spec = JobSpec({"/bin/sleep", "30"}, 2, "acme");
  auto sleeper = c.client().Submit(spec);
  ASSERT_TRUE(sleeper.ok());
  spec.clear_command();
  spec.add_command("/nonexistent/binary");
  auto broken = c.client().Submit(spec);
  ASSERT_TRUE(broken.ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto a = c.client().GetJob(sleeper->id());
        auto b = c.client().GetJob(broken->id());
        return a.ok() && b.ok() && a->state() == v1::Job::running && b->state() == v1::Job::failed;
      },
      seconds(20)));

  client::Client agent(url);
  std::string body;
  auto code = agent.Raw("GET", "/metrics", "", &body);
  ASSERT_TRUE(code.ok()) << code.status();
  ASSERT_EQ(*code, 200);
  auto ex = ParsePrometheusText(body);
  ASSERT_TRUE(ex.ok()) << ex.error << "\n" << body;
  EXPECT_EQ(ex.Value("portolan_agent_running_jobs"), 1);
  EXPECT_EQ(ex.Value("portolan_agent_pus"), 8);
  EXPECT_EQ(ex.Value("portolan_agent_free_pus"), 6);
  EXPECT_EQ(ex.Value("portolan_agent_executor_errors_total"), 1);
  EXPECT_EQ(ex.Value("portolan_agent_job_updates_total", {{"state", "failed"}}), 1);
  EXPECT_GE(ex.Value("portolan_agent_job_updates_total", {{"state", "running"}}), 1);
  EXPECT_EQ(ex.Value("portolan_agent_connected"), 1);
  EXPECT_GT(ex.Value("portolan_agent_memory_available_bytes"), 0);
  EXPECT_EQ(PromtoolCheckMetrics(c.dir(), body), "") << "promtool check metrics";
  EXPECT_EQ(*agent.Raw("GET", "/other", "", &body), 404);
  EXPECT_EQ(*agent.Raw("POST", "/metrics", "", &body), 405);
  EXPECT_TRUE(c.client().Cancel(sleeper->id()).ok());
}

// A fake systemd notify socket: collects the datagrams a daemon sends.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    unlink(path.c_str());
    bind_ok_ = bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~NotifySocket() {
    Stop();
    close(fd_);
    unlink(path_.c_str());
  }
  bool ok() const { return fd_ >= 0 && bind_ok_; }
  // Reads continuously, as systemd does (a full queue would block the
  // sender: the default queue is only 10 datagrams).
  void Start() {
    reader_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0) continue;
        char buf[4096];
        ssize_t n = recv(fd_, buf, sizeof buf, 0);
        std::lock_guard<std::mutex> lock(mu_);
        if (n > 0) messages_.emplace_back(buf, static_cast<size_t>(n));
      }
    });
  }
  void Stop() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
  }
  // Messages received since the last call.
  std::vector<std::string> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(messages_, {});
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bind_ok_ = false;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> messages_;
};

int Count(const std::vector<std::string>& msgs, const std::string& what) {
  int n = 0;
  for (const std::string& m : msgs) n += m.find(what) != std::string::npos ? 1 : 0;
  return n;
}

TEST(OpsIT, DaemonsNotifySystemdReadyWatchdogAndStopping) {
  Cluster c;
  NotifySocket sched_sock(c.dir() + "/sched.notify");
  NotifySocket agent_sock(c.dir() + "/agent.notify");
  ASSERT_TRUE(sched_sock.ok() && agent_sock.ok());
  sched_sock.Start();
  agent_sock.Start();
  // The daemons inherit the environment of the test process.
  setenv("WATCHDOG_USEC", "400000", 1);
  setenv("NOTIFY_SOCKET", (c.dir() + "/sched.notify").c_str(), 1);
  c.StartScheduler();
  setenv("NOTIFY_SOCKET", (c.dir() + "/agent.notify").c_str(), 1);
  c.StartAgent("lg1", "lingang-idc-1");
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");

  // Collects each socket's messages until `done` holds for them (10 s at most).
  std::vector<std::string> sched, agent;
  auto collect = [&](const std::function<bool()>& done) {
    return WaitFor(
        [&] {
          for (auto& m : sched_sock.Take()) sched.push_back(std::move(m));
          for (auto& m : agent_sock.Take()) agent.push_back(std::move(m));
          return done();
        },
        std::chrono::seconds(10));
  };
  // WATCHDOG about every 100 ms: three pings take some 300 ms.
  EXPECT_TRUE(collect([&] {
    return Count(sched, "READY=1") >= 1 && Count(sched, "WATCHDOG=1") >= 3 &&
           Count(agent, "STATUS=registered with the scheduler") >= 1 &&
           Count(agent, "WATCHDOG=1") >= 3;
  }));
  EXPECT_EQ(Count(sched, "READY=1"), 1);
  EXPECT_EQ(Count(sched, "STATUS=serving REST on 127.0.0.1:"), 1);
  EXPECT_GE(Count(sched, "WATCHDOG=1"), 3);
  EXPECT_EQ(Count(agent, "READY=1"), 1);
  EXPECT_EQ(Count(agent, "STATUS=registered with the scheduler"), 1);
  EXPECT_GE(Count(agent, "WATCHDOG=1"), 3);

  sched.clear();
  agent.clear();
  c.StopScheduler();
  // The scheduler says it stops; the agent notices and says so.
  EXPECT_TRUE(collect([&] {
    return Count(sched, "STOPPING=1") >= 1 &&
           Count(agent, "STATUS=connecting to the scheduler") >= 1;
  }));
  EXPECT_EQ(Count(sched, "STOPPING=1"), 1);
  EXPECT_EQ(Count(agent, "STATUS=connecting to the scheduler"), 1);
}

std::string RunCapture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// The flags a daemon's --help lists.
std::set<std::string> HelpFlags(const std::string& binary) {
  std::set<std::string> flags;
  std::istringstream in(RunCapture(binary + " --help"));
  std::string line;
  while (std::getline(in, line)) {
    // Option lines start with two spaces: "  --name arg" or "  -h [ --help ]";
    // description continuation lines are indented further.
    size_t p;
    if (line.rfind("  --", 0) == 0) {
      p = 2;
    } else if (line.rfind("  -", 0) == 0 && line.find("[ --") != std::string::npos) {
      p = line.find("[ --") + 2;
    } else {
      continue;
    }
    size_t end = line.find_first_of(" \t]", p);
    flags.insert(line.substr(p + 2, end - p - 2));
  }
  return flags;
}

std::set<std::string> ConfigFlags(const google::protobuf::Descriptor* d,
                                  const std::map<std::string, std::string>& renames) {
  std::set<std::string> flags;
  for (int i = 0; i < d->field_count(); ++i) {
    std::string name = d->field(i)->name();
    if (renames.count(name)) name = renames.at(name);
    std::replace(name.begin(), name.end(), '_', '-');
    flags.insert(name);
  }
  return flags;
}

TEST(OpsIT, EveryDaemonFlagIsAConfigFieldAndTheShippedConfigsLoad) {
  std::set<std::string> sched = HelpFlags(PORTOLAN_SCHEDULER_BIN);
  ASSERT_GT(sched.size(), 20u);
  for (const char* action : {"help", "version", "config"}) EXPECT_EQ(sched.erase(action), 1u);
  EXPECT_EQ(sched, ConfigFlags(v1::SchedulerConfig::descriptor(), {}));
  std::set<std::string> agent = HelpFlags(PORTOLAN_AGENT_BIN);
  for (const char* action : {"help", "version", "config", "print-topology"})
    EXPECT_EQ(agent.erase(action), 1u);
  EXPECT_EQ(agent, ConfigFlags(v1::AgentConfig::descriptor(),
                               {{"labels", "label"}, {"tenant_users", "tenant-user"}}));

  v1::SchedulerConfig sc;
  EXPECT_TRUE(codec::LoadFile(PORTOLAN_SOURCE_DIR "/deploy/config/scheduler.yaml", &sc).ok());
  EXPECT_EQ(sc.rest_addr(), "0.0.0.0:7080");
  v1::AgentConfig ac;
  EXPECT_TRUE(codec::LoadFile(PORTOLAN_SOURCE_DIR "/deploy/config/agent.yaml", &ac).ok());
  EXPECT_EQ(ac.site(), "lingang-idc-1");
}

TEST(OpsIT, SchedulerReadsItsConfigFileAndFlagsWin) {
  Cluster c;
  const std::string cfg = c.dir() + "/scheduler.yaml";
  std::ofstream(cfg) << "rest_addr: 127.0.0.1:0\nrpc_addr: 127.0.0.1:0\nstate_dir: " << c.dir()
                     << "/state\ntokens: " << c.tokens_path() << "\ninsecure: true\npolicy: "
                     << PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml\nports_file: " << c.dir()
                     << "/ports.json\nmax_body_bytes: 1000\nrate_limit_rps: 0\n";
  Process s({PORTOLAN_SCHEDULER_BIN, "--config", cfg, "--max-body-bytes", "5000"},
            c.dir() + "/sched.log");
  ASSERT_TRUE(
      WaitFor([&] { return std::filesystem::exists(c.dir() + "/ports.json"); }, seconds(20)))
      << RunCapture("cat " + c.dir() + "/sched.log");
  std::ifstream f(c.dir() + "/ports.json");
  std::string ports((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const int rest = std::stoi(ports.substr(ports.find("\"rest\": ") + 8));
  client::Client client("http://127.0.0.1:" + std::to_string(rest), Cluster::kAdminToken);
  std::string body;
  // The token file came from the config: authenticated calls work, others get 401.
  EXPECT_EQ(*client.Raw("GET", "/v1/agents", "", &body), 200);
  EXPECT_EQ(*client::Client("http://127.0.0.1:" + std::to_string(rest))
                 .Raw("GET", "/v1/agents", "", &body),
            401);
  // --max-body-bytes 5000 on the command line wins over the file's 1000.
  const std::string pad(3000, ' ');
  EXPECT_EQ(*client.Raw("POST", "/v1/jobs", "{\"command\": [\"/bin/true\"]" + pad + "}", &body),
            400);  // read and validated (no resources), not refused for size
  EXPECT_EQ(*client.Raw("POST", "/v1/jobs", "{" + std::string(6000, ' ') + "}", &body), 413);
  s.Signal(SIGTERM);
  EXPECT_GE(s.Wait(seconds(20)), 0);

  // An unknown key is refused with the file and the key.
  const std::string bad = c.dir() + "/bad.yaml";
  std::ofstream(bad) << "rest_adr: 127.0.0.1:0\n";
  Process b({PORTOLAN_SCHEDULER_BIN, "--config", bad}, c.dir() + "/bad.log");
  int status = b.Wait(seconds(20));
  EXPECT_TRUE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 2);
  EXPECT_NE(RunCapture("cat " + c.dir() + "/bad.log").find("rest_adr"), std::string::npos);
}

TEST(OpsIT, CliOutputsWatchHelpCompletionAndExitCodes) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto [rc, out] = Cli(c, "-o json submit --name w --cpus 1 --memory-mb 64 -- /bin/echo hi");
  ASSERT_EQ(rc, 0) << out;
  v1::Job submitted;
  ASSERT_TRUE(codec::ParseJson(out, &submitted).ok()) << out;

  // watch prints every event until the job ends, and exits 0 on success.
  std::tie(rc, out) = Cli(c, "watch " + submitted.id() + " --timeout-s 30");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("queued"), std::string::npos) << out;
  EXPECT_NE(out.find("succeeded"), std::string::npos) << out;

  // -o yaml is the same Job, in YAML.
  std::tie(rc, out) = Cli(c, "-o yaml job " + submitted.id());
  ASSERT_EQ(rc, 0);
  v1::Job from_yaml;
  ASSERT_TRUE(codec::ParseYaml(out, &from_yaml, "", codec::JsonMode::kAny).ok()) << out;
  EXPECT_EQ(from_yaml.id(), submitted.id());
  EXPECT_EQ(from_yaml.state(), v1::Job::succeeded);
  EXPECT_EQ(out.find("\"id\""), std::string::npos) << "block style expected:\n" << out;

  // Exit codes scripts rely on: 1 refused, 2 usage, 3 unreachable.
  EXPECT_EQ(Cli(c, "job job-000000000000").first, 1);
  EXPECT_EQ(Cli(c, "frobnicate").first, 2);
  EXPECT_EQ(Cli(c, "-o xml jobs").first, 2);
  EXPECT_EQ(system(PORTOLAN_CLI_BIN " --server http://127.0.0.1:1 jobs >/dev/null 2>&1") >> 8, 3);
  // A job file that cannot be read is a usage error; so is a --limit the
  // server would refuse, and the message names the flag.
  std::tie(rc, out) = Cli(c, "submit /nonexistent/job.yaml", true);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("/nonexistent/job.yaml: cannot open"), std::string::npos) << out;
  std::tie(rc, out) = Cli(c, "jobs --limit 0", true);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("--limit must be 1-1000"), std::string::npos) << out;
  EXPECT_EQ(out.find("page_size"), std::string::npos) << out;
  // Versions, and help for one command both ways.
  std::tie(rc, out) = Cli(c, "--version");
  EXPECT_EQ(out, "portolan " PORTOLAN_VERSION "\n");
  std::tie(rc, out) = Cli(c, "version");
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("server: portolan-scheduler " PORTOLAN_VERSION " at http://"),
            std::string::npos)
      << out;
  EXPECT_EQ(Cli(c, "help submit").second, Cli(c, "submit --help").second);
  EXPECT_EQ(Cli(c, "help frobnicate").first, 2);
  // Without a token the 401 says which variable to set.
  out = RunCapture("env -u PORTOLAN_TOKEN HOME=" + c.dir() + " " PORTOLAN_CLI_BIN " --server " +
                   c.base_url() + " jobs 2>&1");
  EXPECT_NE(out.find("hint: no token was sent: set PORTOLAN_TOKEN"), std::string::npos) << out;
  // https:// to this plain-HTTP scheduler says so.
  const std::string authority = "127.0.0.1:" + std::to_string(c.rest_port());
  std::tie(rc, out) = Cli(c, "--server https://" + authority + " jobs", true);
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("hint: " + authority + " speaks plain HTTP, not HTTPS: use --server http://" +
                     authority),
            std::string::npos)
      << out;
  // -o yaml quotes the strings YAML would read as booleans or numbers.
  std::tie(rc, out) = Cli(
      c, "-o yaml submit --name yes --cpus 1 --memory-mb 64 --env A=0123 --env B=off -- /bin/true");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("name: \"yes\""), std::string::npos) << out;
  EXPECT_NE(out.find("A: \"0123\""), std::string::npos) << out;
  EXPECT_NE(out.find("B: \"off\""), std::string::npos) << out;
  EXPECT_NE(out.find("cpus: 1\n"), std::string::npos) << "numbers stay plain\n" << out;
  // Every command has --help.
  for (const char* cmd :
       {"submit", "jobs",    "job",    "wait",     "watch", "cancel",  "logs",       "agents",
        "agent",  "cordon",  "drain",  "uncordon", "plan",  "explain", "policy",     "network",
        "sites",  "tenants", "tenant", "audit",    "token", "metrics", "completion", "version"}) {
    auto [help_rc, help] = Cli(c, std::string(cmd) + " --help");
    EXPECT_EQ(help_rc, 0) << cmd;
    EXPECT_NE(help.find(std::string(cmd) + " "), std::string::npos) << cmd << ": " << help;
  }
  // The metrics command prints the exposition.
  std::tie(rc, out) = Cli(c, "metrics");
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(ParsePrometheusText(out).ok());
  // bash completion completes commands and job ids.
  const std::string script = c.dir() + "/completion.bash";
  ASSERT_EQ(system((PORTOLAN_CLI_BIN " completion bash > " + script).c_str()), 0);
  std::tie(rc, out) = std::make_pair(
      0, RunCapture("bash -c 'source " + script +
                    "; COMP_WORDS=(portolan wat); COMP_CWORD=1; _portolan; echo ${COMPREPLY[@]}'"));
  EXPECT_EQ(out, "watch\n");
  // zsh completes the same through its own completion system: an interactive
  // zsh in a pseudo-terminal (zpty) with _portolan in its fpath, given
  // "portolan wat<TAB>".
  const std::string fpath = c.dir() + "/zsh";
  ASSERT_EQ(system(("mkdir -p " + fpath + " && " PORTOLAN_CLI_BIN " completion zsh > " + fpath +
                    "/_portolan")
                       .c_str()),
            0);
  const std::string driver = c.dir() + "/complete.zsh";
  std::ofstream(driver) << "zmodload zsh/zpty\n"
                        << "zpty z 'zsh -f -i'\n"
                        << "zpty -w z \"PS1='> '; fpath=(" << fpath
                        << " \\$fpath); autoload -U compinit; compinit -u -D\"\n"
                        << "zpty -w -n z $'portolan wat\\t'\n"
                        << "out=''\n"
                        << "for i in {1..200}; do\n"  // up to 20 s on a loaded machine
                        << "  zpty -r -t z chunk 2>/dev/null && out+=$chunk\n"
                        << "  [[ $out == *'portolan watch'* ]] && break; sleep 0.1\n"
                        << "done\n"
                        << "zpty -d z\n"
                        << "[[ $out == *'portolan watch'* ]] && print completed\n";
  EXPECT_EQ(RunCapture("timeout 30 zsh -f " + driver), "completed\n")
      << "zsh (deploy/install-deps.sh installs it) did not complete 'portolan wat'";
}

}  // namespace
}  // namespace portolan::testing
