// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the REST job submission path as the scheduler runs it
// for POST /v1/jobs — the server's size and JSON-depth checks, proto3 JSON
// parsing against the Job schema (unknown fields refused) and job
// validation with defaults. Invariants: no crash, no 5xx (an exception or
// unexpected status escaping is a bug), every error names a code, a parsed
// job prints the same through the direct printer as through protobuf's, and
// a job that validates prints to JSON that parses and validates again unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "google/protobuf/util/message_differencer.h"
#include "portolan/codec/codec.h"
#include "portolan/rest/server.h"
#include "portolan/scheduler/core.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/job.pb.h"

namespace {

portolan::rest::Server* MakeServer() {
  auto* server = new portolan::rest::Server();  // default limits, no auth
  server->Route("POST", "/v1/jobs", [](const portolan::rest::Request& req) {
    portolan::v1::Job job;
    if (absl::Status st = portolan::codec::ParseJson(req.body, &job); !st.ok())
      return portolan::rest::StatusResponse(st);
    // The direct parse (strict_json.cc) gives what protobuf's parser gives.
    portolan::v1::Job slow;
    if (!portolan::codec::internal::ProtobufParseJson(req.body, &slow).ok()) abort();
    if (!google::protobuf::util::MessageDifferencer::Equals(job, slow)) abort();
    // The direct JSON printer writes what protobuf's printer writes (byte for
    // byte unless a map has two or more entries, whose order differs).
    std::string fast;
    if (!portolan::codec::internal::FastJson(job, &fast)) abort();
    if (job.env_size() <= 1 && job.placement().max_rtt_ms_size() <= 1 &&
        fast != portolan::codec::internal::ProtobufJson(job, false)) {
      abort();
    }
    if (absl::Status st = portolan::scheduler::ValidateAndDefault(job); !st.ok())
      return portolan::rest::StatusResponse(st);
    // Printed and parsed again, a valid job stays the same and stays valid.
    portolan::v1::Job again;
    if (!portolan::codec::ParseJson(portolan::codec::ToJson(job), &again).ok()) abort();
    if (!google::protobuf::util::MessageDifferencer::Equals(job, again)) abort();
    if (!portolan::scheduler::ValidateAndDefault(again).ok()) abort();
    return portolan::rest::Json(portolan::codec::ToJson(job), 201);
  });
  return server;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static portolan::rest::Server* server = MakeServer();
  portolan::rest::Request req;
  req.method = "POST";
  req.path = "/v1/jobs";
  req.body.assign(reinterpret_cast<const char*>(data), size);
  portolan::rest::Response resp = server->Dispatch(req);
  if (resp.status >= 500) abort();
  if (resp.status >= 400) {
    portolan::v1::ErrorResponse err;
    if (!portolan::codec::ParseJson(resp.body, &err).ok() || err.error().code().empty() ||
        err.error().message().empty()) {
      abort();
    }
  }
  return 0;
}
