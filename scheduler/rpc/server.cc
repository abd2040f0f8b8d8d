// SPDX-License-Identifier: Apache-2.0
#include "portolan/rpc/server.h"

#include <array>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "portolan/base/log.h"

namespace portolan::rpc {

namespace asio = boost::asio;
using asio::ip::tcp;
using scheduler::AgentLink;
using scheduler::Core;

// What the sessions read in one round of the (single-threaded) io loop,
// handed to the core at once by one posted Flush: with several agents busy,
// one lock, one store commit (one fsync) and one placement pass serve them
// all, where each session's read cost its own. A session's messages keep
// their order; the core sends its answers (acks, assignments) only after the
// commit, as before (they are posted to the io loop, which runs them after
// the Flush).
class RpcServer::Deliveries : public std::enable_shared_from_this<Deliveries> {
 public:
  Deliveries(asio::io_context& io, Core* core) : io_(io), core_(core) {}

  // Queues what `session` read; the first of a round posts the Flush.
  void Add(std::shared_ptr<AgentLink> session, const std::string& agent_id,
           std::vector<v1::Envelope> batch) {
    pending_.push_back({agent_id, session.get(), std::move(batch)});
    sessions_.push_back(std::move(session));
    if (posted_) return;
    posted_ = true;
    asio::post(io_, [self = shared_from_this()] {
      self->posted_ = false;
      self->Flush();
    });
  }
  // Hands everything queued to the core (also before a session's end is
  // reported, so that what it sent is handled first).
  void Flush() {
    if (pending_.empty()) return;
    std::vector<scheduler::Delivery> deliveries;
    deliveries.swap(pending_);
    std::vector<std::shared_ptr<AgentLink>> alive;  // the links, until the core is done
    alive.swap(sessions_);
    core_->OnMessages(deliveries);
  }

 private:
  asio::io_context& io_;
  Core* const core_;
  std::vector<scheduler::Delivery> pending_;
  std::vector<std::shared_ptr<AgentLink>> sessions_;  // pending_'s links, one each
  bool posted_ = false;
};

class RpcServer::Session : public AgentLink, public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Core* core, const RpcOptions& options,
          std::shared_ptr<std::atomic<size_t>> registry, std::weak_ptr<Deliveries> deliveries)
      : options_(options),  // holds options.tls, the context the stream uses
        stream_(std::move(socket), options_.tls.get()),
        timer_(stream_.get_executor()),
        core_(core),
        decoder_(options.max_frame_bytes),
        registry_(std::move(registry)),
        deliveries_(std::move(deliveries)) {
    boost::system::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    peer_ = ec ? "unknown" : absl::StrCat(ep.address().to_string(), ":", ep.port());
    registry_->fetch_add(1);
  }
  ~Session() override { registry_->fetch_sub(1); }

  void Start() {
    // The register timeout also bounds the TLS handshake (slow or silent peers).
    ArmTimer(options_.register_timeout, "no Register received in time");
    stream_.AsyncHandshake(asio::ssl::stream_base::server,
                           [self = shared_from_this()](const boost::system::error_code& ec) {
                             if (self->closed_) return;
                             if (ec) {
                               self->RefuseHandshake(ec);
                               return;
                             }
                             if (self->stream_.tls()) {
                               auto id = tls::PeerIdentity(self->stream_.native());
                               if (!id.ok()) {
                                 self->Shutdown(std::string(id.status().message()));
                                 return;
                               }
                               self->identity_ = *id;
                             }
                             self->Read();
                           });
  }

  void Send(const v1::Envelope& envelope) override {
    auto frame = std::make_shared<std::string>(wire::EncodeFrame(envelope));
    asio::post(stream_.get_executor(), [self = shared_from_this(), frame] {
      if (self->closed_) return;
      self->queued_bytes_ += frame->size();
      if (self->queued_bytes_ > self->options_.max_queued_bytes) {
        self->Shutdown("peer does not read; send queue over the limit");
        return;
      }
      self->queue_.push_back(std::move(*frame));
      if (self->queue_.size() - self->head_ == 1) self->Write();  // none in flight
    });
  }

  void Close(const std::string& reason) override {
    asio::post(stream_.get_executor(), [self = shared_from_this(), reason] {
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

  // Waits until the connection is readable, then reads what is there into
  // one buffer shared by all sessions of this (single-threaded) io_context,
  // so an idle connection holds no read buffer (TLS included: the stream
  // keeps no record buffers while idle either).
  void Read() {
    stream_.AsyncWaitRead([self = shared_from_this()](const boost::system::error_code& ec) {
      if (self->closed_) return;
      if (ec) {
        self->Shutdown(tls::Describe(ec));
        return;
      }
      static thread_local std::array<char, 64 * 1024> shared;
      for (;;) {
        boost::system::error_code rec;
        size_t n = self->stream_.ReadSome(asio::buffer(shared), rec);
        if (rec == asio::error::would_block || rec == asio::error::try_again) break;
        if (rec) {
          self->Shutdown(tls::IsPeerClosed(rec) ? "peer closed the connection"
                                                : tls::Describe(rec));
          return;
        }
        if (!self->Consume(shared.data(), n)) return;
        // Plain TCP: a short read drained the socket. TLS returns one record
        // per read, so it reads on until OpenSSL would block.
        if (n < shared.size() && !self->stream_.tls()) break;
      }
      self->Deliver();
      self->Read();
    });
  }

  // Decodes and handles every complete frame; false once the session closed.
  bool Consume(const char* data, size_t n) {
    decoder_.Append(data, n);
    v1::Envelope env;
    while (!closed_) {
      auto next = decoder_.Next(&env);
      if (!next.ok()) {
        ProtocolError(std::string(next.status().message()));
        return false;
      }
      if (!*next) break;
      Handle(env);
    }
    return !closed_;
  }

  void Handle(const v1::Envelope& env) {
    ArmTimer(options_.idle_timeout, "idle: no frame within the idle timeout");
    if (agent_id_.empty()) {
      if (!env.has_register_()) {
        ProtocolError("first message must be Register");
        return;
      }
      if (identity_) {
        absl::Status allowed =
            tls::CheckAgentIdentity(*identity_, env.register_().agent_id(), env.register_().site());
        if (!allowed.ok()) {
          spdlog::warn("refusing registration from {}: {}", peer_, allowed.message());
          v1::Envelope refusal;
          refusal.mutable_register_ack()->set_accepted(false);
          refusal.mutable_register_ack()->set_reason(std::string(allowed.message()));
          Send(refusal);
          Close("registration refused: certificate does not match");
          return;
        }
      }
      if (options_.standby_leader) {
        const std::string leader = options_.standby_leader();
        v1::Envelope refusal;
        v1::RegisterAck* ack = refusal.mutable_register_ack();
        ack->set_accepted(false);
        ack->set_standby(true);
        ack->set_leader(leader);
        ack->set_reason(leader.empty()
                            ? "this scheduler is a standby and no leader is known yet; retry"
                            : absl::StrCat("this scheduler is a standby; the leader is ", leader));
        Send(refusal);
        Close("registration refused: standby");
        return;
      }
      // What was read before this Register is handled before it.
      if (auto d = deliveries_.lock()) d->Flush();
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
    batch_.push_back(env);
  }

  // Queues every message read since the last call for the core, at once
  // with what other sessions read meanwhile (Deliveries): the more messages
  // wait, the fewer commits (and placement passes) they cost.
  void Deliver() {
    if (batch_.empty()) return;
    std::vector<v1::Envelope> batch;
    batch.swap(batch_);
    if (auto d = deliveries_.lock()) d->Add(shared_from_this(), agent_id_, std::move(batch));
  }

  void ProtocolError(const std::string& what) {
    spdlog::warn("agent connection {}{}: protocol error: {}; closing", peer_,
                 agent_id_.empty() ? "" : absl::StrCat(" (", agent_id_, ")"), what);
    v1::Envelope env;
    env.mutable_error()->set_message(what);
    Send(env);
    Close(what);
  }

  void RefuseHandshake(const boost::system::error_code& ec) {
    const std::string& cert = stream_.verify_error();
    spdlog::warn("agent connection {} refused: TLS handshake failed: {}", peer_,
                 cert.empty() ? tls::Describe(ec) : absl::StrCat("client certificate: ", cert));
    Shutdown("TLS handshake failed");
  }

  void Write() {
    stream_.AsyncWrite(asio::buffer(queue_[head_]),
                       [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                         if (self->closed_) return;
                         if (ec) {
                           self->Shutdown(tls::Describe(ec));
                           return;
                         }
                         self->queued_bytes_ -= self->queue_[self->head_].size();
                         if (++self->head_ == self->queue_.size()) {
                           self->queue_.clear();
                           self->head_ = 0;
                         }
                         if (!self->queue_.empty()) {
                           self->Write();
                         } else if (!self->close_after_write_.empty()) {
                           self->Shutdown(self->close_after_write_);
                         }
                       });
  }

  void Shutdown(const std::string& why) {
    if (closed_) return;
    Deliver();  // what the agent sent before the end, in order
    if (auto d = deliveries_.lock()) d->Flush();
    closed_ = true;
    spdlog::info("agent connection {}{} closed: {}", peer_,
                 agent_id_.empty() ? "" : absl::StrCat(" (", agent_id_, ")"), why);
    timer_.cancel();
    stream_.Close();
    queue_.clear();
    head_ = 0;
    if (!agent_id_.empty()) core_->OnDisconnect(agent_id_, this);
  }

  const RpcOptions options_;  // first: stream_ uses its TLS context
  tls::Stream stream_;
  std::optional<tls::Identity> identity_;  // the verified agent certificate (TLS only)
  std::vector<v1::Envelope> batch_;        // read, not yet handed to the core (Deliver)
  asio::steady_timer timer_;
  Core* core_;
  wire::FrameDecoder decoder_;
  std::shared_ptr<std::atomic<size_t>> registry_;  // open connections
  // Weak: Deliveries holds the sessions whose messages wait for its Flush, so
  // a strong reference back would be a cycle that outlives a loop stopped
  // before that Flush ran (the scheduler's shutdown). The server and a posted
  // Flush hold it; once the server is gone, what a session reads is dropped
  // (the agent sends it again to the next scheduler, as after any restart).
  std::weak_ptr<Deliveries> deliveries_;
  // Frames waiting to be written, from head_ on. A vector (not a deque, which
  // allocates on construction) so an idle session holds nothing here.
  std::vector<std::string> queue_;
  size_t head_ = 0;
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
      sessions_(std::make_shared<std::atomic<size_t>>(0)),
      deliveries_(std::make_shared<Deliveries>(io, core)) {}

RpcServer::~RpcServer() { Stop(); }

absl::Status RpcServer::Listen(const base::HostPort& addr) {
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
  bound_ = base::HostPort{addr.host, acceptor_.local_endpoint().port()};
  Accept();
  return absl::OkStatus();
}

void RpcServer::Accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      spdlog::warn("agent RPC accept: {}", ec.message());
    } else if (sessions_->load() >= options_.max_connections) {
      spdlog::warn("agent RPC: refusing connection, {} connections open", sessions_->load());
    } else {
      boost::system::error_code opt_ec;
      socket.set_option(tcp::no_delay(true), opt_ec);
      std::make_shared<Session>(std::move(socket), core_, options_, sessions_, deliveries_)
          ->Start();
    }
    if (acceptor_.is_open()) Accept();
  });
}

void RpcServer::SetTlsContext(std::shared_ptr<asio::ssl::context> tls) {
  asio::post(io_, [this, tls = std::move(tls)] { options_.tls = tls; });
}

void RpcServer::Stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

size_t RpcServer::connections() const { return sessions_->load(); }

}  // namespace portolan::rpc
