#include "portolan/codec.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "portolan/v1/config.pb.h"
#include "portolan/v1/job.pb.h"

namespace portolan {
namespace {

TEST(CodecTest, ParsesDesignJobExample) {
  v1::Job job;
  absl::Status st = ParseJson(R"({
    "name": "genome-align", "tenant": "acme", "kind": "data_processing",
    "command": ["/usr/bin/env", "python3", "align.py"], "env": {"THREADS": "8"},
    "resources": {"cpus": 8, "memory_mb": 16384, "gpus": 0},
    "topology": {"numa": "single", "smt": "exclusive"},
    "datasets": [{"id": "reads-2026q3", "origin": "CN", "location": "lingang-idc-1", "size_gb": 500,
      "categories": ["personal"], "subjects": 250000, "sensitive_subjects": 0, "sector": "biomedicine"}],
    "placement": {"sites": [], "avoid_sites": [], "max_rtt_ms": {"hongkong-1": 40}},
    "priority": 50, "max_runtime_s": 3600,
    "restart": {"policy": "on_agent_loss", "max_attempts": 3}, "idempotency_key": "c0ffee-1"})",
                              &job);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(job.kind(), v1::Job::data_processing);
  EXPECT_EQ(job.topology().numa(), v1::TopologyRequest::single);
  EXPECT_EQ(job.datasets(0).categories(0), v1::Dataset::personal);
  EXPECT_EQ(job.datasets(0).subjects(), 250000u);
  EXPECT_EQ(job.placement().max_rtt_ms().at("hongkong-1"), 40);
  EXPECT_EQ(job.restart().policy(), v1::RestartPolicy::on_agent_loss);
}

TEST(CodecTest, OutputUsesSnakeCaseAndLowercaseEnumWords) {
  v1::Job job;
  job.set_state(v1::Job::succeeded);
  job.mutable_resources()->set_memory_mb(64);
  job.mutable_restart()->set_policy(v1::RestartPolicy::on_agent_loss);
  std::string json = ToJson(job);
  EXPECT_NE(json.find(R"("state":"succeeded")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("memory_mb":64)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("policy":"on_agent_loss")"), std::string::npos) << json;
  EXPECT_EQ(json.find("memoryMb"), std::string::npos);
}

TEST(CodecTest, UnknownTopLevelFieldIsNamed) {
  v1::Job job;
  absl::Status st = ParseJson(R"({"name":"x","bogus":1})", &job);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusField(st), "bogus");
}

TEST(CodecTest, UnknownNestedFieldHasFullPath) {
  v1::Job job;
  absl::Status st = ParseJson(R"({"datasets":[{"id":"a"},{"idx":"b"}]})", &job);
  EXPECT_EQ(StatusField(st), "datasets[1].idx");
  st = ParseJson(R"({"resources":{"cpus":1,"memry_mb":3}})", &job);
  EXPECT_EQ(StatusField(st), "resources.memry_mb");
}

TEST(CodecTest, BadEnumListsTheAllowedWords) {
  v1::Job job;
  absl::Status st = ParseJson(R"({"kind":"COMPUTE"})", &job);
  EXPECT_EQ(StatusField(st), "kind");
  EXPECT_NE(st.message().find("compute, data_processing"), absl::string_view::npos) << st;
}

TEST(CodecTest, WrongTypeAndMalformedJson) {
  v1::Job job;
  absl::Status st = ParseJson(R"({"resources":{"cpus":"abc"}})", &job);
  EXPECT_EQ(StatusField(st), "resources.cpus");
  st = ParseJson(R"({"name":"x",)", &job);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("malformed JSON"), absl::string_view::npos) << st;
  st = ParseJson("[1]", &job);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
}

TEST(CodecTest, YamlTakesTypesFromTheSchema) {
  v1::Job job;
  absl::Status st = ParseYaml(R"(
name: 123
command: [/bin/echo, "hello world"]
env: {THREADS: 8}
resources: {cpus: 2, memory_mb: 512}
kind: compute
)",
                              &job);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(job.name(), "123");
  EXPECT_EQ(job.env().at("THREADS"), "8");
  EXPECT_EQ(job.resources().cpus(), 2);
  EXPECT_EQ(job.command(1), "hello world");
}

TEST(CodecTest, YamlErrorsNameFileLineAndField) {
  v1::AgentConfig cfg;
  absl::Status st = ParseYaml("site: hk\nlabels:\n  a: b\nsit: x\n", &cfg, "agent.yaml");
  EXPECT_EQ(StatusField(st), "sit");
  EXPECT_NE(st.message().find("agent.yaml"), absl::string_view::npos) << st;
  EXPECT_NE(st.message().find("line 4"), absl::string_view::npos) << st;
  v1::Job job;
  st = ParseYaml("resources: {cpus: many}\n", &job, "job.yaml");
  EXPECT_EQ(StatusField(st), "resources.cpus");
  st = ParseYaml("name: [unclosed\n", &job, "job.yaml");
  EXPECT_NE(st.message().find("malformed YAML"), absl::string_view::npos) << st;
}

TEST(CodecTest, ConfigBecomesTheFlagsItStandsFor) {
  v1::AgentConfig a;
  a.set_site("hongkong-1");
  a.set_insecure(true);
  a.set_kill_grace_ms(500);
  (*a.mutable_labels())["zone"] = "hk";
  std::vector<std::string> flags = ConfigToFlags(a, {{"labels", "label"}});
  std::sort(flags.begin(), flags.end());
  EXPECT_EQ(flags, (std::vector<std::string>{"--insecure", "--kill-grace-ms=500",
                                             "--label=zone=hk", "--site=hongkong-1"}));
  v1::SchedulerConfig s;
  s.set_rate_limit_rps(1234567.25);  // doubles keep every digit
  EXPECT_EQ(ConfigToFlags(s), std::vector<std::string>{"--rate-limit-rps=1234567.25"});
}

}  // namespace
}  // namespace portolan
