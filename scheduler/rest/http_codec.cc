// SPDX-License-Identifier: Apache-2.0
// Between Beast's messages and rest::Request/Response: percent-decoding,
// header and chunk-size checks, parser errors as JSON answers.
#include "scheduler/rest/http_codec.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace portolan::rest::http_codec {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding that refuses a malformed escape ("%zz", a lone "%").
bool PercentDecode(absl::string_view in, bool plus_is_space, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

}  // namespace

// Beast parses the last chunk of a chunked body only together with its
// trailers, so a malformed last-chunk line ("0x10\r\n") would wait for more
// bytes until the request times out. `pending` is what the parser has not
// consumed while it waits in a chunked body: a chunk-size line in the making
// (after the previous chunk's CRLF). False when it can no longer become one.
bool ChunkLineMayBeValid(absl::string_view pending) {
  if (absl::StartsWith(pending, "\r\n"))
    pending.remove_prefix(2);
  else if (pending == "\r")
    return true;
  for (char c : pending) {
    if (c == ';' || c == '\r') return true;
    if (!absl::ascii_isxdigit(c)) return false;
  }
  return true;
}

Response BadChunk() {
  return ErrorResponse(400, "bad_request",
                       "malformed chunked body: chunk sizes are hexadecimal digits only");
}

bool IsParserError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message &&
         ec != http::error::need_more;
}

// The answer to a request Beast's parser refused.
Response ParseErrorResponse(const beast::error_code& ec, const ServerOptions& o) {
  if (ec == http::error::body_limit) {
    return ErrorResponse(413, "payload_too_large",
                         absl::StrCat("request body exceeds the limit of ", o.max_body_bytes,
                                      " bytes (--max-body-bytes)"));
  }
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return ErrorResponse(
        431, "header_too_large",
        absl::StrCat("request line and headers exceed ", o.max_header_bytes, " bytes"));
  }
  if (ec == http::error::bad_chunk || ec == http::error::bad_chunk_extension) {
    return ErrorResponse(400, "bad_request",
                         absl::StrCat("malformed chunked body: ", ec.message(),
                                      " (chunk sizes are hexadecimal digits only)"));
  }
  return ErrorResponse(400, "bad_request", absl::StrCat("malformed HTTP request: ", ec.message()));
}

// Checks made once the header is in, before any of the body is read.
std::optional<Response> CheckHeader(const http::request_header<>& h, const ServerOptions& o) {
  if (h.version() != 10 && h.version() != 11) {  // Beast itself parses only 1.x
    return ErrorResponse(400, "bad_request", "only HTTP/1.0 and HTTP/1.1 are served");
  }
  if (h.target().size() > o.max_target_bytes) {
    return ErrorResponse(414, "uri_too_long",
                         absl::StrCat("request target longer than ", o.max_target_bytes, " bytes"));
  }
  size_t fields = 0;
  for (auto it = h.begin(); it != h.end(); ++it) ++fields;
  if (fields > o.max_headers) {
    return ErrorResponse(431, "header_too_large",
                         absl::StrCat(fields, " header fields; at most ", o.max_headers));
  }
  for (http::field f : {http::field::authorization, http::field::content_type, http::field::host,
                        http::field::content_length, http::field::transfer_encoding}) {
    if (h.count(f) > 1) {
      return ErrorResponse(400, "bad_request",
                           absl::StrCat("header ", std::string(http::to_string(f)), " given twice"),
                           absl::AsciiStrToLower(std::string(http::to_string(f))));
    }
  }
  auto te = h.find(http::field::transfer_encoding);
  if (te != h.end()) {
    if (!absl::EqualsIgnoreCase(
            absl::StripAsciiWhitespace(absl::string_view(te->value().data(), te->value().size())),
            "chunked")) {
      return ErrorResponse(501, "not_implemented", "only Transfer-Encoding: chunked is supported",
                           "transfer-encoding");
    }
    if (h.count(http::field::content_length) > 0) {
      return ErrorResponse(400, "bad_request",
                           "Content-Length and Transfer-Encoding cannot both be given",
                           "content-length");
    }
  }
  return std::nullopt;
}

// The router's view of a parsed request; InvalidArgument for a target the
// router cannot take (not a path, malformed escapes, control characters,
// a query parameter given twice).
absl::StatusOr<Request> ToRequest(http::request<http::string_body>&& msg, std::string peer) {
  Request out;
  out.method = std::string(msg.method_string());
  const absl::string_view target(msg.target().data(), msg.target().size());
  if (target.empty() || target.front() != '/') {
    return absl::InvalidArgumentError("the request target must be a path starting with '/'");
  }
  out.target = std::string(target);
  const size_t q = target.find('?');
  if (!PercentDecode(target.substr(0, q), false, &out.path)) {
    return absl::InvalidArgumentError("malformed percent-encoding in the path");
  }
  if (base::HasControlCharacters(out.path))
    return absl::InvalidArgumentError("control characters in the path");
  if (base::SanitizeUtf8(out.path) != out.path)
    return absl::InvalidArgumentError("the path is not valid UTF-8");
  if (q != absl::string_view::npos) {
    for (absl::string_view kv : absl::StrSplit(target.substr(q + 1), '&', absl::SkipEmpty())) {
      const size_t eq = kv.find('=');
      std::string k, v;
      if (!PercentDecode(kv.substr(0, eq), true, &k) ||
          (eq != absl::string_view::npos && !PercentDecode(kv.substr(eq + 1), true, &v))) {
        return absl::InvalidArgumentError("malformed percent-encoding in the query");
      }
      if (base::HasControlCharacters(k) || base::HasControlCharacters(v))
        return absl::InvalidArgumentError("control characters in the query");
      if (base::SanitizeUtf8(k) != k || base::SanitizeUtf8(v) != v)
        return absl::InvalidArgumentError("the query is not valid UTF-8");
      if (!out.query.emplace(k, std::move(v)).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("query parameter '", base::CleanForMessage(k, 64), "' given twice"));
      }
    }
  }
  for (const auto& f : msg) {
    std::string name =
        absl::AsciiStrToLower(absl::string_view(f.name_string().data(), f.name_string().size()));
    std::string value(f.value().data(), f.value().size());
    auto [it, fresh] = out.headers.emplace(std::move(name), value);
    if (!fresh) absl::StrAppend(&it->second, ", ", value);
  }
  out.body = std::move(msg.body());
  out.peer = std::move(peer);
  return out;
}

http::response<http::string_body> ToBeast(const Response& r, unsigned version, bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::server, "portolan");
  res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.set(name, value);
  res.body() = r.body;
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

}  // namespace portolan::rest::http_codec
