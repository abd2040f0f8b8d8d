// SPDX-License-Identifier: Apache-2.0
#include "portolan/metrics/http.h"

#include "absl/strings/str_cat.h"

namespace portolan::metrics {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, Registry* registry)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        registry_(registry),
        buffer_(8192) {}

  void Start() {
    timer_.expires_after(std::chrono::seconds(5));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->Close();
    });
    asio::async_read_until(
        socket_, buffer_, "\r\n\r\n",
        [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
          if (ec) {
            self->Close();
            return;
          }
          self->Answer();
        });
  }

 private:
  void Answer() {
    std::istream in(&buffer_);
    std::string method, target, version;
    in >> method >> target >> version;
    std::string status = "200 OK", type = kContentType, body;
    if (method != "GET" && method != "HEAD") {
      status = "405 Method Not Allowed";
      type = "text/plain";
      body = "only GET /metrics\n";
    } else if (target != "/metrics") {
      status = "404 Not Found";
      type = "text/plain";
      body = "only GET /metrics\n";
    } else {
      body = registry_->Render();
    }
    response_ = absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                             "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n",
                             method == "HEAD" ? "" : body);
    asio::async_write(
        socket_, asio::buffer(response_),
        [self = shared_from_this()](const boost::system::error_code&, size_t) { self->Close(); });
  }

  void Close() {
    boost::system::error_code ec;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  Registry* registry_;
  asio::streambuf buffer_;
  std::string response_;
};

}  // namespace

HttpServer::HttpServer(asio::io_context& io, Registry* registry)
    : registry_(registry), acceptor_(io) {}

HttpServer::~HttpServer() {
  *alive_ = false;
  boost::system::error_code ec;
  acceptor_.close(ec);
}

absl::Status HttpServer::Listen(const base::HostPort& addr) {
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(addr.host, ec);
  if (ec)
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address ", addr.host, ": ", ec.message()));
  tcp::endpoint ep(ip, addr.port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", addr.ToString(), " for metrics: ", ec.message()));
  bound_ = base::HostPort{addr.host, acceptor_.local_endpoint().port()};
  Accept();
  return absl::OkStatus();
}

void HttpServer::Accept() {
  acceptor_.async_accept(
      [this, alive = alive_](const boost::system::error_code& ec, tcp::socket socket) {
        if (!*alive || ec == asio::error::operation_aborted) return;
        if (!ec) std::make_shared<Connection>(std::move(socket), registry_)->Start();
        Accept();
      });
}

}  // namespace portolan::metrics
