// SPDX-License-Identifier: Apache-2.0
// The REST server's stack with no work behind it: the same rest::Server
// (Boost.Beast, its I/O and handler threads, limits, the same bearer-token
// check when --tokens is given) answering POST /v1/jobs with 201 and a small
// JSON body at once, without parsing, storing or scheduling anything.
// tests/bench/rest_wrk.sh drives it with the same wrk script as the
// scheduler, so durable submits/s ÷ this rate is the share of the HTTP
// stack's own ceiling that a real submit keeps.
//
//   bare_listener [--addr 127.0.0.1:0] [--tokens FILE] [--ports-file FILE]
// Runs until SIGTERM or SIGINT; writes {"rest": PORT} to --ports-file once
// listening.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "portolan/auth/auth.h"
#include "portolan/base/strings.h"
#include "portolan/rest/server.h"

int main(int argc, char** argv) {
  std::string addr = "127.0.0.1:0", tokens_file, ports_file;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!strcmp(argv[i], "--addr") && has_value) {
      addr = argv[++i];
    } else if (!strcmp(argv[i], "--tokens") && has_value) {
      tokens_file = argv[++i];
    } else if (!strcmp(argv[i], "--ports-file") && has_value) {
      ports_file = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: bare_listener [--addr 127.0.0.1:0] [--tokens FILE] [--ports-file FILE]\n"
                   "unknown or incomplete argument: %s\n",
                   argv[i]);
      return 2;
    }
  }
  auto where = portolan::base::ParseHostPort(addr);
  if (!where.ok()) {
    std::fprintf(stderr, "bare_listener: --addr: %s\n",
                 std::string(where.status().message()).c_str());
    return 2;
  }
  portolan::auth::TokenStore tokens;
  if (!tokens_file.empty()) {
    if (absl::Status st = tokens.Load(tokens_file); !st.ok()) {
      std::fprintf(stderr, "bare_listener: %s\n", std::string(st.message()).c_str());
      return 2;
    }
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before the server's threads start

  portolan::rest::ServerOptions options;  // the scheduler's defaults
  options.tokens = tokens_file.empty() ? nullptr : &tokens;
  portolan::rest::Server server(options);
  server.Route("POST", "/v1/jobs", [](const portolan::rest::Request&) {
    return portolan::rest::Json(R"({"id":"job-000000000000","state":"queued"})", 201);
  });
  if (absl::Status st = server.Start(*where); !st.ok()) {
    std::fprintf(stderr, "bare_listener: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  const int port = server.bound().port;
  if (!ports_file.empty()) std::ofstream(ports_file) << "{\"rest\": " << port << "}\n";
  std::fprintf(stderr, "bare_listener: answering POST /v1/jobs with 201 on %s:%d\n",
               server.bound().host.c_str(), port);
  int sig = 0;
  sigwait(&signals, &sig);
  server.Stop();
  return 0;
}
