// SPDX-License-Identifier: Apache-2.0
#include "portolan/codec/codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/message_differencer.h"
#include "portolan/base/strings.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/config.pb.h"
#include "portolan/v1/dataset.pb.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/policy.pb.h"
#include "portolan/v1/wire.pb.h"

namespace portolan {
namespace {

TEST(CodecTest, ParsesDesignJobExample) {
  v1::Job job;
  absl::Status st = codec::ParseJson(R"({
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
  std::string json = codec::ToJson(job);
  EXPECT_NE(json.find(R"("state":"succeeded")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("memory_mb":64)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("policy":"on_agent_loss")"), std::string::npos) << json;
  EXPECT_EQ(json.find("memoryMb"), std::string::npos);
}

// The direct printer must write what protobuf's printer writes: byte for
// byte where a message has no map with two or more entries (protobuf's map
// order is unspecified; ours is by key), and the same message back otherwise.
void ExpectSameAsProtobuf(const google::protobuf::Message& m, bool byte_exact = true) {
  std::string fast;
  ASSERT_TRUE(codec::internal::FastJson(m, &fast)) << m.GetTypeName();
  const std::string slow = codec::internal::ProtobufJson(m, false);
  if (byte_exact && fast != slow) {
    size_t at = 0;
    while (at < fast.size() && at < slow.size() && fast[at] == slow[at]) ++at;
    ADD_FAILURE() << m.GetTypeName() << " differs at byte " << at << ":\n  fast ..."
                  << fast.substr(at > 40 ? at - 40 : 0, 120) << "\n  slow ..."
                  << slow.substr(at > 40 ? at - 40 : 0, 120);
  }
  std::unique_ptr<google::protobuf::Message> back(m.New());
  ASSERT_TRUE(codec::ParseJson(fast, back.get()).ok()) << fast;
  google::protobuf::util::MessageDifferencer diff;
  std::string why;
  diff.ReportDifferencesToString(&why);
  EXPECT_TRUE(diff.Compare(*back, m)) << why << fast;
  EXPECT_EQ(codec::ToJson(m), fast);
  // Pretty output (the CLI's -o json): protobuf's layout, from the direct
  // printer, so maps keep their key order there too.
  if (byte_exact) {
    EXPECT_EQ(codec::ToJson(m, true), codec::internal::ProtobufJson(m, true));
  }
}

TEST(CodecTest, DirectJsonPrinterMatchesProtobuf) {
  v1::Job job;
  ASSERT_TRUE(codec::ParseJson(R"({
    "name": "genome-align", "tenant": "acme", "kind": "data_processing",
    "command": ["/usr/bin/env", "python3", "a<b>&c \"q\" \\ \t\n\u0001\u007f\u2028 ü 中文"],
    "env": {"THREADS": "8"},
    "resources": {"cpus": 8, "memory_mb": 16384, "gpus": 0},
    "topology": {"numa": "single", "smt": "exclusive"},
    "datasets": [{"id": "reads", "origin": "CN", "location": "lingang-idc-1", "size_gb": 0.1,
      "categories": ["personal", "important"], "subjects": 250000}],
    "placement": {"max_rtt_ms": {"hongkong-1": 40.25}},
    "priority": -5, "max_runtime_s": 3600,
    "restart": {"policy": "on_agent_loss", "max_attempts": 3}})",
                               &job)
                  .ok());
  job.set_id("job-1");
  job.set_state(v1::Job::running);
  job.mutable_submitted_at()->set_seconds(1795000000);
  job.mutable_started_at()->set_seconds(1795000001);
  job.mutable_started_at()->set_nanos(500000000);
  job.mutable_finished_at()->set_seconds(0);
  job.mutable_finished_at()->set_nanos(123456789);
  job.mutable_not_before()->set_seconds(-1000);
  job.mutable_not_before()->set_nanos(1000);
  job.mutable_allocation()->set_agent("a1");
  job.mutable_allocation()->add_pus(3);
  job.mutable_allocation()->add_pus(4);
  auto* e = job.add_events();
  e->mutable_time()->set_seconds(1795000002);
  e->set_message("placed");
  ExpectSameAsProtobuf(job);

  // Doubles: integral, short, 17 digits, tiny, huge, negative.
  for (double d : {0.0, 34.0, 34.5, 0.1, 1.0 / 3, 1e5, 1e15, 1e21, 1e-7, 123456789.125, -2.5,
                   5e-324, 1.7976931348623157e308}) {
    v1::Agent a;
    a.set_measured_rtt_ms(d);
    ExpectSameAsProtobuf(a);
  }
  // 64-bit integers are strings; enums out of range print as numbers.
  v1::CliConfig cli;
  v1::SchedulerConfig sc;
  sc.set_max_body_bytes(UINT64_MAX);
  ExpectSameAsProtobuf(sc);
  ExpectSameAsProtobuf(cli);
  v1::Job odd;
  odd.set_state(static_cast<v1::Job::State>(77));
  ExpectSameAsProtobuf(odd);

  // oneof and proto3 optional: only when set, and then even at the default.
  v1::Envelope env;
  env.set_seq(9);
  env.mutable_heartbeat()->set_measured_rtt_ms(1.5);
  ExpectSameAsProtobuf(env);
  ExpectSameAsProtobuf(v1::Envelope());
  v1::Policy policy;
  ASSERT_TRUE(codec::LoadFile(PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml", &policy).ok());
  auto* link = policy.add_links();
  link->set_up(false);
  ExpectSameAsProtobuf(policy, /*byte_exact=*/false);

  // Maps: one entry matches byte for byte; several come out in key order.
  v1::Agent agent;
  (*agent.mutable_pu_jobs())[7] = "j7";
  ExpectSameAsProtobuf(agent);
  for (uint32_t pu : {100u, 9u, 10u, 0u}) (*agent.mutable_pu_jobs())[pu] = "j";
  ExpectSameAsProtobuf(agent, /*byte_exact=*/false);
  std::string out;
  ASSERT_TRUE(codec::internal::FastJson(agent, &out));
  EXPECT_NE(out.find(R"("pu_jobs":{"0":"j","7":"j7","9":"j","10":"j","100":"j"})"),
            std::string::npos)
      << out;
}

// The printer keeps what it works out per message type only for the
// generated pool's types (they live as long as the process); a type of a
// pool of its own, which may be freed, is printed all the same, with the
// same bytes.
TEST(CodecTest, DirectJsonPrinterPrintsTypesOfOtherPools) {
  google::protobuf::DescriptorPool pool;
  // job.proto and what it imports, dependencies first.
  std::vector<const google::protobuf::FileDescriptor*> files;
  std::function<void(const google::protobuf::FileDescriptor*)> add =
      [&](const google::protobuf::FileDescriptor* f) {
        if (std::find(files.begin(), files.end(), f) != files.end()) return;
        for (int i = 0; i < f->dependency_count(); ++i) add(f->dependency(i));
        files.push_back(f);
      };
  add(v1::Job::descriptor()->file());
  for (const google::protobuf::FileDescriptor* f : files) {
    google::protobuf::FileDescriptorProto proto;
    f->CopyTo(&proto);
    ASSERT_NE(pool.BuildFile(proto), nullptr) << f->name();
  }
  const google::protobuf::Descriptor* type = pool.FindMessageTypeByName("portolan.v1.Job");
  ASSERT_NE(type, nullptr);
  ASSERT_NE(type, v1::Job::descriptor());
  google::protobuf::DynamicMessageFactory factory(&pool);
  v1::Job job;
  job.set_id("job-1");
  job.set_tenant("acme \"q\" <x>");
  job.add_command("/bin/true");
  job.mutable_submitted_at()->set_seconds(1795000000);
  job.mutable_submitted_at()->set_nanos(120000000);
  (*job.mutable_env())["B"] = "2";
  (*job.mutable_env())["A"] = "1";
  job.add_events()->set_message("submitted");
  std::unique_ptr<google::protobuf::Message> dynamic(factory.GetPrototype(type)->New());
  ASSERT_TRUE(dynamic->ParseFromString(job.SerializeAsString()));
  std::string from_dynamic, from_generated;
  ASSERT_TRUE(codec::internal::FastJson(*dynamic, &from_dynamic));
  ASSERT_TRUE(codec::internal::FastJson(job, &from_generated));
  EXPECT_EQ(from_dynamic, from_generated);
  EXPECT_NE(from_dynamic.find(R"("env":{"A":"1","B":"2"})"), std::string::npos) << from_dynamic;
  EXPECT_NE(from_dynamic.find(R"("submitted_at":"2026-11-18T11:06:40.120Z")"), std::string::npos)
      << from_dynamic;
  EXPECT_NE(from_dynamic.find(R"("tenant":"acme \"q\" \u003cx\u003e")"), std::string::npos)
      << from_dynamic;
}

// Parses `json` into a `T` both ways, the direct walk and protobuf's parser
// after the strict checks; they must agree on the message, or both refuse.
// Returns kFilled when the direct walk filled the message, kDeclined when it
// left it to protobuf, kRefused when the text is refused.
enum class DirectParse { kFilled, kDeclined, kRefused };
template <typename T>
DirectParse ExpectSameParseAsProtobuf(const std::string& json) {
  T direct, slow;
  bool filled = false;
  const absl::Status a =
      codec::internal::ParseStrictJson(json, &direct, codec::JsonMode::kAny, &filled);
  absl::Status b = codec::internal::CheckStrictJson(json, T::descriptor(), codec::JsonMode::kAny);
  EXPECT_EQ(a, b) << json;  // the same walk: the same errors
  if (!a.ok()) return DirectParse::kRefused;
  b = codec::internal::ProtobufParseJson(json, &slow);
  if (!filled) {
    // Declined: ParseJson's answer is protobuf's.
    T through;
    EXPECT_EQ(codec::ParseJson(json, &through).ok(), b.ok()) << json;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(through, slow)) << json;
    return DirectParse::kDeclined;
  }
  EXPECT_TRUE(b.ok()) << b << "\n" << json;
  google::protobuf::util::MessageDifferencer diff;
  std::string why;
  diff.ReportDifferencesToString(&why);
  EXPECT_TRUE(diff.Compare(slow, direct)) << why << "\n" << json;
  // Presence too (proto3 optional, oneof members and sub-messages given as {}).
  EXPECT_EQ(codec::DeterministicBytes(direct), codec::DeterministicBytes(slow)) << json;
  return DirectParse::kFilled;
}

TEST(CodecTest, DirectJsonParserMatchesProtobuf) {
  int filled = 0, parsed = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(PORTOLAN_SOURCE_DIR "/tests/fuzz/corpus/job_json")) {
    std::ifstream in(e.path());
    std::stringstream text;
    text << in.rdbuf();
    const DirectParse r = ExpectSameParseAsProtobuf<v1::Job>(text.str());
    filled += r == DirectParse::kFilled ? 1 : 0;
    parsed += r != DirectParse::kRefused ? 1 : 0;
  }
  EXPECT_GT(parsed, 5);
  EXPECT_EQ(filled, parsed) << "every job of the corpus that parses is parsed directly";

  // A policy (maps, nested lists, doubles, enums), from YAML as LoadFile reads it.
  std::ifstream in(PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml");
  std::stringstream yaml;
  yaml << in.rdbuf();
  auto policy_json = codec::YamlToJson(yaml.str(), v1::Policy::descriptor());
  ASSERT_TRUE(policy_json.ok()) << policy_json.status();
  EXPECT_EQ(DirectParse::kFilled, ExpectSameParseAsProtobuf<v1::Policy>(*policy_json));

  // Integer map keys, repeated scalars, 64-bit integers as strings and as
  // numbers, floats, escapes, an enum number from a newer peer, {} and null.
  EXPECT_EQ(DirectParse::kFilled,
            ExpectSameParseAsProtobuf<v1::Agent>(
                R"({"id":"a\u00fc\ud83d\ude00","pu_jobs":{"7":"j7","0":"j0"},"measured_rtt_ms":1e-7,
          "capacity":{},"labels":null,"state":9})"));
  EXPECT_EQ(DirectParse::kFilled,
            ExpectSameParseAsProtobuf<v1::SchedulerConfig>(
                R"({"max_body_bytes":"18446744073709551615","max_frame_bytes":42})"));
  EXPECT_EQ(DirectParse::kFilled,
            ExpectSameParseAsProtobuf<v1::Job>(
                R"({"allocation":{"pus":[3,4],"numa_memory_mb":{"1":16}},"priority":-5,
          "command":["a\"b","\\","\n\t"]})"));
  // A oneof member (and proto3 presence at the default).
  EXPECT_EQ(DirectParse::kFilled,
            ExpectSameParseAsProtobuf<v1::Envelope>(R"({"seq":"9","heartbeat":{}})"));

  // Declined, and then protobuf's answer: timestamps, bytes, a 64-bit integer
  // beyond its range, two members of one oneof.
  EXPECT_EQ(DirectParse::kDeclined,
            ExpectSameParseAsProtobuf<v1::Job>(R"({"submitted_at":"2026-12-06T10:00:00Z"})"));
  EXPECT_EQ(DirectParse::kDeclined,
            ExpectSameParseAsProtobuf<v1::SignedGrant>(R"({"grant":"AAEC","key_id":"k"})"));
  EXPECT_EQ(DirectParse::kDeclined, ExpectSameParseAsProtobuf<v1::SchedulerConfig>(
                                        R"({"max_body_bytes":"18446744073709551616"})"));
  EXPECT_EQ(DirectParse::kDeclined,
            ExpectSameParseAsProtobuf<v1::Envelope>(R"({"heartbeat":{},"ack":{}})"));

  // ParseJson itself: the direct result, and protobuf's error for what was declined.
  v1::SchedulerConfig sc;
  ASSERT_TRUE(codec::ParseJson(R"({"max_body_bytes":"7"})", &sc).ok());
  EXPECT_EQ(sc.max_body_bytes(), 7u);
  EXPECT_FALSE(codec::ParseJson(R"({"max_body_bytes":"18446744073709551616"})", &sc).ok());
}

TEST(CodecTest, UnknownTopLevelFieldIsNamed) {
  v1::Job job;
  absl::Status st = codec::ParseJson(R"({"name":"x","bogus":1})", &job);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(codec::StatusField(st), "bogus");
}

TEST(CodecTest, UnknownNestedFieldHasFullPath) {
  v1::Job job;
  absl::Status st = codec::ParseJson(R"({"datasets":[{"id":"a"},{"idx":"b"}]})", &job);
  EXPECT_EQ(codec::StatusField(st), "datasets[1].idx");
  st = codec::ParseJson(R"({"resources":{"cpus":1,"memry_mb":3}})", &job);
  EXPECT_EQ(codec::StatusField(st), "resources.memry_mb");
}

TEST(CodecTest, BadEnumListsTheAllowedWords) {
  v1::Job job;
  absl::Status st = codec::ParseJson(R"({"kind":"COMPUTE"})", &job);
  EXPECT_EQ(codec::StatusField(st), "kind");
  EXPECT_NE(st.message().find("compute, data_processing"), absl::string_view::npos) << st;
}

TEST(CodecTest, WrongTypeAndMalformedJson) {
  v1::Job job;
  absl::Status st = codec::ParseJson(R"({"resources":{"cpus":"abc"}})", &job);
  EXPECT_EQ(codec::StatusField(st), "resources.cpus");
  st = codec::ParseJson(R"({"name":"x",)", &job);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("malformed JSON"), absl::string_view::npos) << st;
  st = codec::ParseJson("[1]", &job);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
}

// Strict JSON: what protobuf's parser would accept leniently is refused,
// with the field path.
struct StrictCase {
  const char* json;
  const char* field;
  const char* says;
};

TEST(CodecTest, SanitizedTextIsValidUtf8ThatJsonCarries) {
  const std::string kBad = "\xEF\xBF\xBD";  // U+FFFD, what each bad byte becomes
  // Valid text passes unchanged: ASCII, 2-, 3- and 4-byte characters.
  const std::string good = "ok \xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x8C\x8F";
  EXPECT_EQ(base::SanitizeUtf8(good), good);
  // Overlong forms, surrogates, beyond U+10FFFF, stray continuation bytes,
  // truncated sequences (the fuzzer found a Content-Type starting E0 8B 9A
  // quoted into an error body that JSON then refused).
  for (const std::string& bad :
       {std::string("\xE0\x8B\x9A"), std::string("\xC0\xAF"), std::string("\xED\xA0\x80"),
        std::string("\xF4\x90\x80\x80"), std::string("\xF0\x8F\xBF\xBF"),
        std::string("\xF5\x80\x80\x80"), std::string("\x80"), std::string("\xE4\xB8")}) {
    const std::string clean = base::SanitizeUtf8(bad);
    EXPECT_EQ(clean.find_first_not_of(kBad), std::string::npos) << clean;
    v1::ErrorResponse e;
    e.mutable_error()->set_code("c");
    e.mutable_error()->set_message(clean);
    v1::ErrorResponse back;
    EXPECT_TRUE(codec::ParseJson(codec::ToJson(e), &back).ok()) << codec::ToJson(e);
  }
}

TEST(CodecTest, StrictJsonRefusesWhatProtobufWouldGuess) {
  const StrictCase cases[] = {
      {R"({'name': 'x'})", "", "double quotes"},
      {"{\"name\": \"a\tb\"}", "name", "raw control character"},
      {R"({"name": "a", "name": "b"})", "name", "given twice"},
      {R"({"name": "a", "resources": {"cpus": 1, "cpus": 2}})", "resources.cpus", "given twice"},
      {R"({"env": {"A": "1", "A": "2"}})", "env", "given twice"},
      {R"({"command": "echo hi"})", "command", "must be a list"},
      {R"({"datasets": {"id": "x"}})", "datasets", "must be a list"},
      {R"({"command": ["a", null]})", "command[1]", "cannot be null"},
      {R"({"kind": 99})", "kind", "a word, not a number"},
      {R"({"topology": {"numa": 99}})", "topology.numa", "a word, not a number"},
      {R"({"kind": "batch"})", "kind", "expected one of compute, data_processing"},
      {R"({"datasets": [{"id": "d", "size_gb": "Infinity"}]})", "datasets[0].size_gb",
       "finite number"},
      {R"({"datasets": [{"id": "d", "size_gb": "NaN"}]})", "datasets[0].size_gb", "finite number"},
      {R"({"datasets": [{"id": "d", "size_gb": NaN}]})", "datasets[0].size_gb", "finite number"},
      {R"({"datasets": [{"id": "d", "size_gb": 1e309}]})", "datasets[0].size_gb", "out of range"},
      {R"({"priority": 1.5})", "priority", "must be an integer"},
      {R"({"priority": "5"})", "priority", "must be an integer"},
      {R"({"priority": +5})", "priority", "must be an integer"},
      {R"({"priority": 05})", "priority", "expected ',' or '}'"},
      {R"({"name": 5})", "name", "must be a string"},
      {R"({"cancel_requested": "yes"})", "cancel_requested", "true or false"},
      {R"({"name": "x",})", "", "expected a string"},
      {R"({"name": "x"} trailing)", "", "after the JSON document"},
      {R"({"name": "\x"})", "name", "invalid escape"},
      {R"({"name": "\ud800"})", "name", "surrogate"},
      {R"({"submitted_at": 5})", "submitted_at", "RFC 3339"},
      {R"(["name"])", "", "JSON object"},
      {R"({"resources": [1]})", "resources", "must be an object"},
  };
  for (const StrictCase& c : cases) {
    SCOPED_TRACE(c.json);
    v1::Job job;
    absl::Status st = codec::ParseJson(c.json, &job, codec::JsonMode::kRequest);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(codec::StatusField(st), c.field) << st;
    EXPECT_NE(st.message().find(c.says), std::string::npos) << st;
  }
  // What strict JSON allows: escapes, 64-bit integers as strings, null for
  // "absent", exponents in doubles.
  v1::Job job;
  ASSERT_TRUE(codec::ParseJson(R"({"name": "a\u00e9\ud83d\ude00\n", "max_runtime_s": 10,
      "datasets": [{"id": "d", "size_gb": 1.5e3}], "placement": null,
      "resources": {"cpus": 2, "memory_mb": 64}})",
                               &job)
                  .ok());
  EXPECT_EQ(job.name(), "a\xc3\xa9\xf0\x9f\x98\x80\n");
  EXPECT_EQ(job.datasets(0).size_gb(), 1500);
  v1::PolicyVersion pv;
  EXPECT_TRUE(codec::ParseJson(R"({"version": "3"})", &pv).ok());
}

TEST(CodecTest, RequestsCannotSetOutputOnlyFields) {
  const char* forged =
      R"({"command": ["x"], "attempts": [{"number": 1, "outcome": "succeeded",
          "allocation": {"agent": "sg1-node-01"}}]})";
  v1::Job job;
  absl::Status st = codec::ParseJson(forged, &job, codec::JsonMode::kRequest);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(codec::StatusField(st), "attempts");
  EXPECT_NE(st.message().find("output-only"), std::string::npos) << st;
  // A server's answer carries them, and a client reads it.
  EXPECT_TRUE(codec::ParseJson(forged, &job).ok());
  // Printed defaults round-trip: empty output-only fields are allowed.
  EXPECT_TRUE(codec::ParseJson(R"({"command": ["x"], "id": "", "state": "state_unspecified",
      "exit_code": 0, "events": [], "cancel_requested": false, "allocation": null})",
                               &job, codec::JsonMode::kRequest)
                  .ok());
  for (const char* f : {R"("id": "job-1")", R"("state": "succeeded")", R"("exit_code": 3)",
                        R"("submitted_at": "2026-01-01T00:00:00Z")"}) {
    SCOPED_TRACE(f);
    st = codec::ParseJson(absl::StrCat(R"({"command": ["x"], )", f, "}"), &job,
                          codec::JsonMode::kRequest);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("output-only"), std::string::npos) << st;
  }
  // Unknown enum numbers from a newer peer are read (kAny), never requested.
  EXPECT_TRUE(codec::ParseJson(R"({"state": 42})", &job).ok());
  EXPECT_FALSE(codec::ParseJson(R"({"kind": 1})", &job, codec::JsonMode::kRequest).ok());
}

TEST(CodecTest, RequestNumbersStayInTheirDocumentedRanges) {
  v1::Job job;
  absl::Status st = codec::ParseJson(R"({"priority": 1001})", &job, codec::JsonMode::kRequest);
  EXPECT_EQ(codec::StatusField(st), "priority");
  EXPECT_NE(st.message().find("priority must be 0-1000, got 1001"), std::string::npos) << st;
  st = codec::ParseJson(R"({"datasets": [{"id": "d", "size_gb": 2e6}]})", &job,
                        codec::JsonMode::kRequest);
  EXPECT_EQ(codec::StatusField(st), "datasets[0].size_gb") << st;
  st = codec::ParseJson(R"({"placement": {"max_rtt_ms": {"tokyo-1": 20000}}})", &job,
                        codec::JsonMode::kRequest);
  EXPECT_EQ(codec::StatusField(st), "placement.max_rtt_ms.tokyo-1") << st;
  st = codec::ParseJson(R"({"priority": 99999999999})", &job, codec::JsonMode::kRequest);
  EXPECT_NE(st.message().find("out of range for a int32"), std::string::npos) << st;
  st = codec::ParseJson(R"({"restart": {"max_attempts": -1}})", &job, codec::JsonMode::kRequest);
  EXPECT_EQ(codec::StatusField(st), "restart.max_attempts") << st;
  // Files are requests too: the error names the file and the field.
  v1::Tenant t;
  st = codec::ParseYaml("id: acme\nmax_priority: 2000\n", &t, "acme.yaml");
  EXPECT_EQ(codec::StatusField(st), "max_priority") << st;
  EXPECT_NE(st.message().find("acme.yaml"), std::string::npos) << st;
  // A policy checks its own ranges and reports every problem at once
  // (policy:validate), so the codec leaves them to it.
  v1::Policy p;
  EXPECT_TRUE(codec::ParseYaml("plugins:\n  scores: {bin_pack: 1e308}\n", &p, "p.yaml").ok());
  // A server's answer is read whatever it says.
  EXPECT_TRUE(codec::ParseJson(R"({"priority": 5000})", &job).ok());
}

TEST(CodecTest, YamlTakesTypesFromTheSchema) {
  v1::Job job;
  absl::Status st = codec::ParseYaml(R"(
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
  absl::Status st = codec::ParseYaml("site: hk\nlabels:\n  a: b\nsit: x\n", &cfg, "agent.yaml");
  EXPECT_EQ(codec::StatusField(st), "sit");
  EXPECT_NE(st.message().find("agent.yaml"), absl::string_view::npos) << st;
  EXPECT_NE(st.message().find("line 4"), absl::string_view::npos) << st;
  v1::Job job;
  st = codec::ParseYaml("resources: {cpus: many}\n", &job, "job.yaml");
  EXPECT_EQ(codec::StatusField(st), "resources.cpus");
  st = codec::ParseYaml("name: [unclosed\n", &job, "job.yaml");
  EXPECT_NE(st.message().find("malformed YAML"), absl::string_view::npos) << st;
}

TEST(CodecTest, ConfigBecomesTheFlagsItStandsFor) {
  v1::AgentConfig a;
  a.set_site("hongkong-1");
  a.set_insecure(true);
  a.set_kill_grace_ms(500);
  (*a.mutable_labels())["zone"] = "hk";
  std::vector<std::string> flags = codec::ConfigToFlags(a, {{"labels", "label"}});
  std::sort(flags.begin(), flags.end());
  EXPECT_EQ(flags, (std::vector<std::string>{"--insecure", "--kill-grace-ms=500", "--label=zone=hk",
                                             "--site=hongkong-1"}));
  v1::SchedulerConfig s;
  s.set_rate_limit_rps(1234567.25);  // doubles keep every digit
  EXPECT_EQ(codec::ConfigToFlags(s), std::vector<std::string>{"--rate-limit-rps=1234567.25"});
}

}  // namespace
}  // namespace portolan
