// SPDX-License-Identifier: Apache-2.0
// Server::ServeBytes: one request as raw bytes through the parser, limits
// and checks a connection runs (server.cc), without a socket; for the fuzz
// targets and tests.
#include <sstream>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "portolan/rest/server.h"
#include "scheduler/rest/http_codec.h"

namespace portolan::rest {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using Parser = http::request_parser<http::string_body>;

using http_codec::BadChunk;
using http_codec::CheckHeader;
using http_codec::ChunkLineMayBeValid;
using http_codec::ParseErrorResponse;
using http_codec::ToBeast;
using http_codec::ToRequest;

std::string Server::ServeBytes(absl::string_view raw) const {
  auto answer = [](const Response& r, unsigned version, bool keep_alive) {
    std::ostringstream out;
    out << ToBeast(r, version, keep_alive);
    return out.str();
  };
  Parser parser;
  parser.header_limit(static_cast<uint32_t>(options_.max_header_bytes));
  parser.body_limit(options_.max_body_bytes);
  parser.eager(true);
  bool header_checked = false;
  size_t used = 0;
  while (!parser.is_done()) {
    if (used == raw.size()) return "";  // incomplete: a connection would wait, then close
    beast::error_code ec;
    const size_t n = parser.put(net::buffer(raw.data() + used, raw.size() - used), ec);
    used += n;
    if (ec == http::error::need_more) {
      if (parser.is_header_done() && parser.chunked() && !ChunkLineMayBeValid(raw.substr(used))) {
        return answer(BadChunk(), 11, false);
      }
      if (n == 0) return "";
      ec = {};
    }
    if (ec) return answer(ParseErrorResponse(ec, options_), 11, false);
    if (parser.is_header_done() && !header_checked) {
      header_checked = true;
      if (auto refusal = CheckHeader(parser.get(), options_)) return answer(*refusal, 11, false);
    }
    if (n == 0 && !parser.is_done()) return "";
  }
  http::request<http::string_body> msg = parser.release();
  const unsigned version = msg.version();
  const bool keep_alive = msg.keep_alive();
  absl::StatusOr<Request> request = ToRequest(std::move(msg), "127.0.0.1");
  if (!request.ok()) {
    return answer(ErrorResponse(400, "bad_request", request.status().message()), version, false);
  }
  return answer(Dispatch(*request), version, keep_alive);
}

}  // namespace portolan::rest
