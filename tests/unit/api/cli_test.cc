// SPDX-License-Identifier: Apache-2.0
// The CLI's command table, argument parsing and printers, without a server.
#include <sstream>

#include <gtest/gtest.h>

#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "api/cli/cli.h"
#include "api/cli/printers.h"
#include "portolan/codec/codec.h"

namespace portolan::cli {
namespace {

TEST(CliTableTest, ManualPageAndZshCompletionListEveryCommand) {
  const CommandTable t = AllCommands();
  const std::string man = ManualPage(t);
  EXPECT_EQ(man.rfind(".TH PORTOLAN 1 ", 0), 0u);
  const std::string zsh = ZshCompletion(t);
  EXPECT_EQ(zsh.rfind("#compdef portolan\n", 0), 0u);
  for (const Command& c : t.all()) {
    // Each command is a tagged paragraph; roff needs its hyphens escaped.
    std::string synopsis;
    for (char ch : c.synopsis) synopsis += ch == '-' ? std::string("\\-") : std::string(1, ch);
    EXPECT_NE(man.find(".TP\n.B " + synopsis + "\n"), std::string::npos) << c.name;
    EXPECT_NE(zsh.find("    '" + c.name + ":"), std::string::npos) << c.name;
  }
  // No line of the page starts a roff request by accident.
  for (absl::string_view line : absl::StrSplit(man, '\n')) {
    if (line.empty() || line[0] != '.') continue;
    const absl::string_view request = line.substr(0, line.find(' '));
    EXPECT_TRUE(request == ".TH" || request == ".SH" || request == ".TP" || request == ".B" ||
                request == ".BI" || request == ".BR" || request == ".IR" || request == ".br" ||
                request == ".nf" || request == ".fi")
        << line;
  }
}

TEST(CliTableTest, EveryCommandHasHelpAndASynopsisStartingWithItsName) {
  const CommandTable t = AllCommands();
  EXPECT_EQ(
      t.Names(),
      "submit jobs tasks job wait watch cancel logs agents agent cordon drain uncordon plan "
      "explain policy network sites cluster tenants tenant audit violations datasets dataset token "
      "version metrics "
      "completion help");
  for (const Command& c : t.all()) {
    EXPECT_EQ(c.help.rfind(c.name + " ", 0), 0u) << c.name << ": " << c.help;
    EXPECT_EQ(c.synopsis.rfind(c.name, 0), 0u) << c.name << ": " << c.synopsis;
    EXPECT_TRUE(c.run) << c.name;
    EXPECT_LE(c.min_args, c.max_args) << c.name;
  }
  EXPECT_NE(t.Find("submit"), nullptr);
  EXPECT_EQ(t.Find("frobnicate"), nullptr);
}

TEST(CliTableTest, ASecondCommandOfTheSameNameIsRefused) {
  CommandTable t;
  t.Add({"x", "x", "x   one", nullptr, 0, 0, false, [](Context&, const Args&) { return 0; }});
  EXPECT_DEATH(
      t.Add({"x", "x", "x   two", nullptr, 0, 0, false, [](Context&, const Args&) { return 0; }}),
      "command 'x' defined twice");
}

TEST(CliArgsTest, SubmitTakesFlagsAndTheCommandAfterDashes) {
  const CommandTable t = AllCommands();
  Args a;
  ASSERT_TRUE(ParseArgs(*t.Find("submit"),
                        {"--name", "n", "--cpus", "2", "--env", "A=1", "--env", "B=2", "--wait",
                         "--", "sh", "-c", "echo -o json"},
                        &a)
                  .ok());
  EXPECT_EQ(a.vm["name"].as<std::string>(), "n");
  EXPECT_EQ(a.vm["cpus"].as<int>(), 2);
  EXPECT_EQ(a.get<std::vector<std::string>>("env", {}).size(), 2u);
  EXPECT_TRUE(a.get<bool>("wait", false));
  EXPECT_TRUE(a.args.empty());
  // What follows "--" is the job's, even what looks like a flag.
  EXPECT_EQ(a.rest, (std::vector<std::string>{"sh", "-c", "echo -o json"}));
}

TEST(CliArgsTest, BadArgumentsAreRefusedWithAReason) {
  const CommandTable t = AllCommands();
  Args a1, a2, a3, a4, a5;
  absl::Status st = ParseArgs(*t.Find("submit"), {"--cpus", "two"}, &a1);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("--cpus"), std::string::npos) << st.message();
  st = ParseArgs(*t.Find("jobs"), {"--bogus"}, &a2);
  EXPECT_NE(st.message().find("--bogus"), std::string::npos) << st.message();
  EXPECT_FALSE(ParseArgs(*t.Find("job"), {}, &a3).ok());
  EXPECT_FALSE(ParseArgs(*t.Find("job"), {"a", "b"}, &a4).ok());
  st = ParseArgs(*t.Find("jobs"), {"--", "x"}, &a5);
  EXPECT_EQ(st.message(), "unexpected '--'");
  Args ok;
  ASSERT_TRUE(ParseArgs(*t.Find("wait"), {"job-1", "--timeout-s", "5"}, &ok).ok());
  EXPECT_EQ(ok.args, std::vector<std::string>{"job-1"});
  EXPECT_EQ(ok.vm["timeout-s"].as<int>(), 5);
}

template <typename M>
M Parse(const std::string& json) {
  M m;
  absl::Status st = codec::ParseJson(json, &m);
  EXPECT_TRUE(st.ok()) << st.message();
  return m;
}

TEST(CliPrintersTest, AJobShowsItsAllocationExitAndEvents) {
  auto job = Parse<v1::Job>(R"({"id": "job-1", "name": "etl", "tenant": "acme",
      "state": "failed", "exit_code": 3, "command": ["sh", "-c", "exit 3"],
      "resources": {"cpus": 2, "memory_mb": 64},
      "allocation": {"agent": "lg1", "site": "lingang-idc-1", "pus": [0, 1, 2, 5],
                     "numa_nodes": [0], "numa_memory_mb": {"0": 64}},
      "events": [{"state": "queued", "message": "submitted"}]})");
  std::ostringstream out;
  PrintJob(out, job);
  const std::string s = out.str();
  EXPECT_NE(s.find("Job job-1 (etl)"), std::string::npos) << s;
  EXPECT_NE(s.find("agent lg1 at site lingang-idc-1"), std::string::npos) << s;
  EXPECT_NE(s.find("PUs 0-2,5"), std::string::npos) << s;
  EXPECT_NE(s.find("64 MiB on NUMA 0"), std::string::npos) << s;
  EXPECT_NE(s.find("exit code:  3"), std::string::npos) << s;
  EXPECT_NE(s.find("queued        submitted"), std::string::npos) << s;
  EXPECT_EQ(ExitColumn(job), "3");
  EXPECT_TRUE(Terminal(job.state()));
}

TEST(CliPrintersTest, AnAgentIsDrawnWithTheJobOnEachPu) {
  auto agent = Parse<v1::Agent>(R"({"id": "lg1", "site": "lingang-idc-1", "state": "ready",
      "connected": true,
      "topology": {"source": "synthetic", "packages": 1, "pus": 4, "memory_mb": 1024,
        "numa_nodes": [{"os_index": 0, "memory_mb": 1024}],
        "cores": [{"index": 0, "package": 0, "numa": 0, "pus": [0, 1]},
                  {"index": 1, "package": 0, "numa": 0, "pus": [2, 3]}]},
      "pu_jobs": {"0": "job-a", "1": "job-a", "3": "job-b"}})");
  std::ostringstream out;
  DrawAgent(out, agent);
  const std::string s = out.str();
  EXPECT_NE(s.find("[0:AA] [1:.B]"), std::string::npos) << s;
  EXPECT_NE(s.find("A job-a, B job-b"), std::string::npos) << s;
  EXPECT_NE(s.find("NUMA 0 (1024 MiB"), std::string::npos) << s;
}

TEST(CliPrintersTest, ADecisionListsEverySiteAndWhyNot) {
  auto d = Parse<v1::Decision>(R"({"feasible": false, "reason": "no site allowed",
      "policy_version": "3",
      "sites": [{"site": "sg-1", "regime": "SG", "allowed": false, "rtt_ms": 34.5,
                 "transfer_s": -1, "rejected": ["residency: personal data may not leave CN"],
                 "agents": {"feasible": 0, "considered": 2}}]})");
  std::ostringstream out;
  PrintDecision(out, d);
  const std::string s = out.str();
  EXPECT_NE(s.find("No placement yet (policy 3)"), std::string::npos) << s;
  EXPECT_NE(s.find("sg-1"), std::string::npos) << s;
  EXPECT_NE(s.find("34.5"), std::string::npos) << s;
  EXPECT_NE(s.find("0/2"), std::string::npos) << s;
  EXPECT_NE(s.find("personal data may not leave CN"), std::string::npos) << s;
  EXPECT_EQ(Fixed(-1), "-");
}

TEST(CliPrintersTest, TheNetworkMatrixSaysNoneWhereNoLinkIsUp) {
  auto n = Parse<v1::NetworkView>(R"({
      "sites": [{"id": "a"}, {"id": "b"}],
      "links": [{"id": "a-b", "a": "a", "b": "b", "rtt_ms": 5, "gbps": 10, "up": false}],
      "matrix": [{"from": "a", "to": "b", "rtt_ms": -1}, {"from": "b", "to": "a", "rtt_ms": -1}]})");
  std::ostringstream out;
  PrintNetwork(out, n);
  const std::string s = out.str();
  EXPECT_NE(s.find("NO"), std::string::npos) << s;
  EXPECT_NE(s.find("none"), std::string::npos) << s;
}

TEST(CliPrintersTest, TheClusterNamesTheLeaderAndAnUnhealthyStore) {
  v1::ClusterView v;
  v.set_leader("s1");
  auto* a = v.add_members();
  a->set_id("s1");
  a->set_role("leader");
  a->set_rest_addr("https://10.0.0.1:7080");
  auto* b = v.add_members();
  b->set_id("s2");
  b->set_role("standby");
  v.mutable_store()->set_kind("etcd");
  v.mutable_store()->add_endpoints("10.0.0.5:2379");
  v.mutable_store()->add_problems("etcd member 10.0.0.6:2379: connection refused");
  std::ostringstream out;
  PrintCluster(out, v);
  const std::string s = out.str();
  EXPECT_NE(s.find("s1                   leader   https://10.0.0.1:7080"), std::string::npos) << s;
  EXPECT_NE(s.find("s2                   standby"), std::string::npos) << s;
  EXPECT_NE(s.find("leader: s1"), std::string::npos) << s;
  EXPECT_NE(s.find("store: etcd 10.0.0.5:2379 (NOT healthy)"), std::string::npos) << s;
  EXPECT_NE(s.find("  etcd member 10.0.0.6:2379: connection refused"), std::string::npos) << s;
}

TEST(CliPrintersTest, ExpiringInstrumentsShowTheDaysLeft) {
  auto r = Parse<v1::ListTenantsResponse>(R"({"tenants": [{"id": "acme", "instruments": [
      {"type": "standard_contract", "from": "CN", "to": "SG", "expires": "2027-01-01"},
      {"type": "certification", "expires": "2026-11-30"}]}]})");
  std::ostringstream out;
  PrintExpiringInstruments(out, r, 90, absl::CivilDay(2026, 12, 2));
  const std::string s = out.str();
  EXPECT_NE(s.find("CN->SG"), std::string::npos) << s;
  EXPECT_NE(s.find("30"), std::string::npos) << s;
  EXPECT_NE(s.find("expired 2 day(s) ago"), std::string::npos) << s;
  std::ostringstream none;
  PrintExpiringInstruments(none, v1::ListTenantsResponse(), 30, absl::CivilDay(2026, 12, 2));
  EXPECT_EQ(none.str().find("no instrument expires within 30 day(s)") != std::string::npos, true);
  std::ostringstream v;
  PrintViolations(v, v1::ListViolationsResponse());
  EXPECT_EQ(v.str(), "no placed or running job is in violation of the policy in force\n");
}

TEST(CliPrintersTest, ASimulationShowsItsSummaryAndTheChangedJobs) {
  auto r = Parse<v1::SimulateResponse>(R"({"jobs_examined": 12, "active_jobs": 10,
      "history_jobs": 2, "decision_classes": 4, "policy_version": "v7", "elapsed_ms": 3.2,
      "changes_truncated": true,
      "changes": [{"job": "job-1", "tenant": "sc", "kind": "violation", "state": "running",
                   "from": {"site": "singapore-1", "agent": "sg1"},
                   "reason": "not allowed at singapore-1: residency: no-cn-to-sg"}],
      "summary": {"violations": 1, "moved": 3, "currency": "USD", "cost_delta": -0.01,
                  "rtt_ms_p50_delta": 12.5,
                  "cross_border": {"removed": [{"from": "CN", "to": "SG", "rule": "cn-pi",
                                                "jobs": 1}]},
                  "instruments_newly_required": [{"tenant": "sc",
                                                  "type": "cn_standard_contract",
                                                  "jobs": 1}]}})");
  std::ostringstream out;
  PrintSimulation(out, r);
  const std::string s = out.str();
  for (const char* want :
       {"12 job(s) examined (10 active, 2 history; 4 decision classes) against policy v7",
        "violations 1, moved 3", "cross-border removed: CN->SG under cn-pi (1 jobs)",
        "sc needs cn_standard_contract for 1 job(s)", "RTT p50 +12.5 ms, cost -0.0100 USD/h",
        "job-1", "singapore-1/sg1", "only the first 1 changes"}) {
    EXPECT_NE(s.find(want), std::string::npos) << want << "\n" << s;
  }
  std::ostringstream none;
  PrintSimulation(none, v1::SimulateResponse());
  EXPECT_NE(none.str().find("no job would be treated differently"), std::string::npos);
}

}  // namespace
}  // namespace portolan::cli
