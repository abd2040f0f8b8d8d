// SPDX-License-Identifier: Apache-2.0
#pragma once

// Between Boost.Beast's HTTP messages and rest::Request/Response, private to
// the REST server (server.cc): header and chunk-size checks, parser errors as
// JSON answers, percent-decoded paths and queries. Stateless; thread-safe.
#include <optional>
#include <string>

#include <boost/beast/http.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "portolan/rest/server.h"

namespace portolan::rest::http_codec {

namespace beast = boost::beast;
namespace http = beast::http;

// While the parser waits in a chunked body, `pending` is what it has not
// consumed: a chunk-size line in the making. False when it can no longer
// become one (Beast would otherwise wait for the request timeout).
bool ChunkLineMayBeValid(absl::string_view pending);
// The 400 for a malformed chunk-size line.
Response BadChunk();
// Whether `ec` is a refusal by the HTTP parser (not the end of the stream).
bool IsParserError(const beast::error_code& ec);
// The answer to a request Beast's parser refused (413, 431, 400).
Response ParseErrorResponse(const beast::error_code& ec, const ServerOptions& o);
// Checks made once the header is in, before any of the body is read.
std::optional<Response> CheckHeader(const http::request_header<>& h, const ServerOptions& o);
// The request as the router sees it: decoded path and query, headers, body.
absl::StatusOr<Request> ToRequest(http::request<http::string_body>&& msg, std::string peer);
// `r` as a Beast response of HTTP version `version`.
http::response<http::string_body> ToBeast(const Response& r, unsigned version, bool keep_alive);

}  // namespace portolan::rest::http_codec
