// SPDX-License-Identifier: Apache-2.0
// The console's routes on a rest::Server with authentication on: the page
// and its files are served without a token, from the binary, with the
// security headers and ETag revalidation; anything else of /ui/ is a 404.
#include "portolan/console/console.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "portolan/auth/auth.h"

namespace portolan::console {
namespace {

class ConsoleRoutes : public ::testing::Test {
 protected:
  ConsoleRoutes() : server_(Options()) {
    RegisterConsole(server_, {.https = true});
    // A route that needs a token, to show that the store refuses everyone.
    server_.Route("GET", "/v1/secret", [](const rest::Request&) { return rest::Json("{}"); });
  }
  static rest::ServerOptions Options() {
    rest::ServerOptions o;
    o.tokens = &tokens_;  // loaded with nothing: every token is refused
    return o;
  }
  std::string Get(const std::string& path, const std::string& extra = "") {
    return server_.ServeBytes(
        absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\n", extra, "\r\n"));
  }
  static std::string Header(const std::string& answer, const std::string& name) {
    const size_t at = answer.find("\r\n" + name + ": ");
    if (at == std::string::npos) return "";
    const size_t from = at + name.size() + 4;
    return answer.substr(from, answer.find("\r\n", from) - from);
  }
  static inline auth::TokenStore tokens_;
  rest::Server server_;
};

TEST_F(ConsoleRoutes, ThePageAndItsFilesNeedNoTokenAndCarryTheSecurityHeaders) {
  ASSERT_FALSE(Assets().empty()) << "built with PORTOLAN_BUILD_CONSOLE=OFF";
  EXPECT_TRUE(absl::StartsWith(Get("/v1/secret"), "HTTP/1.1 401"));
  for (const char* path : {"/ui", "/ui/", "/ui/app.js", "/ui/app.css", "/ui/index.html"}) {
    SCOPED_TRACE(path);
    const std::string a = Get(path);
    EXPECT_TRUE(absl::StartsWith(a, "HTTP/1.1 200")) << a.substr(0, 200);
    const std::string csp = Header(a, "Content-Security-Policy");
    EXPECT_TRUE(absl::StrContains(csp, "default-src 'none'")) << csp;
    EXPECT_TRUE(absl::StrContains(csp, "script-src 'self'")) << csp;
    EXPECT_FALSE(absl::StrContains(csp, "unsafe")) << csp;
    EXPECT_EQ(Header(a, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(Header(a, "X-Frame-Options"), "DENY");
    EXPECT_EQ(Header(a, "Referrer-Policy"), "no-referrer");
    EXPECT_EQ(Header(a, "Strict-Transport-Security"), "max-age=31536000");
    EXPECT_FALSE(Header(a, "ETag").empty());
  }
  EXPECT_TRUE(absl::StrContains(Get("/ui/"), "Content-Type: text/html; charset=utf-8"));
  EXPECT_TRUE(absl::StrContains(Get("/ui/app.js"), "Content-Type: text/javascript; charset=utf-8"));
  // The page loads only its own script and style: no inline script.
  const std::string page = Get("/ui/");
  EXPECT_TRUE(absl::StrContains(page, "<script type=\"module\" src=\"/ui/app.js\"></script>"));
  EXPECT_FALSE(absl::StrContains(page, "<script>"));
  EXPECT_FALSE(absl::StrContains(page, "style="));
}

TEST_F(ConsoleRoutes, ARevalidationWithTheSameETagIs304WithoutABody) {
  ASSERT_FALSE(Assets().empty());
  const std::string etag = Header(Get("/ui/app.js"), "ETag");
  ASSERT_FALSE(etag.empty());
  const std::string again = Get("/ui/app.js", "If-None-Match: " + etag + "\r\n");
  EXPECT_TRUE(absl::StartsWith(again, "HTTP/1.1 304")) << again.substr(0, 200);
  EXPECT_TRUE(absl::EndsWith(again, "\r\n\r\n")) << "no body";
  EXPECT_TRUE(absl::StartsWith(Get("/ui/app.js", "If-None-Match: \"other\"\r\n"), "HTTP/1.1 200"));
}

TEST_F(ConsoleRoutes, UnknownFilesAre404AndTheRootRedirects) {
  const std::string missing = Get("/ui/secrets.txt");
  EXPECT_TRUE(absl::StartsWith(missing, "HTTP/1.1 404")) << missing;
  EXPECT_TRUE(absl::StrContains(missing, "\"field\":\"file\""));
  EXPECT_FALSE(Header(missing, "Content-Security-Policy").empty());
  // Not a file name: the router refuses it before the console sees it.
  EXPECT_TRUE(absl::StartsWith(Get("/ui/..%2Fetc%2Fpasswd"), "HTTP/1.1 4"));
  EXPECT_TRUE(absl::StartsWith(Get("/ui/a/b"), "HTTP/1.1 404"));
  const std::string root = Get("/");
  EXPECT_TRUE(absl::StartsWith(root, "HTTP/1.1 302")) << root;
  EXPECT_EQ(Header(root, "Location"), "/ui/");
}

TEST(ConsoleAssets, EveryFileHasAMediaTypeAndAStrongETag) {
  for (const Asset& a : Assets()) {
    SCOPED_TRACE(std::string(a.name));
    EXPECT_FALSE(a.body.empty());
    EXPECT_FALSE(a.content_type.empty());
    EXPECT_EQ(a.etag.size(), 18u) << a.etag;  // '"' + 16 hex digits + '"'
    EXPECT_EQ(a.etag.front(), '"');
  }
}

}  // namespace
}  // namespace portolan::console
