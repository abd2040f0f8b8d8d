// SPDX-License-Identifier: Apache-2.0
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
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <type_traits>
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
//
// TLS runs OpenSSL directly on the socket (non-blocking, through a BIO that
// sends with MSG_NOSIGNAL), waiting with the socket's async_wait in the
// direction OpenSSL asks for, with SSL_MODE_RELEASE_BUFFERS: an idle
// connection holds no record buffers. asio::ssl::stream keeps four 17 KiB
// buffers per connection (its own two and its BIO pair's), which made a
// mutual-TLS agent cost the scheduler about 95 KiB instead of 6.5
// (tests/bench/sim_scale.sh N build tls).
//
// Handlers are never called from inside the call that starts the operation.
// At most one read (AsyncReadSome or AsyncWaitRead) and one write may be
// outstanding, as with asio's streams.
class Stream {
 public:
  using tcp = boost::asio::ip::tcp;

  Stream(tcp::socket socket, boost::asio::ssl::context* ctx);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  bool tls() const { return ssl_ != nullptr; }
  tcp::socket& socket() { return socket_; }
  auto get_executor() { return socket_.get_executor(); }
  SSL* native() { return ssl_; }
  // Client side: the name or address the server certificate must carry.
  void ExpectServerName(const std::string& host);
  // Why certificate verification failed in the last handshake ("" if it did
  // not), e.g. "certificate has expired (CN=hk-1,OU=hongkong-1)".
  const std::string& verify_error() const { return verify_error_; }

  template <class Handler>
  void AsyncHandshake(boost::asio::ssl::stream_base::handshake_type type, Handler&& handler) {
    if (!tls()) {
      boost::asio::post(get_executor(), [h = std::forward<Handler>(handler)]() mutable {
        h(boost::system::error_code());
      });
      return;
    }
    StartHandshake(type);
    Pump([this](size_t*) { return Handshake(); },
         [h = std::forward<Handler>(handler)](const boost::system::error_code& ec, size_t) mutable {
           h(ec);
         });
  }
  template <class Handler>
  void AsyncReadSome(boost::asio::mutable_buffer buffer, Handler&& handler) {
    if (!tls()) {
      socket_.async_read_some(buffer, std::forward<Handler>(handler));
      return;
    }
    Pump([this, buffer](size_t* n) { return Read(buffer, n); }, std::forward<Handler>(handler));
  }
  template <class Handler>
  void AsyncWrite(boost::asio::const_buffer buffer, Handler&& handler) {
    if (!tls()) {
      boost::asio::async_write(socket_, buffer, std::forward<Handler>(handler));
      return;
    }
    Pump([this, buffer](size_t* n) { return Write(buffer, n); }, std::forward<Handler>(handler));
  }
  // Completes when ReadSome may make progress: the socket is readable, or
  // (TLS) decrypted bytes are already waiting. With ReadSome it lets a caller
  // read into a buffer it shares between connections.
  template <class Handler>
  void AsyncWaitRead(Handler&& handler) {
    if (tls() && (SSL_pending(ssl_) > 0 || read_wants_write_)) {
      if (read_wants_write_) {
        socket_.async_wait(tcp::socket::wait_write, std::forward<Handler>(handler));
      } else {
        boost::asio::post(get_executor(), [h = std::forward<Handler>(handler)]() mutable {
          h(boost::system::error_code());
        });
      }
      return;
    }
    socket_.async_wait(tcp::socket::wait_read, std::forward<Handler>(handler));
  }
  // Reads what is available now, without blocking: would_block when nothing
  // is (a Stream makes its socket non-blocking).
  size_t ReadSome(boost::asio::mutable_buffer buffer, boost::system::error_code& ec);

  // Closes the TCP connection (no close_notify: both sides treat a truncated
  // stream as the peer closing).
  void Close();

 private:
  // Result of one non-blocking OpenSSL step.
  enum class Step { kDone, kWait, kFailed };

  // Runs `op` until it is done or fails, waiting for the socket in between;
  // then calls handler(ec, n), posted if `op` finished at once.
  template <class Op, class Handler>
  void Pump(Op op, Handler&& handler) {
    Pumper<Op, std::decay_t<Handler>>{this, std::move(op), std::forward<Handler>(handler),
                                      true}(boost::system::error_code());
  }
  template <class Op, class Handler>
  struct Pumper {
    Stream* stream;
    Op op;
    Handler handler;
    bool first;
    void operator()(const boost::system::error_code& wait_ec) {
      boost::system::error_code ec = wait_ec;
      size_t n = 0;
      if (!ec) {
        const Step step = stream->Interpret(op(&n), &ec);
        if (step == Step::kWait) {
          Stream* s = stream;
          const auto dir = s->want_write_ ? tcp::socket::wait_write : tcp::socket::wait_read;
          first = false;
          s->socket_.async_wait(dir, std::move(*this));
          return;
        }
      }
      if (first) {
        boost::asio::post(stream->get_executor(),
                          [h = std::move(handler), ec, n]() mutable { h(ec, n); });
        return;
      }
      handler(ec, n);
    }
  };

  void StartHandshake(boost::asio::ssl::stream_base::handshake_type type);
  // OpenSSL calls; each returns 1 when done, else what Interpret reads.
  int Handshake();
  int Read(boost::asio::mutable_buffer buffer, size_t* n);
  int Write(boost::asio::const_buffer buffer, size_t* n);
  // kDone for rc == 1; kWait (setting want_write_) when OpenSSL needs the
  // socket; kFailed with *ec otherwise.
  Step Interpret(int rc, boost::system::error_code* ec);

  tcp::socket socket_;
  SSL* ssl_ = nullptr;
  bool want_write_ = false;            // the last step waits for writability
  bool read_wants_write_ = false;      // the last ReadSome did
  boost::system::error_code failure_;  // set by a step that decided its own error
  std::string verify_error_;
};

// True for the errors a peer closing the connection produces (EOF, TLS
// truncation).
bool IsPeerClosed(const boost::system::error_code& ec);
// A readable message for a handshake or I/O error, using OpenSSL's reason.
std::string Describe(const boost::system::error_code& ec);

}  // namespace portolan::tls
