#include "portolan/rpc_server.h"

#include <deque>

#include "absl/strings/str_cat.h"
#include "portolan/log.h"

namespace portolan::scheduler {

namespace asio = boost::asio;
using asio::ip::tcp;

class RpcServer::Session : public AgentLink, public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Core* core, const RpcOptions& options,
          std::shared_ptr<std::set<Session*>> registry)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        core_(core),
        options_(options),
        decoder_(options.max_frame_bytes),
        registry_(std::move(registry)) {
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    peer_ = ec ? "unknown" : absl::StrCat(ep.address().to_string(), ":", ep.port());
    registry_->insert(this);
  }
  ~Session() override { registry_->erase(this); }

  void Start() {
    ArmTimer(options_.register_timeout, "no Register received in time");
    Read();
  }

  void Send(const v1::Envelope& envelope) override {
    auto frame = std::make_shared<std::string>(wire::EncodeFrame(envelope));
    asio::post(socket_.get_executor(), [self = shared_from_this(), frame] {
      if (self->closed_) return;
      self->queued_bytes_ += frame->size();
      if (self->queued_bytes_ > self->options_.max_queued_bytes) {
        self->Shutdown("peer does not read; send queue over the limit");
        return;
      }
      self->queue_.push_back(std::move(*frame));
      if (self->queue_.size() == 1) self->Write();
    });
  }

  void Close(const std::string& reason) override {
    asio::post(socket_.get_executor(), [self = shared_from_this(), reason] {
      self->close_after_write_ = reason;
      if (self->queue_.empty()) self->Shutdown(reason);
    });
  }

 private:
  void ArmTimer(absl::Duration d, std::string why) {
    timer_.expires_after(absl::ToChronoMilliseconds(d));
    timer_.async_wait([self = shared_from_this(), why](const boost::system::error_code& ec) {
      if (!ec) self->Shutdown(why);
    });
  }

  void Read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](
                                                    const boost::system::error_code& ec, size_t n) {
      if (ec) {
        self->Shutdown(ec == asio::error::eof ? "peer closed the connection" : ec.message());
        return;
      }
      self->decoder_.Append(self->buf_.data(), n);
      v1::Envelope env;
      while (!self->closed_) {
        auto next = self->decoder_.Next(&env);
        if (!next.ok()) {
          self->ProtocolError(std::string(next.status().message()));
          return;
        }
        if (!*next) break;
        self->Handle(env);
      }
      if (!self->closed_) self->Read();
    });
  }

  void Handle(const v1::Envelope& env) {
    ArmTimer(options_.idle_timeout, "idle: no frame within the idle timeout");
    if (agent_id_.empty()) {
      if (!env.has_register_()) {
        ProtocolError("first message must be Register");
        return;
      }
      if (core_->OnRegister(env.register_(), shared_from_this(), peer_)) {
        agent_id_ = env.register_().agent_id();
      } else {
        Close("registration refused");
      }
      return;
    }
    if (env.has_register_()) {
      ProtocolError("Register sent twice on one connection");
      return;
    }
    core_->OnMessage(agent_id_, this, env);
  }

  void ProtocolError(const std::string& what) {
    spdlog::warn("agent connection {}{}: protocol error: {}; closing", peer_,
                 agent_id_.empty() ? "" : absl::StrCat(" (", agent_id_, ")"), what);
    v1::Envelope env;
    env.mutable_error()->set_message(what);
    Send(env);
    Close(what);
  }

  void Write() {
    asio::async_write(socket_, asio::buffer(queue_.front()),
                      [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                        if (ec) {
                          self->Shutdown(ec.message());
                          return;
                        }
                        self->queued_bytes_ -= self->queue_.front().size();
                        self->queue_.pop_front();
                        if (!self->queue_.empty()) {
                          self->Write();
                        } else if (!self->close_after_write_.empty()) {
                          self->Shutdown(self->close_after_write_);
                        }
                      });
  }

  void Shutdown(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    spdlog::info("agent connection {}{} closed: {}", peer_,
                 agent_id_.empty() ? "" : absl::StrCat(" (", agent_id_, ")"), why);
    boost::system::error_code ec;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    queue_.clear();
    if (!agent_id_.empty()) core_->OnDisconnect(agent_id_, this);
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  Core* core_;
  const RpcOptions options_;
  wire::FrameDecoder decoder_;
  std::shared_ptr<std::set<Session*>> registry_;
  std::array<char, 64 * 1024> buf_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  std::string peer_;
  std::string agent_id_;
  std::string close_after_write_;
  bool closed_ = false;
};

RpcServer::RpcServer(asio::io_context& io, Core* core, RpcOptions options)
    : io_(io),
      core_(core),
      options_(options),
      acceptor_(io),
      sessions_(std::make_shared<std::set<Session*>>()) {}

RpcServer::~RpcServer() { Stop(); }

absl::Status RpcServer::Listen(const HostPort& addr) {
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(addr.host, ec);
  if (ec)
    return absl::InvalidArgumentError(
        absl::StrCat("agent RPC address ", addr.host, ": ", ec.message()));
  tcp::endpoint ep(ip, addr.port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", addr.ToString(), ": ", ec.message()));
  bound_ = HostPort{addr.host, acceptor_.local_endpoint().port()};
  Accept();
  return absl::OkStatus();
}

void RpcServer::Accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      spdlog::warn("agent RPC accept: {}", ec.message());
    } else if (sessions_->size() >= options_.max_connections) {
      spdlog::warn("agent RPC: refusing connection, {} connections open", sessions_->size());
    } else {
      socket.set_option(tcp::no_delay(true));
      std::make_shared<Session>(std::move(socket), core_, options_, sessions_)->Start();
    }
    if (acceptor_.is_open()) Accept();
  });
}

void RpcServer::Stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

size_t RpcServer::connections() const { return sessions_->size(); }

}  // namespace portolan::scheduler
