// SPDX-License-Identifier: Apache-2.0
// api/openapi.yaml against the real scheduler: it is up to date with the
// protos, every route the server registers is documented and nothing else,
// and every documented operation, called on a running scheduler, answers
// a documented status with a body that validates against its schema.
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "../support/json_schema.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "harness.h"
#include "portolan/base/clock.h"
#include "portolan/codec/codec.h"
#include "portolan/metrics/metrics.h"
#include "portolan/placement/placement.h"
#include "portolan/rest/api.h"
#include "portolan/rest/cluster_api.h"
#include "portolan/store/store.h"
#include "support/fake_clock.h"
#include "support/memory_store.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;
using test_support::ValidateJson;

const char* kMethods[] = {"get", "post", "put", "delete"};

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Read through const handles only (see json_schema.h on yaml-cpp).
const YAML::Node Doc() { return YAML::LoadFile(PORTOLAN_SOURCE_DIR "/api/openapi.yaml"); }

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(toupper(c));
  return s;
}

TEST(OpenApiIT, CommittedDocumentIsUpToDateWithTheProtos) {
  const std::string out = ::testing::TempDir() + "/openapi.generated.yaml";
  ASSERT_EQ(std::system((std::string(PORTOLAN_OPENAPI_BIN " " PORTOLAN_SOURCE_DIR
                                                          "/api/openapi/paths.yaml > ") +
                         out)
                            .c_str()),
            0);
  EXPECT_EQ(ReadFile(out), ReadFile(PORTOLAN_SOURCE_DIR "/api/openapi.yaml"))
      << "api/openapi.yaml is stale: run cmake --build build --target openapi";
  // The licence the repository's LICENSE grants, as generators and portals read it.
  EXPECT_EQ(Doc()["info"]["license"]["name"].as<std::string>(""), "Apache-2.0");
}

TEST(OpenApiIT, EveryServedRouteIsDocumentedAndNothingElse) {
  testing::MemoryStore store;
  placement::Registry registry;
  placement::RegisterBuiltins(registry);
  testing::FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  scheduler::Core core({}, &store, &clock, &registry);
  std::atomic<bool> ready{true};
  metrics::Registry metrics;
  rest::Server server;
  rest::RegisterRestApi(server, &core, &ready, &metrics);
  rest::RegisterClusterApi(server, [] { return v1::ClusterView(); });  // as main.cc does
  std::set<std::string> served;
  for (const auto& [method, pattern] : server.Routes()) served.insert(method + " " + pattern);
  std::set<std::string> documented;
  const YAML::Node doc = Doc();
  const YAML::Node paths = doc["paths"];
  for (auto it = paths.begin(); it != paths.end(); ++it) {
    const YAML::Node item = it->second;
    for (const char* m : kMethods) {
      if (item[m]) documented.insert(Upper(m) + " " + it->first.as<std::string>());
    }
  }
  EXPECT_EQ(served, documented);
  EXPECT_GE(served.size(), 25u);
}

// No YAML::Node members: assigning a Node (as sorting does) rewrites the
// node it refers to, which would corrupt the document.
struct Call {
  std::string method, path, body;
  std::string pattern, key;  // the operation: doc.paths[pattern][key]
};

// Checks one answer against the operation's documented responses.
void CheckAnswer(const YAML::Node& doc, const Call& call, int status, const std::string& body) {
  SCOPED_TRACE(call.method + " " + call.path + " -> " + std::to_string(status));
  const YAML::Node op = doc["paths"][call.pattern][call.key];
  const YAML::Node responses = op["responses"];
  const YAML::Node& cresponses = responses;
  YAML::Node response;
  if (cresponses[std::to_string(status)]) {
    response.reset(cresponses[std::to_string(status)]);
  } else if (cresponses["default"]) {
    response.reset(cresponses["default"]);
  }
  ASSERT_TRUE(response) << "status " << status << " is not documented: " << body;
  const YAML::Node& cdoc = doc;
  for (const YAML::Node& cr = response; cr["$ref"];) {
    const std::string ref = cr["$ref"].as<std::string>();
    response.reset(cdoc["components"]["responses"][ref.substr(ref.rfind('/') + 1)]);
  }
  const YAML::Node& cresponse = response;
  const YAML::Node content = cresponse["content"];
  ASSERT_TRUE(content);
  if (content["text/plain"]) {
    EXPECT_FALSE(body.empty());
    return;
  }
  google::protobuf::Value value;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(body, &value).ok()) << body;
  EXPECT_EQ(ValidateJson(content["application/json"]["schema"], value, doc), "") << body;
}

TEST(OpenApiIT, EveryDocumentedOperationAnswersAsDocumented) {
  const YAML::Node doc = Doc();
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto job = c.client().Submit(JobSpec({"/bin/sleep", "30"}, 1, "acme"));
  v1::Job array_spec = JobSpec({"/bin/true"}, 1, "acme");
  array_spec.mutable_array()->set_count(3);
  auto array = c.client().Submit(array_spec);
  ASSERT_TRUE(array.ok()) << array.status();
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(WaitForState(c.client(), job->id(), v1::Job::running));
  std::string body;
  ASSERT_EQ(*c.client().Raw("GET", "/v1/network", "", &body), 200);
  v1::NetworkView net;
  ASSERT_TRUE(codec::ParseJson(body, &net).ok());
  ASSERT_EQ(*c.client().Raw("GET", "/v1/policy", "", &body), 200);
  const std::string policy = body;
  ASSERT_EQ(*c.client().Raw("PUT", "/v1/tenants/acme", "{}", &body), 200) << body;

  std::vector<Call> calls;
  const YAML::Node paths = doc["paths"];
  for (auto it = paths.begin(); it != paths.end(); ++it) {
    const std::string pattern = it->first.as<std::string>();
    const YAML::Node item = it->second;
    for (const char* m : kMethods) {
      const YAML::Node op = item[m];
      if (!op) continue;
      Call call{Upper(m), pattern, "", pattern, m};
      std::string id;
      if (pattern.rfind("/v1/jobs/", 0) == 0) id = job->id();
      if (pattern == "/v1/jobs/{id}/tasks") id = array->id();
      if (pattern.rfind("/v1/agents/", 0) == 0) id = "lg1";
      if (pattern.rfind("/v1/tenants/", 0) == 0) id = "acme";
      if (pattern.rfind("/v1/datasets/", 0) == 0) id = "reads-2026q3";  // the POST's example
      if (pattern.rfind("/v1/network/links/", 0) == 0) id = net.links(0).id();
      if (size_t p = call.path.find("{id}"); p != std::string::npos) call.path.replace(p, 4, id);
      if (size_t p = call.path.find("{version}"); p != std::string::npos)
        call.path.replace(p, 9, "v1");
      if (op["requestBody"]) {
        const YAML::Node media = op["requestBody"]["content"]["application/json"];
        if (media["example"]) {
          YAML::Emitter e;
          e << YAML::Flow << media["example"];
          // The example is YAML; the codec turns it into schema-checked JSON.
          const std::string ref = media["schema"]["$ref"].as<std::string>();
          const auto* type =
              google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
                  "portolan.v1." + ref.substr(ref.rfind('/') + 1));
          ASSERT_NE(type, nullptr) << ref;
          auto json = codec::YamlToJson(e.c_str(), type);
          ASSERT_TRUE(json.ok()) << json.status();
          call.body = *json;
        } else {
          call.body = policy;  // the policy endpoints take a Policy
        }
        // Every documented example is itself valid against the request schema.
        google::protobuf::Value v;
        ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(call.body, &v).ok()) << call.body;
        EXPECT_EQ(ValidateJson(media["schema"], v, doc), "") << pattern << " example";
      }
      calls.push_back(call);
    }
  }
  // Cancelling the job goes last: the other job paths still see it running.
  std::stable_partition(calls.begin(), calls.end(),
                        [](const Call& k) { return k.method != "DELETE"; });
  auto anonymous = c.ClientWith("");
  for (const Call& call : calls) {
    std::string answer;
    absl::StatusOr<int> status;
    const YAML::Node ok = doc["paths"][call.pattern][call.key]["responses"]["200"];
    if (ok && ok["content"]["text/event-stream"]) {
      // A stream stays open: its first event (a reset, asked for with an id
      // from no scheduler) is checked against the schema of its data.
      std::string last = "00000000-1";
      v1::Event first;
      ASSERT_TRUE(c.client()
                      .Watch("", &last,
                             [&](const v1::Event& e) {
                               first = e;
                               return false;
                             })
                      .ok());
      google::protobuf::Value v;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(codec::ToJson(first), &v).ok());
      EXPECT_EQ(ValidateJson(doc["paths"][call.pattern][call.key]["responses"]["200"]["content"]
                                ["text/event-stream"]["schema"],
                             v, doc),
                "");
      EXPECT_TRUE(first.has_reset()) << codec::ToJson(first);
      status = anonymous->Raw(call.method, call.path, call.body, &answer);
      ASSERT_TRUE(status.ok());
      EXPECT_EQ(*status, 401);
      CheckAnswer(doc, call, *status, answer);
      continue;
    }
    status = c.client().Raw(call.method, call.path, call.body, &answer);
    ASSERT_TRUE(status.ok()) << call.path;
    EXPECT_LT(*status, 300) << call.method << " " << call.path << ": " << answer;
    CheckAnswer(doc, call, *status, answer);
    // Without a token: 401 (or the public answer), still as documented.
    status = anonymous->Raw(call.method, call.path, call.body, &answer);
    ASSERT_TRUE(status.ok());
    CheckAnswer(doc, call, *status, answer);
    // A missing object: 404 with an ErrorResponse.
    if (call.path.find(job->id()) != std::string::npos ||
        call.path.find("/v1/agents/lg1") != std::string::npos) {
      std::string missing = call.path;
      size_t p = missing.find(job->id());
      if (p != std::string::npos) {
        missing.replace(p, job->id().size(), "job-000000000000");
      } else {
        missing.replace(missing.find("lg1"), 3, "no-such-agent");
      }
      status = c.client().Raw(call.method, missing, call.body, &answer);
      ASSERT_TRUE(status.ok());
      EXPECT_EQ(*status, 404) << missing;
      CheckAnswer(doc, call, *status, answer);
    }
  }
  // A malformed body: 400 as documented.
  for (const Call& call : calls) {
    if (call.body.empty()) continue;
    std::string answer;
    auto status = c.client().Raw(call.method, call.path, "{\"no_such_field\": 1}", &answer);
    ASSERT_TRUE(status.ok());
    EXPECT_EQ(*status, 400) << call.path << ": " << answer;
    CheckAnswer(doc, call, *status, answer);
  }
}

// Runs `cmd` in a shell; {exit status, stdout and stderr}.
std::pair<int, std::string> Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// A client generated from the document in another language: TypeScript
// types by openapi-typescript, calls by openapi-fetch (tests/openapi/
// client.ts), type-checked against the generated types with tsc --strict and
// run against this scheduler: submit, get, plan, a 404, cancel.
TEST(OpenApiIT, AGeneratedTypeScriptClientSubmitsGetsPlansAndCancels) {
  const std::string npm = PORTOLAN_OPENAPI_NPM;
  const std::string node = PORTOLAN_NODE;
  ASSERT_EQ(access((npm + "/node_modules/openapi-fetch").c_str(), F_OK), 0)
      << "the npm packages are missing: build the openapi_npm target";
  const std::string gen = npm + "/gen";  // under the packages, where node finds them
  auto [rc, out] = Shell(
      "rm -rf " + gen + " && mkdir -p " + gen + " && " + node + " " + npm +
      "/node_modules/openapi-typescript/bin/cli.js " PORTOLAN_SOURCE_DIR "/api/openapi.yaml -o " +
      gen + "/schema.d.ts && cp " PORTOLAN_SOURCE_DIR "/tests/openapi/client.ts " + gen + "/");
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) =
      Shell(node + " " + npm +
            "/node_modules/typescript/bin/tsc --strict --target es2022 --module "
            "nodenext --moduleResolution nodenext --skipLibCheck --types node "
            "--typeRoots " +
            npm + "/node_modules/@types --outDir " + gen + " " + gen + "/client.ts");
  ASSERT_EQ(rc, 0) << "the client does not type-check against the generated types:\n" << out;

  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  std::tie(rc, out) =
      Shell("PORTOLAN_URL=" + c.base_url() + " PORTOLAN_TOKEN=" + Cluster::kAdminToken + " " +
            node + " " + gen + "/client.js");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"planned\":true,\"state\":\"cancelled\""), std::string::npos) << out;
}

}  // namespace
}  // namespace portolan::testing
