// SPDX-License-Identifier: Apache-2.0
// The JSON codec on the REST submit path: the request body of
// tests/bench/submit.lua parsed into a v1::Job (codec::ParseJson, the strict
// checks included), and the job the scheduler answers with printed
// (codec::ToJson, the direct printer), next to protobuf's own printer
// (MessageToJsonString with the same options) in the same run. Single
// thread; prints one JSON line and a summary. Not a test: it asserts
// nothing about time, but it exits 1 when the two printers disagree.
//
//   build/tests/bench/codec_bench [--iterations N]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/job.pb.h"

using namespace portolan;

namespace {

// What POST /v1/jobs of submit.lua answers: the stored job, queued.
constexpr char kAnswered[] =
    R"({"name":"true","tenant":"bench","kind":"compute","command":["/bin/true"],"env":{},)"
    R"("resources":{"cpus":1,"memory_mb":16,"gpus":0},"topology":{"numa":"any","smt":"shared",)"
    R"("gpu_numa":"any","memory_kind":""},"datasets":[],"placement":{"sites":["london-1"],)"
    R"("avoid_sites":[],"max_rtt_ms":{},"agent_labels":{}},"priority":0,"max_runtime_s":0,)"
    R"("restart":{"policy":"never","max_attempts":0},"idempotency_key":"","depends_on":[],)"
    R"("outputs":[],"id":"job-643c794c6f06","state":"queued","reason":"no agent registered at )"
    R"(the allowed sites yet — 0/0 agents at 1 allowed site(s) | 8 other site(s) not requested )"
    R"(or avoided","exit_code":0,"signal":0,"attempt":0,"events":[{"state":"queued",)"
    R"("message":"submitted","time":"2026-12-07T01:41:11.568864354Z"}],"cancel_requested":false,)"
    R"("attempts":[],"array_job":"","array_index":0,"task_counts":{},"gang_members":[],)"
    R"("inputs":[],"produced":[],"submitted_at":"2026-12-07T01:41:11.568864354Z"})";

// submit.lua's request body.
constexpr char kRequest[] =
    R"({"tenant":"bench","command":["/bin/true"],"resources":{"cpus":1,"memory_mb":16},)"
    R"("placement":{"sites":["london-1"]}})";

// Nanoseconds per call of `f` over `n` calls; `sink` keeps the work alive.
template <typename F>
double NsPerCall(int n, size_t* sink, F&& f) {
  for (int i = 0; i < n / 10 + 1; ++i) *sink += f();  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) *sink += f();
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / n;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 200000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--iterations")) (void)absl::SimpleAtoi(argv[i + 1], &n);
  }
  v1::Job job;
  if (absl::Status st = codec::ParseJson(kAnswered, &job); !st.ok()) {
    fprintf(stderr, "codec_bench: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  const std::string direct = codec::ToJson(job);
  const std::string protobuf = codec::internal::ProtobufJson(job, false);
  if (direct != protobuf || direct != kAnswered) {
    fprintf(stderr, "codec_bench: the printers disagree:\n%s\n%s\n", direct.c_str(),
            protobuf.c_str());
    return 1;
  }
  size_t sink = 0;
  const double print_ns = NsPerCall(n, &sink, [&] { return codec::ToJson(job).size(); });
  const double protobuf_ns =
      NsPerCall(n / 10, &sink, [&] { return codec::internal::ProtobufJson(job, false).size(); });
  v1::Job parsed;
  const double parse_ns = NsPerCall(n, &sink, [&] {
    return codec::ParseJson(kRequest, &parsed, codec::JsonMode::kRequest).ok() ? 1 : 0;
  });
  printf(
      "{\"bench\":\"codec\",\"iterations\":%d,\"answer_bytes\":%zu,\"to_json_ns\":%.0f,"
      "\"protobuf_json_ns\":%.0f,\"parse_request_ns\":%.0f,\"printer_speedup\":%.2f,"
      "\"sink\":%zu}\n",
      n, direct.size(), print_ns, protobuf_ns, parse_ns, protobuf_ns / print_ns, sink % 10);
  printf(
      "codec: the submit answer (%zu bytes) printed in %.0f ns (protobuf's printer: %.0f ns, "
      "%.2fx); the submit request parsed in %.0f ns\n",
      direct.size(), print_ns, protobuf_ns, protobuf_ns / print_ns, parse_ns);
  return 0;
}
