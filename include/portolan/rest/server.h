// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "portolan/auth/auth.h"
#include "portolan/base/strings.h"
#include "portolan/tls/tls.h"

namespace portolan::rest {

struct Request {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // decoded path, no query
  std::string target;                          // the request target as sent (path?query)
  std::map<std::string, std::string> params;   // {name} captures of the route
  std::map<std::string, std::string> query;    // decoded query parameters
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;
  std::string peer;
  auth::Principal principal;  // set for authenticated routes
};

// A response body that goes on while the client stays (GET /v1/events,
// text/event-stream). The server writes the head (chunked), calls Start
// once, then calls Pull on the connection's strand after each wake and
// writes what it returns as a chunk; every `stream_keepalive_s` with
// nothing to send it writes Keepalive(), which also finds clients that are
// gone.
// Owned by the connection and destroyed when it closes (the client left, a
// write timed out, the server stopped).
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // `wake` may be called from any thread until this object is destroyed
  // (and never after the server is: only the connection should own it).
  virtual void Start(std::function<void()> wake) = 0;
  // What to send now; "" for nothing yet.
  virtual std::string Pull() = 0;
  // What to send after stream_keepalive_s without data (e.g. a comment).
  virtual std::string Keepalive() = 0;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  // Extra response headers (Allow on a 405, WWW-Authenticate on a 401).
  std::vector<std::pair<std::string, std::string>> headers;
  // Set: `body` is ignored and the body is this stream (status 200 only).
  std::shared_ptr<ResponseStream> stream;
};

// {"error": {"code": ..., "message": ..., "field": ...}} with `status`.
Response ErrorResponse(int status, absl::string_view code, absl::string_view message,
                       absl::string_view field = "");
// Maps an absl::Status (and its field payload) to the HTTP error above.
Response StatusResponse(const absl::Status& status);
// 200 (or `status`) with a JSON body.
Response Json(std::string body, int status = 200);

// Limits and timeouts of the HTTP transport. Every refusal answers with the
// JSON error body above (and closes the connection) unless the peer is gone
// or too slow.
struct ServerOptions {
  size_t max_body_bytes = 1u << 20;  // a declared or received larger body gets 413
  // Request line plus headers; more gets 431. The request target alone is
  // capped at max_target_bytes (414), the number of header fields at
  // max_headers (431).
  size_t max_header_bytes = 16 * 1024;
  size_t max_target_bytes = 8 * 1024;
  size_t max_headers = 100;
  // A request, from its first byte to its last, must arrive within this;
  // otherwise the connection is closed.
  int request_timeout_s = 30;
  int handshake_timeout_s = 10;  // the TLS handshake (HTTPS only)
  // A connection with no request in progress (new, or kept alive after an
  // answer) is closed after this.
  int idle_timeout_s = 60;
  int write_timeout_s = 30;  // sending one response, or one chunk of a stream
  // A streamed response (ResponseStream) with nothing to send for this long
  // sends a comment line, so proxies keep it and dead clients are noticed.
  int stream_keepalive_s = 15;
  // Open connections: in all, and from one client address. A connection over
  // either cap is closed at once, before any TLS work.
  // Behind a proxy every client shares its address: raise the per-client cap.
  size_t max_connections = 1024;
  size_t max_connections_per_client = 256;
  // Threads running the network I/O (accept, TLS, parsing) and threads
  // running handlers. Handlers may block (the core's lock, a store commit);
  // I/O threads never wait for them.
  int io_threads = 2;
  int handler_threads = 32;
  // Bearer-token authentication for non-public routes; null turns it off
  // (every caller is an anonymous admin). Not owned; outlives the server.
  const auth::TokenStore* tokens = nullptr;
  // Per-principal (or per-peer when unauthenticated) limit; null: none.
  auth::RateLimiter* limiter = nullptr;
  size_t max_json_depth = 32;  // deeper bodies get 400 before parsing
  // Called with the status of every answered request (e.g. for metrics);
  // from I/O threads, so it must be thread-safe.
  std::function<void(int status)> on_response;
  // HTTPS when `https.cert` is set (cert chain and key, PEM); plain HTTP
  // otherwise. `https.ca` is unused (no client certificates on REST).
  tls::Files https;
};

// An HTTP/1.1 server on Boost.Beast (keep-alive, optional TLS). Routes are
// registered before Start(); handlers run on a pool of handler threads,
// concurrently, so they must be thread-safe. Exceptions escaping a handler
// become a 500 and are logged.
//
// Requests are parsed strictly (Beast's parser: chunk sizes in hex only,
// one Content-Length, bodies checked against the limit from the declared
// length before they are read). Only the methods a route serves are
// answered (405 with Allow otherwise; no TRACE, no OPTIONS: there is no
// CORS). Route parameters ("{id}") must be ids, [A-Za-z0-9._-]{1,128}; a
// request body must be declared `Content-Type: application/json`.
class Server {
 public:
  using Handler = std::function<Response(const Request&)>;
  // A handler that answers later, e.g. once a store write is durable, so
  // that no handler thread waits meanwhile. It calls `reply` exactly once,
  // from any thread (later calls are ignored); until then the connection
  // waits. The request lives only during the handler's call: copy what the
  // answer needs.
  using Reply = std::function<void(Response)>;
  using AsyncHandler = std::function<void(const Request&, Reply reply)>;

  explicit Server(ServerOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // `pattern` is a path whose segments may be "{name}" placeholders. Routes
  // need a valid bearer token unless `is_public`.
  void Route(const std::string& method, const std::string& pattern, Handler handler,
             bool is_public = false);
  void RouteAsync(const std::string& method, const std::string& pattern, AsyncHandler handler,
                  bool is_public = false);

  // Answers requests that match no route (instead of 404), e.g. a standby
  // scheduler redirecting to the leader. Runs without authentication: it
  // must not disclose anything a token would guard.
  void Fallback(Handler handler);
  // Listens on `addr`. Port 0 picks a free port; bound() tells which.
  absl::Status Start(const base::HostPort& addr);
  base::HostPort bound() const { return bound_; }
  // "http" or "https".
  const char* scheme() const { return options_.https.cert.empty() ? "http" : "https"; }
  // Closes the listener and every connection; waits for running handlers.
  void Stop();

  // Open connections now, and connections refused by the caps since Start.
  size_t connections() const;
  uint64_t refused_connections() const;

  // Every registered route as {method, pattern}, e.g. {"GET", "/v1/jobs/{id}"}.
  std::vector<std::pair<std::string, std::string>> Routes() const;

  // Dispatches without the network (used by the connections and by tests).
  // `reply` gets the answer, on this thread unless the route is async.
  void Dispatch(Request& request, Reply reply) const;
  // The same, waiting for an async route's answer.
  Response Dispatch(Request& request) const;

  // One request as raw bytes, through the same parser, limits and checks as
  // a connection, to the bytes of the answer ("" when a connection would be
  // closed without one: incomplete input). For fuzzing and tests.
  std::string ServeBytes(absl::string_view raw) const;

 private:
  struct RouteEntry {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;  // one of these two is set
    AsyncHandler async;
    bool is_public = false;
  };
  // The route `request` goes to, with its params and principal set; null
  // when it is answered without a handler (`*answer`: 404, 401, 429, ...).
  const RouteEntry* Resolve(Request& request, Response* answer) const;
  struct Impl;  // the Beast transport (server.cc)
  template <class Stream>
  class Session;  // one connection

  ServerOptions options_;
  std::vector<RouteEntry> routes_;
  Handler fallback_;
  base::HostPort bound_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portolan::rest
