// SPDX-License-Identifier: Apache-2.0
// Hints for the errors a newcomer meets first: the wrong scheme for the
// server (plain HTTP to an HTTPS listener or the reverse), a certificate the
// CLI cannot verify, no token. Each names the flag and the variable to set.
#include <openssl/ssl.h>

#include <utility>  // Boost 1.74 asio/awaitable.hpp needs std::exchange under C++20

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/cli/cli.h"
#include "portolan/base/strings.h"

namespace portolan::cli {
namespace {

// host:port of an http(s):// URL ("" when it has none).
std::string Authority(const std::string& url) {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  const size_t end = url.find('/', start);
  return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// Whether host:port completes a TLS handshake (certificate not checked): the
// probe behind "this server speaks HTTPS". Three seconds at most in all.
bool SpeaksTls(const std::string& authority) {
  namespace asio = boost::asio;
  try {
    auto hp = base::ParseHostPort(authority);
    if (!hp.ok()) return false;
    asio::io_context io;
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_verify_mode(asio::ssl::verify_none);
    asio::ssl::stream<asio::ip::tcp::socket> stream(io, ctx);
    asio::ip::tcp::resolver resolver(io);
    boost::system::error_code ec;
    const auto endpoints = resolver.resolve(hp->host, std::to_string(hp->port), ec);
    if (ec) return false;
    bool tls = false;
    asio::async_connect(stream.lowest_layer(), endpoints,
                        [&](const boost::system::error_code& connected, const auto&) {
                          if (connected) return;
                          stream.async_handshake(
                              asio::ssl::stream_base::client,
                              [&](const boost::system::error_code& shaken) { tls = !shaken; });
                        });
    io.run_for(std::chrono::seconds(3));
    return tls;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

std::string ConnectionHint(const ConnectionSettings& s, const absl::Status& st) {
  const std::string message(st.message());
  if (st.code() == absl::StatusCode::kUnauthenticated && !s.has_token) {
    return "no token was sent: set PORTOLAN_TOKEN (or token: in the config file, "
           "~/.config/portolan/cli.yaml or $PORTOLAN_CONFIG)";
  }
  if (st.code() != absl::StatusCode::kUnavailable) return "";
  const std::string authority = Authority(s.server);
  // No TCP connection at all (refused, unreachable): nothing to probe.
  if (absl::StrContains(message, "Failed to connect") ||
      absl::StrContains(message, "Connection refused"))
    return "";
  if (absl::StartsWith(s.server, "http://") && SpeaksTls(authority)) {
    return absl::StrCat(authority, " speaks HTTPS, not plain HTTP: use --server https://",
                        authority,
                        " (or PORTOLAN_SERVER), with --ca FILE (or PORTOLAN_CA) "
                        "naming the CA that signed its certificate");
  }
  // cpprestsdk says only "Error in SSL handshake" (or the OpenSSL reason):
  // a listener that completes a handshake without verification means ours
  // failed on the certificate; one that does not speaks plain HTTP.
  const bool handshake = absl::StrContains(message, "SSL handshake") ||
                         absl::StrContains(message, "certificate verify failed") ||
                         absl::StrContains(message, "wrong version number");
  if (absl::StartsWith(s.server, "https://") && handshake) {
    if (!SpeaksTls(authority)) {
      return absl::StrCat(authority, " speaks plain HTTP, not HTTPS: use --server http://",
                          authority, " (or PORTOLAN_SERVER)");
    }
    return s.has_ca ? "the scheduler's certificate was not signed by the CA given (--ca / "
                      "PORTOLAN_CA), or does not name the host in --server"
                    : "the scheduler's certificate could not be verified with the system's "
                      "CAs: set --ca FILE (or PORTOLAN_CA) to the CA that signed it";
  }
  return "";
}

}  // namespace portolan::cli
