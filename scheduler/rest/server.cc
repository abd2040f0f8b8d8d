// SPDX-License-Identifier: Apache-2.0
// The HTTP/1.1 transport of rest::Server, on Boost.Beast over Asio (and
// OpenSSL for HTTPS).
//
// Threads: `io_threads` run the io_context (accept, TLS, parsing, writing);
// each connection lives on its own strand. A parsed request goes to a pool of
// `handler_threads`, and the answer comes back to the connection's strand, so
// a slow handler (the core's lock, a store fsync) never holds up the network.
//
// A connection's life: (TLS handshake, handshake_timeout_s) -> wait for the
// first byte of a request (idle_timeout_s) -> header and body
// (request_timeout_s from that byte) -> handler -> answer (write_timeout_s)
// -> next request or close. Any timeout closes the connection. A protocol
// error answers with a JSON error and closes; a connection over the caps is
// closed at accept.
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "portolan/base/log.h"
#include "portolan/rest/server.h"
#include "portolan/tls/tls.h"
#include "scheduler/rest/http_codec.h"

namespace portolan::rest {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Parser = http::request_parser<http::string_body>;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

using http_codec::BadChunk;
using http_codec::CheckHeader;
using http_codec::ChunkLineMayBeValid;
using http_codec::IsParserError;
using http_codec::ParseErrorResponse;
using http_codec::ToBeast;
using http_codec::ToRequest;

namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kFirstRead = 1024;
constexpr size_t kMaxDrainBytes = 16u << 20;
constexpr size_t kDrainChunk = 16 * 1024;
constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

struct Server::Impl {
  explicit Impl(Server* s) : server(s) {}

  // True (and counted) when a connection from `peer` may open.
  bool Admit(const std::string& peer) {
    std::lock_guard<std::mutex> lock(mu);
    const ServerOptions& o = server->options_;
    size_t& mine = per_client[peer];
    if (open.load() >= o.max_connections || mine >= o.max_connections_per_client) {
      if (mine == 0) per_client.erase(peer);
      refused.fetch_add(1);
      return false;
    }
    ++mine;
    peak = std::max(peak, open.fetch_add(1) + 1);
    return true;
  }
  void Release(const std::string& peer) {
    bool trim = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = per_client.find(peer);
      if (it != per_client.end() && --it->second == 0) per_client.erase(it);
      const size_t now_open = open.fetch_sub(1) - 1;
      // After a burst (a flood, a load test) the freed connection buffers
      // stay in malloc's arenas; hand them back once most have closed.
      if (peak >= 256 && now_open <= peak / 4) {
        peak = now_open;
        trim = true;
      }
    }
    if (trim) malloc_trim(0);
  }
  void Accept();
  // Requests handed to a handler and not answered yet: Stop waits for them
  // (an async route answers from another thread, onto the io_context).
  void Began() {
    std::lock_guard<std::mutex> lock(handling_mu);
    ++handling;
  }
  void Ended() {
    std::lock_guard<std::mutex> lock(handling_mu);
    if (--handling == 0) handling_cv.notify_all();
  }
  void AwaitHandlers() {
    std::unique_lock<std::mutex> lock(handling_mu);
    while (!handling_cv.wait_for(lock, std::chrono::seconds(5), [this] { return handling == 0; }))
      spdlog::warn("REST: stopping; still waiting for {} request(s) to be answered", handling);
  }

  Server* server;
  std::mutex handling_mu;
  std::condition_variable handling_cv;
  size_t handling = 0;  // guarded by handling_mu
  std::mutex mu;
  std::map<std::string, size_t> per_client;  // guarded by mu
  std::atomic<size_t> open{0};
  std::atomic<uint64_t> refused{0};
  std::chrono::steady_clock::time_point last_refusal_log;  // guarded by mu
  // Set before the io_context stops: streams' wakes no longer post to it.
  std::mutex post_mu;
  bool stopping = false;  // guarded by post_mu
  size_t peak = 0;        // most connections open since the last trim; guarded by mu
  std::shared_ptr<net::ssl::context> ssl;  // HTTPS only
  // Destroyed in this order by Stop(): the acceptor, then the io_context
  // (and with it every connection), then the handler pool.
  std::unique_ptr<net::thread_pool> pool;
  std::unique_ptr<net::io_context> io;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<net::steady_timer> retry;  // accept after EMFILE and the like
  std::vector<std::thread> threads;
};

// One connection. Owned by the operations pending on it (shared_from_this);
// it ends when the last of them completes.
template <class Stream>
class Server::Session : public std::enable_shared_from_this<Server::Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  Session(Impl* impl, Stream stream, std::string peer)
      : impl_(impl),
        o_(impl->server->options_),
        stream_(std::move(stream)),
        peer_(std::move(peer)),
        buffer_(o_.max_header_bytes + kReadChunk) {}
  ~Session() { impl_->Release(peer_); }

  void Start() {
    if constexpr (kTls) {
      Lowest().expires_after(std::chrono::seconds(o_.handshake_timeout_s));
      stream_.async_handshake(
          net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
            if (ec) {
              spdlog::debug("REST {}: TLS handshake: {}", self->peer_, ec.message());
              return self->Close();
            }
            self->WaitRequest();
          });
    } else {
      WaitRequest();
    }
  }

 private:
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }
  auto Self() { return this->shared_from_this(); }

  // Waits (idle_timeout_s) for the first byte of the next request.
  void WaitRequest() {
    if (buffer_.size() > 0) return ReadHeader();
    Lowest().expires_after(std::chrono::seconds(o_.idle_timeout_s));
    // A small first read: idle connections hold little memory.
    stream_.async_read_some(buffer_.prepare(kFirstRead),
                            [self = Self()](beast::error_code ec, size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->Close();
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(o_.max_header_bytes));
    parser_->body_limit(o_.max_body_bytes);
    Lowest().expires_after(std::chrono::seconds(o_.request_timeout_s));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = Self()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    const auto& h = parser_->get();
    if (auto refusal = CheckHeader(h, o_)) return Reply(std::move(*refusal), 11, true);
    auto expect = h.find(http::field::expect);
    if (expect != h.end() && !parser_->is_done() &&
        absl::EqualsIgnoreCase(absl::string_view(expect->value().data(), expect->value().size()),
                               "100-continue")) {
      net::async_write(stream_, net::buffer(kContinue, sizeof kContinue - 1),
                       [self = Self()](beast::error_code ec, size_t) {
                         if (ec) return self->Close();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (parser_->is_done()) return OnRequest();
    if (parser_->chunked()) return ReadChunked();
    http::async_read(stream_, buffer_, *parser_, [self = Self()](beast::error_code ec, size_t) {
      if (ec) return self->OnReadError(ec);
      self->OnRequest();
    });
  }

  // A chunked body, fed to the parser by hand so each chunk-size line can be
  // checked as it arrives (see ChunkLineMayBeValid).
  void ReadChunked() {
    while (buffer_.size() > 0) {
      beast::error_code ec;
      const size_t n = parser_->put(buffer_.data(), ec);
      buffer_.consume(n);
      if (ec == http::error::need_more) break;
      if (ec) return OnReadError(ec);
      if (parser_->is_done()) return OnRequest();
      if (n == 0) break;
    }
    const auto pending = buffer_.data();
    if (!ChunkLineMayBeValid(
            absl::string_view(static_cast<const char*>(pending.data()), pending.size())) ||
        buffer_.size() > o_.max_header_bytes) {
      return Reply(BadChunk(), 11, true);
    }
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = Self()](beast::error_code ec, size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->OnReadError(ec);
                              self->ReadChunked();
                            });
  }

  void OnReadError(const beast::error_code& ec) {
    if (IsParserError(ec)) return Reply(ParseErrorResponse(ec, o_), 11, true);
    // Timeout (the socket is already closed), the peer gone, or EOF mid-request.
    if (ec == beast::error::timeout) {
      spdlog::debug("REST {}: request not complete within {} s; closed", peer_,
                    o_.request_timeout_s);
    }
    Close();
  }

  void OnRequest() {
    http::request<http::string_body> msg = parser_->release();
    parser_.reset();
    const unsigned version = msg.version();
    const bool keep_alive = msg.keep_alive();
    absl::StatusOr<Request> request = ToRequest(std::move(msg), peer_);
    if (!request.ok()) {
      return Reply(ErrorResponse(400, "bad_request", request.status().message()), version, true);
    }
    // The handler's time is not the client's: no timeout while it runs.
    Lowest().expires_never();
    impl_->Began();
    net::post(*impl_->pool,
              [self = Self(), r = std::move(*request), version, keep_alive]() mutable {
                // The answer may come from another thread (an async route): it goes
                // back to the connection's strand either way. Whoever holds the reply
                // function may keep it after calling it, even past Stop, so the
                // connection is not kept by it once answered (Dispatch calls it once).
                Impl* impl = self->impl_;
                auto connection = std::make_shared<std::shared_ptr<Session>>(self);
                impl->server->Dispatch(r, [connection, impl, version, keep_alive](Response resp) {
                  {
                    std::shared_ptr<Session> s = std::move(*connection);
                    net::post(s->stream_.get_executor(),
                              [s, resp = std::move(resp), version, keep_alive]() mutable {
                                s->Reply(std::move(resp), version, !keep_alive);
                              });
                  }
                  impl->Ended();
                });
              });
  }

  void Reply(Response resp, unsigned version, bool close) {
    if (o_.on_response) o_.on_response(resp.status);
    if (resp.stream) return StartStream(std::move(resp), version);
    response_.emplace(ToBeast(resp, version, !close));
    Lowest().expires_after(std::chrono::seconds(o_.write_timeout_s));
    http::async_write(stream_, *response_, [self = Self(), close](beast::error_code ec, size_t) {
      self->response_.reset();
      if (ec) return self->Close();
      if (close) return self->Linger();
      self->WaitRequest();
    });
  }

  // Closes after an answer that ends the connection, giving the client time
  // to read it: closing with unread request bytes (a 413 while the client
  // still sends its body) makes the kernel reset the connection, and the
  // client could lose the answer. So: FIN after the answer (for TLS without
  // close_notify; the answer is complete by its Content-Length), then read
  // and discard until the client closes, for at most 5 s and 16 MiB.
  void Linger() {
    beast::error_code ec;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    Lowest().expires_after(std::chrono::seconds(5));
    drain_ = std::make_unique<char[]>(kDrainChunk);
    Drain();
  }
  void Drain() {
    stream_.async_read_some(net::buffer(drain_.get(), kDrainChunk),
                            [self = Self()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxDrainBytes) return self->Close();
                              self->Drain();
                            });
  }

  void Close() {
    beast::error_code ec;
    Lowest().socket().close(ec);
  }

  // A streamed answer (ResponseStream): the head, then a chunk per Pull
  // until the client goes, a write times out or the server stops. A read
  // stays pending meanwhile, so a client that closes is noticed at once.
  void StartStream(Response resp, unsigned version) {
    if (version < 11) {  // chunked answers need HTTP/1.1
      return Reply(ErrorResponse(505, "http_version_not_supported",
                                 "this answer is a stream; it needs HTTP/1.1"),
                   version, true);
    }
    stream_body_ = std::move(resp.stream);
    auto head = std::make_shared<http::response<http::empty_body>>(
        static_cast<http::status>(resp.status), version);
    head->set(http::field::server, "portolan");
    head->set(http::field::content_type, resp.content_type);
    for (const auto& [name, value] : resp.headers) head->set(name, value);
    head->chunked(true);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*head);
    Lowest().expires_after(std::chrono::seconds(o_.write_timeout_s));
    http::async_write_header(stream_, *sr, [self = Self(), head, sr](beast::error_code ec, size_t) {
      if (ec) return self->EndStream();
      self->OnStreamHead();
    });
  }
  void OnStreamHead() {
    std::weak_ptr<Session> weak = this->weak_from_this();
    stream_body_->Start([weak, impl = impl_] {
      std::lock_guard<std::mutex> lock(impl->post_mu);
      if (impl->stopping) return;  // the io_context is going away
      if (auto self = weak.lock())
        net::post(self->stream_.get_executor(), [self] { self->Pump(); });
    });
    keepalive_.emplace(stream_.get_executor());
    Keepalive();
    Lowest().expires_never();
    WatchClose();
    Pump();
  }
  void WatchClose() {
    stream_.async_read_some(buffer_.prepare(kFirstRead),
                            [self = Self()](beast::error_code ec, size_t n) {
                              self->buffer_.commit(n);
                              self->buffer_.consume(self->buffer_.size());  // nothing expected
                              if (ec) return self->EndStream();
                              self->Lowest().expires_never();
                              self->WatchClose();
                            });
  }
  void Keepalive() {
    keepalive_->expires_after(std::chrono::seconds(o_.stream_keepalive_s));
    keepalive_->async_wait([self = Self()](beast::error_code ec) {
      if (ec || !self->stream_body_) return;
      self->keepalive_due_ = true;
      self->Pump();
      self->Keepalive();
    });
  }
  void Pump() {
    if (writing_ || !stream_body_) return;
    std::string data = stream_body_->Pull();
    if (data.empty() && keepalive_due_) data = stream_body_->Keepalive();
    if (data.empty()) return;
    keepalive_due_ = false;
    writing_ = true;
    chunk_ = std::move(data);
    Lowest().expires_after(std::chrono::seconds(o_.write_timeout_s));
    net::async_write(stream_, http::make_chunk(net::buffer(chunk_)),
                     [self = Self()](beast::error_code ec, size_t) {
                       self->writing_ = false;
                       if (ec) return self->EndStream();
                       self->Pump();
                     });
  }
  void EndStream() {
    stream_body_.reset();  // unsubscribes
    if (keepalive_) keepalive_->cancel();
    Close();
  }

  Impl* const impl_;
  const ServerOptions& o_;
  Stream stream_;
  const std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<Parser> parser_;
  std::optional<http::response<http::string_body>> response_;
  std::unique_ptr<char[]> drain_;
  size_t drained_ = 0;
  // A streamed answer: its body, the chunk being written, the keepalive.
  std::shared_ptr<ResponseStream> stream_body_;
  std::string chunk_;
  bool writing_ = false;
  bool keepalive_due_ = false;
  std::optional<net::steady_timer> keepalive_;
};

void Server::Impl::Accept() {
  acceptor->async_accept(net::make_strand(*io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors and the like: try again shortly instead of spinning.
      spdlog::warn("REST accept: {}; retrying in 100 ms", ec.message());
      retry->expires_after(std::chrono::milliseconds(100));
      retry->async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) Accept();
      });
      return;
    }
    beast::error_code pec;
    const tcp::endpoint remote = socket.remote_endpoint(pec);
    if (!pec) {
      std::string peer = remote.address().to_string();
      if (!Admit(peer)) {
        socket.close(pec);
        std::lock_guard<std::mutex> lock(mu);
        const auto now = std::chrono::steady_clock::now();
        if (now - last_refusal_log > std::chrono::seconds(10)) {
          last_refusal_log = now;
          spdlog::warn(
              "REST: refusing connections over the caps ({} in all, {} per client address); {} "
              "refused so far",
              server->options_.max_connections, server->options_.max_connections_per_client,
              refused.load());
        }
      } else {
        socket.set_option(tcp::no_delay(true), pec);
        if (ssl) {
          std::make_shared<Session<TlsStream>>(
              this, TlsStream(beast::tcp_stream(std::move(socket)), *ssl), std::move(peer))
              ->Start();
        } else {
          std::make_shared<Session<PlainStream>>(this, PlainStream(std::move(socket)),
                                                 std::move(peer))
              ->Start();
        }
      }
    }
    Accept();
  });
}

Server::Server(ServerOptions options) : options_(options), impl_(std::make_unique<Impl>(this)) {}

Server::~Server() { Stop(); }

size_t Server::connections() const { return impl_->open.load(); }
uint64_t Server::refused_connections() const { return impl_->refused.load(); }

absl::Status Server::Start(const base::HostPort& addr) {
  if (impl_->io) return absl::FailedPreconditionError("the REST server is already started");
  {
    std::lock_guard<std::mutex> lock(impl_->post_mu);
    impl_->stopping = false;
  }
  if (!options_.https.cert.empty()) {
    auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
    if (absl::Status st = tls::ConfigureHttpsServer(*ctx, options_.https); !st.ok())
      return absl::InvalidArgumentError(absl::StrCat("HTTPS: ", st.message()));
    impl_->ssl = std::move(ctx);
  }
  auto io = std::make_unique<net::io_context>(std::max(1, options_.io_threads));
  beast::error_code ec;
  tcp::endpoint endpoint;
  const net::ip::address address = net::ip::make_address(addr.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, addr.port);
  } else {
    tcp::resolver resolver(*io);
    auto results = resolver.resolve(addr.host, std::to_string(addr.port), ec);
    if (ec || results.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot resolve ", addr.host, ": ", ec ? ec.message() : "no address"));
    }
    endpoint = results.begin()->endpoint();
  }
  auto acceptor = std::make_unique<tcp::acceptor>(*io);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", addr.ToString(), ": ", ec.message()));
  }
  bound_ = base::HostPort{addr.host, acceptor->local_endpoint().port()};
  impl_->pool = std::make_unique<net::thread_pool>(std::max(1, options_.handler_threads));
  impl_->retry = std::make_unique<net::steady_timer>(*io);
  impl_->acceptor = std::move(acceptor);
  impl_->io = std::move(io);
  impl_->Accept();
  for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
    impl_->threads.emplace_back([io = impl_->io.get()] {
      for (;;) {
        try {
          io->run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("REST I/O thread: {}", e.what());
        }
      }
    });
  }
  return absl::OkStatus();
}

void Server::Stop() {
  if (!impl_ || !impl_->io) return;
  {
    std::lock_guard<std::mutex> lock(impl_->post_mu);
    impl_->stopping = true;
  }
  impl_->io->stop();
  for (std::thread& t : impl_->threads) t.join();
  impl_->threads.clear();
  // Running handlers finish, and async routes answer; the answers queue on
  // the stopped io_context.
  impl_->pool->join();
  impl_->AwaitHandlers();
  impl_->acceptor.reset();
  impl_->retry.reset();
  // Destroying the io_context destroys the pending operations and with them
  // every connection (each releases its count).
  impl_->io.reset();
  impl_->pool.reset();
  impl_->ssl.reset();
}

}  // namespace portolan::rest
