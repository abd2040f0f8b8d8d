// SPDX-License-Identifier: Apache-2.0
#include "portolan/rest/server.h"

// Routing, authentication, rate limiting and the request checks that do not
// depend on the transport; server.cc is the HTTP side.
#include <atomic>
#include <future>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "portolan/base/log.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/api.pb.h"

namespace portolan::rest {
namespace {

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

// "application/json", any case, optionally with parameters ("; charset=utf-8").
bool IsJsonMediaType(absl::string_view v) {
  absl::string_view type = absl::StripAsciiWhitespace(v.substr(0, v.find(';')));
  return absl::EqualsIgnoreCase(type, "application/json");
}

}  // namespace

Response ErrorResponse(int status, absl::string_view code, absl::string_view message,
                       absl::string_view field) {
  // Messages and fields may quote client input: keep the body valid UTF-8
  // JSON whatever the client sent.
  v1::ErrorResponse e;
  e.mutable_error()->set_code(std::string(code));
  e.mutable_error()->set_message(base::SanitizeUtf8(message));
  e.mutable_error()->set_field(base::CleanForMessage(field, 256));
  return Response{status, codec::ToJson(e), "application/json", {}, nullptr};
}

Response StatusResponse(const absl::Status& status) {
  std::string code = codec::StatusErrorCode(status);
  if (code.empty()) code = CodeFor(status.code());
  return ErrorResponse(HttpFor(status.code()), code, status.message(), codec::StatusField(status));
}

Response Json(std::string body, int status) {
  return Response{status, std::move(body), "application/json", {}, nullptr};
}

void Server::Route(const std::string& method, const std::string& pattern, Handler handler,
                   bool is_public) {
  routes_.push_back(RouteEntry{method, Segments(pattern), std::move(handler), nullptr, is_public});
}

void Server::RouteAsync(const std::string& method, const std::string& pattern, AsyncHandler handler,
                        bool is_public) {
  routes_.push_back(RouteEntry{method, Segments(pattern), nullptr, std::move(handler), is_public});
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
// The 500 for a handler that threw (logged; the client learns nothing of it).
Response Threw(const Request& request, const std::exception& e) {
  spdlog::error("handler {} {} threw: {}", request.method, request.path, e.what());
  return ErrorResponse(500, "internal", "internal error while handling the request");
}
}  // namespace

void Server::Dispatch(Request& request, Reply reply) const {
  Response answer;
  const RouteEntry* route = Resolve(request, &answer);
  if (route == nullptr) return reply(std::move(answer));
  if (route->handler) {  // most routes: answered here, nothing to guard
    try {
      answer = route->handler(request);
    } catch (const std::exception& e) {
      answer = Threw(request, e);
    }
    return reply(std::move(answer));
  }
  // The first answer counts: a handler that throws after it answered, or
  // answers twice, changes nothing.
  auto once = std::make_shared<std::atomic<bool>>(false);
  Reply guarded = [once, reply = std::move(reply)](Response r) {
    if (!once->exchange(true)) reply(std::move(r));
  };
  try {
    route->async(request, guarded);
  } catch (const std::exception& e) {
    guarded(Threw(request, e));
  }
}

Response Server::Dispatch(Request& request) const {
  auto answer = std::make_shared<std::promise<Response>>();
  std::future<Response> got = answer->get_future();
  Dispatch(request, [answer](Response r) { answer->set_value(std::move(r)); });
  return got.get();
}

const Server::RouteEntry* Server::Resolve(Request& request, Response* answer) const {
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
        if (!who.ok()) {
          *answer = ErrorResponse(401, "unauthenticated", who.status().message());
          answer->headers.emplace_back("WWW-Authenticate", "Bearer realm=\"portolan\"");
          return nullptr;
        }
        request.principal = *who;
      } else {
        request.principal.name = "anonymous";
        request.principal.role = v1::Token::admin;
      }
      if (options_.limiter != nullptr &&
          !options_.limiter->Allow(
              request.principal.name.empty() ? request.peer : request.principal.name,
              absl::Now())) {
        *answer = ErrorResponse(
            429, "rate_limited",
            absl::StrCat("too many requests from ", request.principal.name, "; retry shortly"));
        return nullptr;
      }
    }
    for (const auto& [name, value] : request.params) {
      if (!base::IsId(value) && !base::IsTaskId(value)) {
        *answer = ErrorResponse(
            400, "invalid_argument",
            absl::StrCat(name, " must be ", base::kIdRule, " (a task: ID[INDEX])"), name);
        return nullptr;
      }
    }
    if (!request.body.empty()) {
      auto ct = request.headers.find("content-type");
      if (ct == request.headers.end() || !IsJsonMediaType(ct->second)) {
        *answer =
            ErrorResponse(415, "unsupported_media_type",
                          // The header's value is not quoted back: nothing of a request's
                          // headers is echoed (tests/fuzz/fuzz_http.cc checks it).
                          ct == request.headers.end()
                              ? "a request body needs Content-Type: application/json"
                              : "request bodies are JSON: Content-Type must be application/json",
                          "content-type");
        return nullptr;
      }
    }
    if (!request.body.empty() && JsonDepth(request.body) > options_.max_json_depth) {
      *answer = ErrorResponse(
          400, "invalid_argument",
          absl::StrCat("JSON nested deeper than ", options_.max_json_depth, " levels"));
      return nullptr;
    }
    return &r;
  }
  if (fallback_ && allowed.empty()) {
    *answer = fallback_(request);
    return nullptr;
  }
  if (!allowed.empty()) {
    Response r =
        ErrorResponse(405, "method_not_allowed",
                      absl::StrCat(base::CleanForMessage(request.method, 32), " is not allowed on ",
                                   base::CleanForMessage(request.path, 200),
                                   "; allowed: ", absl::StrJoin(allowed, ", ")));
    r.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
    *answer = std::move(r);
    return nullptr;
  }
  *answer = ErrorResponse(404, "not_found",
                          absl::StrCat("no such path: ", base::CleanForMessage(request.path, 200)));
  return nullptr;
}

void Server::Fallback(Handler handler) { fallback_ = std::move(handler); }

std::vector<std::pair<std::string, std::string>> Server::Routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const RouteEntry& r : routes_) {
    std::string pattern;
    for (const std::string& s : r.segments) absl::StrAppend(&pattern, "/", s);
    out.emplace_back(r.method, pattern.empty() ? "/" : pattern);
  }
  return out;
}

}  // namespace portolan::rest
