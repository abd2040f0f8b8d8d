#pragma once

// TLS for the agent RPC (mutual authentication) and the REST listener.
//
// Identity model: an agent certificate names the agent in its subject's
// commonName and the site in its organizationalUnitName, and is signed by the
// CA the scheduler is configured with. The scheduler accepts a Register only
// when both match the certificate, so a stolen or misissued hongkong-1
// certificate cannot register as lingang-idc-1. deploy/dev-ca.sh issues such
// certificates for development.
//
// Thread-safety: contexts are immutable after creation and may be shared by
// any number of streams. A Stream is used from one strand (the io thread).
#include <memory>
#include <string>
#include <utility>  // Boost 1.74 asio/awaitable.hpp needs std::exchange under C++20

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace portolan::tls {

// PEM files. `ca` verifies the peer; `cert` (a chain, leaf first) and `key`
// are this side's identity.
struct Files {
  std::string cert;
  std::string key;
  std::string ca;
};

// Agent RPC server: presents cert/key, requires a client certificate signed
// by `ca` (TLS 1.2 or newer). Errors name the file and OpenSSL's reason.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeServerContext(const Files& files);
// Agent side: presents cert/key, verifies the scheduler against `ca`.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeClientContext(const Files& files);
// REST (HTTPS) server context: cert/key only, no client certificates.
absl::Status ConfigureHttpsServer(boost::asio::ssl::context& ctx, const Files& files);

// What a verified peer certificate says.
struct Identity {
  std::string common_name;  // the agent id
  std::string unit;         // organizationalUnitName: the site
  std::string subject;      // one-line subject, for logs
  std::string not_after;    // expiry, for logs
};
// The verified peer certificate of an established connection.
absl::StatusOr<Identity> PeerIdentity(SSL* ssl);
// OK when `identity` may register as `agent_id` at `site`; otherwise
// PermissionDenied saying what the certificate allows.
absl::Status CheckAgentIdentity(const Identity& identity, absl::string_view agent_id,
                                absl::string_view site);

// A TCP connection that is TLS when built with a context and plain otherwise,
// so the RPC code has one path for both. Handshake on a plain stream
// completes at once.
class Stream {
 public:
  using tcp = boost::asio::ip::tcp;
  using ssl_stream = boost::asio::ssl::stream<tcp::socket>;

  Stream(tcp::socket socket, boost::asio::ssl::context* ctx);

  bool tls() const { return tls_ != nullptr; }
  tcp::socket& socket() { return tls_ ? tls_->next_layer() : plain_; }
  auto get_executor() { return socket().get_executor(); }
  SSL* native() { return tls_ ? tls_->native_handle() : nullptr; }
  // Client side: the name or address the server certificate must carry.
  void ExpectServerName(const std::string& host);
  // Why certificate verification failed in the last handshake ("" if it did
  // not), e.g. "certificate has expired (CN=hk-1,OU=hongkong-1)".
  const std::string& verify_error() const { return *verify_error_; }

  template <class Handler>
  void AsyncHandshake(boost::asio::ssl::stream_base::handshake_type type, Handler&& handler) {
    if (!tls_) {
      boost::asio::post(get_executor(), [h = std::forward<Handler>(handler)]() mutable {
        h(boost::system::error_code());
      });
      return;
    }
    tls_->async_handshake(type, std::forward<Handler>(handler));
  }
  template <class Buffer, class Handler>
  void AsyncReadSome(const Buffer& buffer, Handler&& handler) {
    if (tls_) {
      tls_->async_read_some(buffer, std::forward<Handler>(handler));
    } else {
      plain_.async_read_some(buffer, std::forward<Handler>(handler));
    }
  }
  template <class Buffer, class Handler>
  void AsyncWrite(const Buffer& buffer, Handler&& handler) {
    if (tls_) {
      boost::asio::async_write(*tls_, buffer, std::forward<Handler>(handler));
    } else {
      boost::asio::async_write(plain_, buffer, std::forward<Handler>(handler));
    }
  }
  // Closes the TCP connection (no close_notify: both sides treat a truncated
  // stream as the peer closing).
  void Close();

 private:
  tcp::socket plain_;
  std::unique_ptr<ssl_stream> tls_;
  std::shared_ptr<std::string> verify_error_ = std::make_shared<std::string>();
};

// True for the errors a peer closing the connection produces (EOF, TLS
// truncation).
bool IsPeerClosed(const boost::system::error_code& ec);
// A readable message for a handshake or I/O error, using OpenSSL's reason.
std::string Describe(const boost::system::error_code& ec);

}  // namespace portolan::tls
