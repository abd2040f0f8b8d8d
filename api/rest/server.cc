#include "portolan/rest_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cpprest/http_listener.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "portolan/codec.h"
#include "portolan/log.h"
#include "portolan/tls.h"
#include "portolan/v1/api.pb.h"

namespace portolan::rest {
namespace {

namespace http = web::http;

std::string CodeFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
      return "invalid_argument";
    case absl::StatusCode::kNotFound:
      return "not_found";
    case absl::StatusCode::kAlreadyExists:
      return "already_exists";
    case absl::StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case absl::StatusCode::kPermissionDenied:
      return "permission_denied";
    case absl::StatusCode::kUnauthenticated:
      return "unauthenticated";
    case absl::StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case absl::StatusCode::kAborted:
      return "aborted";
    case absl::StatusCode::kOutOfRange:
      return "out_of_range";
    case absl::StatusCode::kUnimplemented:
      return "unimplemented";
    default:
      return "internal";
  }
}

int HttpFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::vector<std::string> Segments(absl::string_view path) {
  std::vector<std::string> out;
  for (absl::string_view s : absl::StrSplit(path, '/', absl::SkipEmpty())) out.emplace_back(s);
  return out;
}

// cpprestsdk cannot report the port it bound, so port 0 is resolved here by
// asking the kernel for a free port first.
absl::StatusOr<uint16_t> PickFreePort(const std::string& host) {
  int fd = socket(host.find(':') != std::string::npos ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  int rc;
  if (host.find(':') != std::string::npos) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    inet_pton(AF_INET6, host.c_str(), &a.sin6_addr);
    rc = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat("not an IP address: ", host));
    }
    rc = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0) {
    int e = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("bind ", host, ":0: ", strerror(e)));
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  uint16_t port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                           : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  close(fd);
  return port;
}

}  // namespace

Response ErrorResponse(int status, absl::string_view code, absl::string_view message,
                       absl::string_view field) {
  v1::ErrorResponse e;
  e.mutable_error()->set_code(std::string(code));
  e.mutable_error()->set_message(std::string(message));
  e.mutable_error()->set_field(std::string(field));
  return Response{status, ToJson(e)};
}

Response StatusResponse(const absl::Status& status) {
  return ErrorResponse(HttpFor(status.code()), CodeFor(status.code()), status.message(),
                       StatusField(status));
}

Response Json(std::string body, int status) { return Response{status, std::move(body)}; }

struct Server::Impl {
  std::unique_ptr<http::experimental::listener::http_listener> listener;
};

Server::Server(ServerOptions options) : options_(options), impl_(std::make_unique<Impl>()) {}

Server::~Server() { Stop(); }

void Server::Route(const std::string& method, const std::string& pattern, Handler handler,
                   bool is_public) {
  routes_.push_back(RouteEntry{method, Segments(pattern), std::move(handler), is_public});
}

namespace {
// Nesting depth of a JSON text, strings skipped; bounded work, no parse.
size_t JsonDepth(const std::string& body) {
  size_t depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return max_depth;
}
}  // namespace

Response Server::Dispatch(Request& request) const {
  const std::vector<std::string> segs = Segments(request.path);
  std::vector<std::string> allowed;
  for (const RouteEntry& r : routes_) {
    if (r.segments.size() != segs.size()) continue;
    std::map<std::string, std::string> params;
    bool match = true;
    for (size_t i = 0; i < segs.size() && match; ++i) {
      const std::string& p = r.segments[i];
      if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
        params[p.substr(1, p.size() - 2)] = segs[i];
      } else {
        match = p == segs[i];
      }
    }
    if (!match) continue;
    if (r.method != request.method) {
      allowed.push_back(r.method);
      continue;
    }
    request.params = std::move(params);
    if (!r.is_public) {
      if (options_.tokens != nullptr) {
        std::string bearer;
        auto h = request.headers.find("authorization");
        if (h != request.headers.end() && absl::StartsWithIgnoreCase(h->second, "bearer ")) {
          bearer = std::string(absl::StripAsciiWhitespace(h->second.substr(7)));
        }
        auto who = options_.tokens->Authenticate(bearer);
        if (!who.ok()) return ErrorResponse(401, "unauthenticated", who.status().message());
        request.principal = *who;
      } else {
        request.principal.name = "anonymous";
        request.principal.role = v1::Token::admin;
      }
      if (options_.limiter != nullptr &&
          !options_.limiter->Allow(
              request.principal.name.empty() ? request.peer : request.principal.name,
              absl::Now())) {
        return ErrorResponse(
            429, "rate_limited",
            absl::StrCat("too many requests from ", request.principal.name, "; retry shortly"));
      }
    }
    if (!request.body.empty() && JsonDepth(request.body) > options_.max_json_depth) {
      return ErrorResponse(
          400, "invalid_argument",
          absl::StrCat("JSON nested deeper than ", options_.max_json_depth, " levels"));
    }
    try {
      return r.handler(request);
    } catch (const std::exception& e) {
      spdlog::error("handler {} {} threw: {}", request.method, request.path, e.what());
      return ErrorResponse(500, "internal", "internal error while handling the request");
    }
  }
  if (!allowed.empty()) {
    return ErrorResponse(405, "method_not_allowed",
                         absl::StrCat(request.method, " is not allowed on ", request.path,
                                      "; allowed: ", absl::StrJoin(allowed, ", ")));
  }
  return ErrorResponse(404, "not_found", absl::StrCat("no such path: ", request.path));
}

std::vector<std::pair<std::string, std::string>> Server::Routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const RouteEntry& r : routes_) {
    std::string pattern;
    for (const std::string& s : r.segments) absl::StrAppend(&pattern, "/", s);
    out.emplace_back(r.method, pattern.empty() ? "/" : pattern);
  }
  return out;
}

absl::Status Server::Start(const HostPort& addr) {
  HostPort hp = addr;
  if (hp.port == 0) {
    auto port = PickFreePort(hp.host);
    if (!port.ok()) return port.status();
    hp.port = *port;
  }
  web::http::experimental::listener::http_listener_config config;
  config.set_timeout(utility::seconds(options_.request_timeout_s));
  const bool https = !options_.https.cert.empty();
  if (https) {
    // Load once here so a bad file fails Start with its name and reason;
    // cpprestsdk then configures its own context the same way.
    boost::asio::ssl::context probe(boost::asio::ssl::context::tls_server);
    if (absl::Status st = tls::ConfigureHttpsServer(probe, options_.https); !st.ok())
      return absl::InvalidArgumentError(absl::StrCat("HTTPS: ", st.message()));
    config.set_ssl_context_callback([files = options_.https](boost::asio::ssl::context& ctx) {
      absl::Status st = tls::ConfigureHttpsServer(ctx, files);
      if (!st.ok()) spdlog::error("HTTPS context: {}", st.message());
    });
  }
  std::string url = absl::StrCat(https ? "https://" : "http://", hp.ToString(), "/");
  try {
    impl_->listener =
        std::make_unique<http::experimental::listener::http_listener>(web::uri(url), config);
    // Never block a pool thread on the request body: with more requests in
    // flight than pool threads (40), every thread would wait for a body read
    // that needs a free thread, and the listener would hang for good
    // (cpprestsdk issues 1144, 1147). The body is read by a continuation.
    impl_->listener->support([this](http::http_request req) {
      auto reply = [req, this](const Response& resp) mutable {
        if (options_.on_response) options_.on_response(resp.status);
        try {
          http::http_response out(static_cast<http::status_code>(resp.status));
          out.set_body(resp.body, resp.content_type);
          req.reply(out).then([](pplx::task<void> t) {
            try {
              t.get();
            } catch (const std::exception& e) {
              spdlog::debug("REST reply not delivered: {}", e.what());
            }
          });
        } catch (const std::exception& e) {
          spdlog::warn("REST reply failed: {}", e.what());
        }
      };
      auto r = std::make_shared<Request>();
      try {
        r->method = req.method();
        r->path = web::uri::decode(req.relative_uri().path());
        for (const auto& [k, v] : web::uri::split_query(req.relative_uri().query())) {
          r->query[web::uri::decode(k)] = web::uri::decode(v);
        }
        for (const auto& [k, v] : req.headers()) r->headers[absl::AsciiStrToLower(k)] = v;
        r->peer = req.remote_address();
        const uint64_t declared = req.headers().content_length();
        if (declared > options_.max_body_bytes) {
          reply(ErrorResponse(
              413, "payload_too_large",
              absl::StrCat("request body of ", declared, " bytes exceeds the limit of ",
                           options_.max_body_bytes, " bytes")));
          return;
        }
      } catch (const std::exception& e) {
        spdlog::warn("REST request failed before dispatch: {}", e.what());
        reply(ErrorResponse(400, "bad_request", absl::StrCat("unreadable request: ", e.what())));
        return;
      }
      req.extract_string(true).then([this, r, reply](pplx::task<std::string> body) mutable {
        Response resp;
        try {
          r->body = body.get();
          if (r->body.size() > options_.max_body_bytes) {
            resp = ErrorResponse(413, "payload_too_large",
                                 absl::StrCat("request body exceeds the limit of ",
                                              options_.max_body_bytes, " bytes"));
          } else {
            resp = Dispatch(*r);
          }
        } catch (const std::exception& e) {
          spdlog::warn("REST request body unreadable: {}", e.what());
          resp = ErrorResponse(400, "bad_request", absl::StrCat("unreadable request: ", e.what()));
        }
        reply(resp);
      });
    });
    impl_->listener->open().wait();
  } catch (const std::exception& e) {
    impl_->listener.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", hp.ToString(), ": ", e.what()));
  }
  bound_ = hp;
  return absl::OkStatus();
}

void Server::Stop() {
  if (impl_ && impl_->listener) {
    try {
      impl_->listener->close().wait();
    } catch (const std::exception& e) {
      spdlog::warn("REST listener close: {}", e.what());
    }
    impl_->listener.reset();
  }
}

}  // namespace portolan::rest
