// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: raw HTTP/1.1 request bytes through rest::Server's
// ServeBytes — Beast's request parser with the production limits (header
// size and count, target length, body limit from Content-Length, chunked
// framing), the header checks, strict target decoding and the router
// (404/405, route-parameter ids, Content-Type, JSON depth) down to a POST
// /v1/jobs handler that parses and validates the body as a job.
// Invariants: no crash; the answer is empty (incomplete request) or an HTTP
// response with a status below 500 (or 501 for an unsupported transfer
// coding), and every error carries a JSON error body
// with a code and a message; nothing of the request's headers is echoed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "portolan/codec/codec.h"
#include "portolan/rest/server.h"
#include "portolan/scheduler/core.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/job.pb.h"

namespace {

portolan::rest::Server* MakeServer() {
  portolan::rest::ServerOptions o;
  o.max_body_bytes = 64 * 1024;  // small, so the fuzzer reaches the limit
  auto* server = new portolan::rest::Server(o);
  server->Route(
      "GET", "/healthz", [](const portolan::rest::Request&) { return portolan::rest::Json("{}"); },
      true);
  server->Route("POST", "/v1/jobs", [](const portolan::rest::Request& req) {
    portolan::v1::Job job;
    if (absl::Status st = portolan::codec::ParseJson(req.body, &job); !st.ok())
      return portolan::rest::StatusResponse(st);
    if (absl::Status st = portolan::scheduler::ValidateAndDefault(job); !st.ok())
      return portolan::rest::StatusResponse(st);
    return portolan::rest::Json(portolan::codec::ToJson(job), 201);
  });
  server->Route("GET", "/v1/jobs/{id}", [](const portolan::rest::Request& req) {
    portolan::v1::Job job;
    job.set_id(req.params.at("id"));
    return portolan::rest::Json(portolan::codec::ToJson(job));
  });
  server->Route("GET", "/v1/jobs", [](const portolan::rest::Request& req) {
    for (const auto& [k, v] : req.query) {
      if (k != "state" && k != "page_size")
        return portolan::rest::ErrorResponse(400, "invalid_argument", "unknown parameter", k);
    }
    return portolan::rest::Json("{\"jobs\":[]}");
  });
  return server;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static portolan::rest::Server* server = MakeServer();
  const std::string raw(reinterpret_cast<const char*>(data), size);
  const std::string answer = server->ServeBytes(raw);
  if (answer.empty()) return 0;
  if (!absl::StartsWith(answer, "HTTP/1.") || answer.size() < 12) abort();
  const int status = std::atoi(answer.substr(9, 3).c_str());
  // 501 is the one 5xx a request may earn (a Transfer-Encoding other than
  // chunked); any other 5xx is a bug.
  if (status < 200 || (status >= 500 && status != 501)) abort();
  const size_t end = answer.find("\r\n\r\n");
  if (end == std::string::npos) abort();
  const std::string body = answer.substr(end + 4);
  if (status >= 400) {  // 4xx and 501
    portolan::v1::ErrorResponse err;
    if (!portolan::codec::ParseJson(body, &err).ok() || err.error().code().empty() ||
        err.error().message().empty()) {
      abort();
    }
  }
  // No header value of the request comes back (TRACE-style echo): when the
  // marker is only in a header (not in the target or the body, which error
  // messages may quote), it is never in the answer.
  const size_t marker = raw.find("X-Secret: s3cr3t");
  const size_t head_end = raw.find("\r\n\r\n");
  if (marker != std::string::npos && marker < head_end &&
      raw.find("s3cr3t", marker + 16) == std::string::npos && raw.find("s3cr3t") == marker + 10 &&
      absl::StrContains(answer, "s3cr3t")) {
    abort();
  }
  return 0;
}
