// SPDX-License-Identifier: Apache-2.0
#include "portolan/console/console.h"

#include "absl/strings/str_cat.h"

namespace portolan::console {
namespace {

constexpr char kCsp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

const Asset* Find(std::string_view name) {
  for (const Asset& a : Assets()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

rest::Response Serve(const Asset& asset, const rest::Request& req, const Options& options) {
  rest::Response r;
  r.headers = SecurityHeaders(options);
  r.headers.emplace_back("ETag", std::string(asset.etag));
  // The page and its files are revalidated on every load (cheap: a 304),
  // so a scheduler upgrade is seen at once.
  r.headers.emplace_back("Cache-Control", "no-cache");
  auto inm = req.headers.find("if-none-match");
  if (inm != req.headers.end() && inm->second == asset.etag) {
    r.status = 304;
    r.content_type = std::string(asset.content_type);
    return r;
  }
  r.content_type = std::string(asset.content_type);
  r.body = std::string(asset.body);
  return r;
}

// A JSON refusal that still carries the console's headers.
rest::Response Refusal(const Options& options, absl::string_view message,
                       absl::string_view field = "") {
  rest::Response r = rest::ErrorResponse(404, "not_found", message, field);
  for (auto& h : SecurityHeaders(options)) r.headers.push_back(std::move(h));
  return r;
}

rest::Response NotBuilt(const Options& options) {
  return Refusal(options,
                 "the web console is not built into this scheduler (built with "
                 "-DPORTOLAN_BUILD_CONSOLE=OFF); use the CLI or the REST API");
}

}  // namespace

std::vector<std::pair<std::string, std::string>> SecurityHeaders(const Options& options) {
  std::vector<std::pair<std::string, std::string>> h = {
      {"Content-Security-Policy", kCsp},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Cross-Origin-Opener-Policy", "same-origin"},
      {"Cross-Origin-Resource-Policy", "same-origin"},
      {"Permissions-Policy", "camera=(), microphone=(), geolocation=(), usb=(), payment=()"},
  };
  if (options.https) h.emplace_back("Strict-Transport-Security", "max-age=31536000");
  return h;
}

void RegisterConsole(rest::Server& server, const Options& options) {
  server.Route(
      "GET", "/",
      [options](const rest::Request&) {
        rest::Response r;
        r.status = 302;
        r.content_type = "text/plain; charset=utf-8";
        r.body = "the console is at /ui/\n";
        r.headers = SecurityHeaders(options);
        r.headers.emplace_back("Location", "/ui/");
        return r;
      },
      /*is_public=*/true);
  // "/ui" and "/ui/" are the same route (empty segments are skipped).
  server.Route(
      "GET", "/ui",
      [options](const rest::Request& req) {
        const Asset* index = Find("index.html");
        return index != nullptr ? Serve(*index, req, options) : NotBuilt(options);
      },
      /*is_public=*/true);
  server.Route(
      "GET", "/ui/{file}",
      [options](const rest::Request& req) {
        const std::string& name = req.params.at("file");
        const Asset* asset = Find(name);
        if (asset == nullptr) {
          if (Assets().empty()) return NotBuilt(options);
          return Refusal(options, absl::StrCat("the console has no file ", name), "file");
        }
        return Serve(*asset, req, options);
      },
      /*is_public=*/true);
}

}  // namespace portolan::console
