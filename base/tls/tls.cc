// SPDX-License-Identifier: Apache-2.0
#include "portolan/tls/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <fstream>
#include <new>

#include "absl/strings/str_cat.h"

namespace portolan::tls {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

namespace {

std::string OpenSslReason(const boost::system::error_code& ec) {
  if (ec.category() == asio::error::get_ssl_category()) {
    const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
    if (reason != nullptr) return reason;
  }
  return ec.message();
}

absl::Status Readable(const std::string& path, const char* what) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " file is not set"));
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(what, " file ", path, " cannot be read"));
  return absl::OkStatus();
}

std::string Bio(const std::function<void(BIO*)>& print) {
  BIO* bio = BIO_new(BIO_s_mem());
  print(bio);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, n > 0 ? static_cast<size_t>(n) : 0);
  BIO_free(bio);
  return out;
}

std::string SubjectLine(X509* cert) {
  if (cert == nullptr) return "no certificate";
  return Bio([cert](BIO* b) {
    X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  });
}

std::string NameEntry(X509* cert, int nid) {
  X509_NAME* name = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return "";
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
  if (len < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

// Loads this side's certificate chain and key, and checks they belong
// together and the certificate is still valid.
absl::Status LoadIdentity(ssl::context& ctx, const Files& files) {
  if (absl::Status st = Readable(files.cert, "certificate"); !st.ok()) return st;
  if (absl::Status st = Readable(files.key, "private key"); !st.ok()) return st;
  boost::system::error_code ec;
  ctx.use_certificate_chain_file(files.cert, ec);
  if (ec)
    return absl::InvalidArgumentError(
        absl::StrCat("certificate ", files.cert, ": ", OpenSslReason(ec)));
  ctx.use_private_key_file(files.key, ssl::context::pem, ec);
  if (ec && OpenSslReason(ec) == "key values mismatch")
    return absl::InvalidArgumentError(
        absl::StrCat("private key ", files.key, " does not match certificate ", files.cert));
  if (ec)
    return absl::InvalidArgumentError(
        absl::StrCat("private key ", files.key, ": ", OpenSslReason(ec)));
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    return absl::InvalidArgumentError(
        absl::StrCat("private key ", files.key, " does not match certificate ", files.cert));
  X509* cert = SSL_CTX_get0_certificate(ctx.native_handle());
  if (cert != nullptr && X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("certificate ", files.cert, " (", SubjectLine(cert), ") expired on ",
                     Bio([cert](BIO* b) { ASN1_TIME_print(b, X509_get0_notAfter(cert)); })));
  return absl::OkStatus();
}

absl::Status LoadCa(ssl::context& ctx, const Files& files) {
  if (absl::Status st = Readable(files.ca, "CA"); !st.ok()) return st;
  boost::system::error_code ec;
  ctx.load_verify_file(files.ca, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("CA ", files.ca, ": ", OpenSslReason(ec)));
  return absl::OkStatus();
}

void Harden(ssl::context& ctx) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
}

}  // namespace

absl::StatusOr<std::shared_ptr<ssl::context>> MakeServerContext(const Files& files) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  Harden(*ctx);
  if (absl::Status st = LoadIdentity(*ctx, files); !st.ok()) return st;
  if (absl::Status st = LoadCa(*ctx, files); !st.ok()) return st;
  // Tell clients which CA to present a certificate from.
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca.c_str()))
    SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  // A certificate whose extended key usage excludes clientAuth (a server
  // certificate) cannot be used to log in as an agent.
  SSL_CTX_set_purpose(ctx->native_handle(), X509_PURPOSE_SSL_CLIENT);
  return ctx;
}

absl::StatusOr<std::shared_ptr<ssl::context>> MakeClientContext(const Files& files) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  Harden(*ctx);
  if (absl::Status st = LoadIdentity(*ctx, files); !st.ok()) return st;
  if (absl::Status st = LoadCa(*ctx, files); !st.ok()) return st;
  ctx->set_verify_mode(ssl::verify_peer);
  SSL_CTX_set_purpose(ctx->native_handle(), X509_PURPOSE_SSL_SERVER);
  return ctx;
}

absl::Status ConfigureHttpsServer(ssl::context& ctx, const Files& files) {
  Harden(ctx);
  return LoadIdentity(ctx, files);
}

absl::StatusOr<Identity> PeerIdentity(SSL* ssl) {
  if (ssl == nullptr) return absl::FailedPreconditionError("not a TLS connection");
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return absl::UnauthenticatedError("the peer presented no certificate");
  if (SSL_get_verify_result(ssl) != X509_V_OK) {
    X509_free(cert);
    return absl::UnauthenticatedError("the peer certificate did not verify");
  }
  Identity id;
  id.common_name = NameEntry(cert, NID_commonName);
  id.unit = NameEntry(cert, NID_organizationalUnitName);
  id.subject = SubjectLine(cert);
  id.not_after = Bio([cert](BIO* b) { ASN1_TIME_print(b, X509_get0_notAfter(cert)); });
  X509_free(cert);
  return id;
}

absl::Status CheckAgentIdentity(const Identity& identity, absl::string_view agent_id,
                                absl::string_view site) {
  if (identity.common_name == agent_id && identity.unit == site) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "certificate ", identity.subject, " allows agent '", identity.common_name, "' at site '",
      identity.unit, "' only, not agent '", agent_id, "' at site '", site, "'"));
}

namespace {

// A BIO over the socket's file descriptor that sends with MSG_NOSIGNAL (a
// peer that went away must not raise SIGPIPE in whoever links this) and
// reports EAGAIN as "retry", which OpenSSL turns into WANT_READ/WANT_WRITE.
int FdOf(BIO* b) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))); }

int BioWrite(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  ssize_t n = ::send(FdOf(b), data, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
    return -1;
  }
  return static_cast<int>(n);
}

int BioRead(BIO* b, char* data, int len) {
  BIO_clear_retry_flags(b);
  ssize_t n = ::recv(FdOf(b), data, static_cast<size_t>(len), 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_read(b);
    return -1;
  }
  return static_cast<int>(n);  // 0: the peer closed
}

long BioCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int BioPuts(BIO* b, const char* s) { return BioWrite(b, s, static_cast<int>(strlen(s))); }

BIO_METHOD* SocketMethod() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "portolan socket");
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_puts(m, BioPuts);
    BIO_meth_set_ctrl(m, BioCtrl);
    return m;
  }();
  return method;
}

// Where a stream keeps itself on its SSL object, for the verify callback.
int StreamIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

Stream::Stream(tcp::socket socket, ssl::context* ctx) : socket_(std::move(socket)) {
  // Asio's async operations work on it either way; ReadSome and OpenSSL
  // need it.
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  if (ctx == nullptr) return;
  ssl_ = SSL_new(ctx->native_handle());
  BIO* bio = ssl_ != nullptr ? BIO_new(SocketMethod()) : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl_);
    throw std::bad_alloc();
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(socket_.native_handle())));
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);
  // Record buffers are allocated while a record is in flight and freed after.
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
  SSL_set_ex_data(ssl_, StreamIndex(), this);
  // The context's verify mode, plus a callback that keeps the first reason a
  // peer certificate failed, for the log.
  SSL_set_verify(ssl_, SSL_CTX_get_verify_mode(ctx->native_handle()),
                 [](int preverified, X509_STORE_CTX* store) {
                   SSL* ssl = static_cast<SSL*>(
                       X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
                   auto* self = static_cast<Stream*>(SSL_get_ex_data(ssl, StreamIndex()));
                   if (!preverified && self != nullptr && self->verify_error_.empty()) {
                     self->verify_error_ = absl::StrCat(
                         X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)), " (",
                         SubjectLine(X509_STORE_CTX_get_current_cert(store)), ")");
                   }
                   return preverified;
                 });
}

Stream::~Stream() { SSL_free(ssl_); }

void Stream::StartHandshake(ssl::stream_base::handshake_type type) {
  verify_error_.clear();
  if (type == ssl::stream_base::client) {
    SSL_set_connect_state(ssl_);
  } else {
    SSL_set_accept_state(ssl_);
  }
}

int Stream::Handshake() {
  ERR_clear_error();
  errno = 0;
  return SSL_do_handshake(ssl_);
}

int Stream::Read(asio::mutable_buffer buffer, size_t* n) {
  ERR_clear_error();
  errno = 0;
  return SSL_read_ex(ssl_, buffer.data(), buffer.size(), n);
}

int Stream::Write(asio::const_buffer buffer, size_t* n) {
  // A retry after WANT_* passes the same buffer, as OpenSSL requires.
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_write_ex(ssl_, buffer.data(), buffer.size(), n);
  const int saved_errno = errno;
  if (rc == 1 || SSL_get_error(ssl_, rc) != SSL_ERROR_SYSCALL ||
      (saved_errno != EPIPE && saved_errno != ECONNRESET))
    return rc;
  // The peer closed the connection. It may have said why first: a TLS 1.3
  // server refuses a client certificate only after the client's side of the
  // handshake is done, so the alert waits unread while the first write fails.
  // Report the alert, not the broken pipe.
  std::array<char, 512> sink;
  size_t ignored = 0;
  ERR_clear_error();
  const int r = SSL_read_ex(ssl_, sink.data(), sink.size(), &ignored);
  const unsigned long alert =
      r != 1 && SSL_get_error(ssl_, r) == SSL_ERROR_SSL ? ERR_get_error() : 0;
  failure_ = alert != 0 ? boost::system::error_code(static_cast<int>(alert),
                                                    asio::error::get_ssl_category())
                        : boost::system::error_code(saved_errno, boost::system::system_category());
  ERR_clear_error();
  return 0;
}

Stream::Step Stream::Interpret(int rc, boost::system::error_code* ec) {
  if (failure_) {
    *ec = std::exchange(failure_, {});
    return Step::kFailed;
  }
  if (rc == 1) return Step::kDone;
  const int saved_errno = errno;
  switch (SSL_get_error(ssl_, rc)) {
    case SSL_ERROR_WANT_READ:
      want_write_ = false;
      return Step::kWait;
    case SSL_ERROR_WANT_WRITE:
      want_write_ = true;
      return Step::kWait;
    case SSL_ERROR_ZERO_RETURN:  // close_notify
      *ec = asio::error::eof;
      break;
    case SSL_ERROR_SYSCALL: {
      const unsigned long e = ERR_get_error();
      if (e != 0) {
        *ec = boost::system::error_code(static_cast<int>(e), asio::error::get_ssl_category());
      } else if (saved_errno != 0) {
        *ec = boost::system::error_code(saved_errno, boost::system::system_category());
      } else {
        *ec = ssl::error::stream_truncated;
      }
      break;
    }
    default: {
      const unsigned long e = ERR_get_error();
      if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        *ec = ssl::error::stream_truncated;
      } else if (e != 0) {
        *ec = boost::system::error_code(static_cast<int>(e), asio::error::get_ssl_category());
      } else {
        *ec = asio::error::connection_aborted;
      }
    }
  }
  ERR_clear_error();
  return Step::kFailed;
}

size_t Stream::ReadSome(asio::mutable_buffer buffer, boost::system::error_code& ec) {
  ec = {};
  if (!tls()) return socket_.read_some(buffer, ec);
  size_t n = 0;
  switch (Interpret(Read(buffer, &n), &ec)) {
    case Step::kDone:
      read_wants_write_ = false;
      return n;
    case Step::kWait:
      read_wants_write_ = want_write_;
      ec = asio::error::would_block;
      return 0;
    case Step::kFailed:
      break;
  }
  return 0;
}

void Stream::ExpectServerName(const std::string& host) {
  if (!tls()) return;
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (!ec) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str());
  } else {
    SSL_set1_host(ssl_, host.c_str());
    SSL_set_tlsext_host_name(ssl_, host.c_str());
  }
}

void Stream::Close() {
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

bool IsPeerClosed(const boost::system::error_code& ec) {
  return ec == asio::error::eof || ec == ssl::error::stream_truncated ||
         ec == asio::error::connection_reset;
}

std::string Describe(const boost::system::error_code& ec) {
  if (ec.category() == asio::error::get_ssl_category())
    return absl::StrCat("TLS error: ", OpenSslReason(ec));
  if (ec == ssl::error::stream_truncated) return "connection closed during TLS";
  return ec.message();
}

}  // namespace portolan::tls
