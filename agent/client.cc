// SPDX-License-Identifier: Apache-2.0
#include "portolan/agent/client.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "portolan/base/log.h"
#include "portolan/discovery/topology.h"

namespace portolan::agent {

namespace asio = boost::asio;
using asio::ip::tcp;

AgentClient::AgentClient(asio::io_context& io, AgentOptions options, v1::Topology topology,
                         std::function<void(const std::string&)> on_fatal, base::Clock* clock)
    : io_(io),
      clock_(clock),
      options_(std::move(options)),
      topology_(std::move(topology)),
      on_fatal_(std::move(on_fatal)),
      socket_(io),
      reconnect_timer_(io),
      heartbeat_timer_(io),
      resend_timer_(io),
      decoder_(options_.max_frame_bytes),
      backoff_(options_.reconnect_min),
      last_rediscover_(clock_->Now()) {
  // Executor callbacks come from its monitor thread: hop onto the io thread.
  executor_ = std::make_unique<executor::Executor>(
      options_.executor, clock_,
      [this](const v1::JobUpdate& u) { asio::post(io_, [this, u] { QueueUpdate(u); }); });
}

AgentClient::~AgentClient() {
  for (auto& [key, s] : staging_) {
    *s.cancel = true;
    if (s.thread.joinable()) s.thread.join();
  }
  for (auto& [key, t] : keeping_) {
    if (t.joinable()) t.join();
  }
}

void AgentClient::Start() {
  Connect();
  ResendTick();
}

void AgentClient::Stop() {
  stopped_ = true;
  for (auto& [key, s] : staging_) {
    *s.cancel = true;
    if (s.thread.joinable()) s.thread.join();  // a transfer ends within its I/O timeout
  }
  staging_.clear();
  boost::system::error_code ec;
  reconnect_timer_.cancel();
  heartbeat_timer_.cancel();
  resend_timer_.cancel();
  socket_.close(ec);
  if (stream_) stream_->Close();
  executor_.reset();  // leaves jobs running for the next agent process, or stops them
}

void AgentClient::Connect() {
  if (stopped_) return;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(scheduler().host, ec);
  if (ec) {
    // Names are resolved on each attempt so a moved scheduler is found again.
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(scheduler().host, std::to_string(scheduler().port), ec);
    if (ec || results.empty()) {
      ScheduleReconnect(absl::StrCat("cannot resolve ", scheduler().host, ": ", ec.message()));
      return;
    }
    addr = results.begin()->endpoint().address();
  }
  socket_ = tcp::socket(io_);
  const uint64_t gen = ++generation_;
  socket_.async_connect(
      tcp::endpoint(addr, scheduler().port), [this, gen](const boost::system::error_code& ec) {
        if (gen != generation_ || stopped_) return;
        if (ec) {
          ScheduleReconnect(
              absl::StrCat("connect to ", scheduler().ToString(), ": ", ec.message()));
          return;
        }
        Handshake(gen);
      });
}

void AgentClient::ScheduleReconnect(const std::string& why) {
  if (stopped_) return;
  if (options_.schedulers.size() > 1) {
    // The next scheduler right away; the backoff applies once all were tried.
    current_ = (current_ + 1) % options_.schedulers.size();
    if (current_ != 0) {
      spdlog::warn("scheduler unreachable ({}); trying {}", why, scheduler().ToString());
      asio::post(io_, [this] { Connect(); });
      return;
    }
  }
  // Exponential backoff with +-20% jitter, so agents do not reconnect in lockstep.
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  absl::Duration wait = backoff_ * jitter(rng);
  spdlog::warn("scheduler unreachable ({}); retrying in {}", why,
               absl::FormatDuration(absl::Trunc(wait, absl::Milliseconds(1))));
  backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
  reconnect_timer_.expires_after(absl::ToChronoMilliseconds(wait));
  reconnect_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Connect();
  });
}

void AgentClient::Handshake(uint64_t gen) {
  boost::system::error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);
  // Each connection gets its own stream; handlers hold it so a stream is
  // never destroyed under an operation still completing.
  stream_ = std::make_shared<tls::Stream>(std::move(socket_), options_.tls.get());
  socket_ = tcp::socket(io_);
  stream_->ExpectServerName(scheduler().host);
  stream_->AsyncHandshake(asio::ssl::stream_base::client, [this, gen, stream = stream_](
                                                              const boost::system::error_code& ec) {
    if (gen != generation_ || stopped_) return;
    if (ec) {
      const std::string& cert = stream->verify_error();
      std::string why =
          cert.empty() ? tls::Describe(ec) : absl::StrCat("scheduler certificate refused: ", cert);
      stream->Close();
      spdlog::error("TLS handshake with {} failed: {}", scheduler().ToString(), why);
      ScheduleReconnect(absl::StrCat("TLS handshake failed: ", why));
      return;
    }
    OnConnected();
  });
}

void AgentClient::OnConnected() {
  connected_ = true;
  registered_ = false;
  decoder_ = wire::FrameDecoder(options_.max_frame_bytes);
  write_queue_.clear();
  heartbeats_in_flight_.clear();
  last_received_ = clock_->Now();
  v1::Envelope env;
  v1::Register* reg = env.mutable_register_();
  reg->set_agent_id(options_.id);
  reg->set_site(options_.site);
  for (const auto& [k, v] : options_.labels) (*reg->mutable_labels())[k] = v;
  *reg->mutable_topology() = topology_;
  reg->set_version(PORTOLAN_VERSION);
  *reg->mutable_isolation() = executor::DescribeIsolation(options_.executor);
  // With attempt records, what is not listed does not run here: Recover
  // killed whatever they did not account for.
  reg->set_accounts_for_all_jobs(!options_.executor.records_dir.empty() &&
                                 !options_.executor.job_init.empty());
  reg->set_data_endpoint(options_.data_endpoint);
  for (const v1::AgentJobStatus& s : executor_->Jobs()) *reg->add_jobs() = s;
  spdlog::info("connected to scheduler {}{}; registering as {} at site {} with {} job(s)",
               scheduler().ToString(), stream_->tls() ? " over TLS" : " (plain TCP)", options_.id,
               options_.site, reg->jobs_size());
  Send(env);
  Read();
}

void AgentClient::Read() {
  const uint64_t gen = generation_;
  stream_->AsyncReadSome(asio::buffer(buf_), [this, gen, stream = stream_](
                                                 const boost::system::error_code& ec, size_t n) {
    if (gen != generation_ || stopped_) return;
    if (ec) {
      ConnectionFailed(ec);
      return;
    }
    last_received_ = clock_->Now();
    decoder_.Append(buf_.data(), n);
    v1::Envelope env;
    while (true) {
      auto next = decoder_.Next(&env);
      if (!next.ok()) {
        Disconnect(absl::StrCat("protocol error: ", next.status().message()));
        return;
      }
      if (!*next) break;
      Handle(env);
      if (gen != generation_ || stopped_) return;
    }
    Read();
  });
}

void AgentClient::Handle(const v1::Envelope& env) {
  v1::Envelope ack;
  ack.mutable_ack()->set_seq(env.seq());
  switch (env.body_case()) {
    case v1::Envelope::kRegisterAck: {
      const v1::RegisterAck& a = env.register_ack();
      if (!a.accepted() && a.standby() && !a.leader().empty()) {
        // A standby: connect to the leader it names (added to the list when new).
        auto leader = base::ParseHostPort(a.leader());
        if (leader.ok()) {
          spdlog::info("{}; connecting to {}", a.reason(), a.leader());
          auto& all = options_.schedulers;
          auto it = std::find_if(all.begin(), all.end(), [&](const base::HostPort& h) {
            return h.ToString() == leader->ToString();
          });
          if (it == all.end()) it = all.insert(all.end(), *leader);
          current_ = static_cast<size_t>(it - all.begin());
          // Not a failure of the connection: reconnect at once, to the leader.
          connected_ = false;
          registered_ = false;
          ++generation_;
          if (stream_) stream_->Close();
          asio::post(io_, [this] { Connect(); });
          return;
        }
      }
      if (!a.accepted() && a.standby()) {
        Disconnect(a.reason());  // a standby that knows no leader yet: try again
        return;
      }
      if (!a.accepted()) {
        spdlog::critical("scheduler refused registration: {}", a.reason());
        on_fatal_(a.reason());
        return;
      }
      registered_ = true;
      backoff_ = options_.reconnect_min;
      if (!a.grant_keys().empty()) {
        absl::MutexLock lock(&keys_mu_);
        for (const auto& [id, key] : a.grant_keys()) grant_keys_[id] = key;
      }
      if (a.heartbeat_interval_ms() > 0)
        heartbeat_interval_ = absl::Milliseconds(a.heartbeat_interval_ms());
      spdlog::info(
          "registered (session {}, heartbeat every {}); resending {} unacknowledged update(s)",
          a.session_id(), absl::FormatDuration(heartbeat_interval_), outbox_.size());
      const absl::Time now = clock_->Now();
      for (auto& [seq, p] : outbox_) {
        p.last_sent = now;
        Send(p.envelope);
      }
      Heartbeat();
      return;
    }
    case v1::Envelope::kAssign: {
      const v1::Job& job = env.assign().job();
      RecordOutputs(env.assign());
      if (env.assign().inputs_size() > 0) {
        if (!StartStaging(env.assign())) {
          spdlog::info("Assign for job {} attempt {} is a duplicate; not staging it again",
                       job.id(), job.attempt());
        }
        Send(ack);
        return;
      }
      if (!executor_->Start(job)) {
        spdlog::info("Assign for job {} attempt {} is a duplicate; not starting it again", job.id(),
                     job.attempt());
      }
      Send(ack);
      return;
    }
    case v1::Envelope::kCancel:
      if (auto s = staging_.find(absl::StrCat(env.cancel().job_id(), "/", env.cancel().attempt()));
          s != staging_.end()) {
        *s->second.cancel = true;  // reported cancelled once the transfer in progress ends
      }
      executor_->Cancel(env.cancel().job_id(), env.cancel().attempt(), env.cancel().reason(),
                        absl::Milliseconds(env.cancel().grace_ms()));
      Send(ack);
      return;
    case v1::Envelope::kAck: {
      auto hb = heartbeats_in_flight_.find(env.ack().seq());
      if (hb != heartbeats_in_flight_.end()) {
        measured_rtt_ms_ =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - hb->second)
                .count();
        heartbeats_in_flight_.erase(hb);
        return;
      }
      auto it = outbox_.find(env.ack().seq());
      if (it != outbox_.end()) {
        const v1::JobUpdate& u = it->second.envelope.job_update();
        // An ended attempt's last word is stored: its record may go.
        if (it->second.envelope.has_job_update() && u.state() != v1::Job::running &&
            u.state() != v1::Job::staging)
          executor_->Forget(u.job_id(), u.attempt());
        outbox_.erase(it);
      }
      return;
    }
    case v1::Envelope::kError:
      spdlog::error("scheduler reported a protocol error: {}", env.error().message());
      return;
    default:
      spdlog::warn("unexpected message {} from the scheduler; ignored",
                   static_cast<int>(env.body_case()));
  }
}

void AgentClient::Send(const v1::Envelope& env) {
  if (!connected_) return;
  write_queue_.push_back(wire::EncodeFrame(env));
  if (write_queue_.size() == 1) Write();
}

void AgentClient::Write() {
  const uint64_t gen = generation_;
  stream_->AsyncWrite(asio::buffer(write_queue_.front()),
                      [this, gen, stream = stream_](const boost::system::error_code& ec, size_t) {
                        if (gen != generation_ || stopped_) return;
                        if (ec) {
                          ConnectionFailed(ec);
                          return;
                        }
                        write_queue_.pop_front();
                        if (!write_queue_.empty()) Write();
                      });
}

void AgentClient::ConnectionFailed(const boost::system::error_code& ec) {
  if (!registered_ && ec.category() == asio::error::get_ssl_category()) {
    // With TLS 1.3 the scheduler checks our certificate after the handshake
    // completed here, so its refusal arrives as an alert: on the first read,
    // or on the Register write if the scheduler has closed by then.
    spdlog::error(
        "the scheduler refused this agent's certificate ({}); it must be signed by the "
        "CA the scheduler trusts and be valid now",
        tls::Describe(ec));
  }
  Disconnect(tls::IsPeerClosed(ec) ? "scheduler closed the connection" : tls::Describe(ec));
}

void AgentClient::Disconnect(const std::string& why) {
  if (!connected_) return;
  connected_ = false;
  registered_ = false;
  ++generation_;
  ++reconnects_;
  if (stream_) stream_->Close();
  heartbeat_timer_.cancel();
  write_queue_.clear();
  ScheduleReconnect(why);
}

void AgentClient::Heartbeat() {
  if (!registered_) return;
  // A scheduler that stopped answering (half-open TCP) is detected here.
  if (clock_->Now() - last_received_ > heartbeat_interval_ * 3) {
    Disconnect(absl::StrCat("no answer from the scheduler for ",
                            absl::FormatDuration(heartbeat_interval_ * 3)));
    return;
  }
  v1::Envelope env;
  env.set_seq(++next_seq_);
  v1::Heartbeat* hb = env.mutable_heartbeat();
  *hb->mutable_sent_at() = base::ToProto(clock_->Now());
  hb->set_measured_rtt_ms(measured_rtt_ms_);
  hb->mutable_usage()->set_running_jobs(static_cast<uint32_t>(executor_->running()));
  hb->mutable_usage()->set_memory_available_mb(
      static_cast<uint32_t>(discovery::MemAvailableKib() / 1024));
  for (v1::LogTail& t : executor_->ChangedLogs()) *hb->add_logs() = std::move(t);
  if (options_.rediscover && clock_->Now() - last_rediscover_ >= options_.rediscover_interval) {
    last_rediscover_ = clock_->Now();
    auto fresh = options_.rediscover();
    if (!fresh.ok()) {
      spdlog::warn("topology re-discovery failed: {}", fresh.status().message());
    } else if (!google::protobuf::util::MessageDifferencer::Equals(*fresh, topology_)) {
      spdlog::warn(
          "topology changed: {} PUs, {} MiB, {} GPUs (was {}, {}, {}); telling the scheduler",
          fresh->pus(), fresh->memory_mb(), fresh->gpus_size(), topology_.pus(),
          topology_.memory_mb(), topology_.gpus_size());
      topology_ = *fresh;
      *hb->mutable_topology() = topology_;
    }
  }
  heartbeats_in_flight_.clear();  // only the latest one measures RTT
  heartbeats_in_flight_[env.seq()] = std::chrono::steady_clock::now();
  Send(env);
  const uint64_t gen = generation_;
  heartbeat_timer_.expires_after(absl::ToChronoMilliseconds(heartbeat_interval_));
  heartbeat_timer_.async_wait([this, gen](const boost::system::error_code& ec) {
    if (!ec && gen == generation_) Heartbeat();
  });
}

void AgentClient::QueueUpdate(v1::JobUpdate update) {
  if (stopped_) return;
  if (update.state() == v1::Job::succeeded && update.outputs().empty() && KeepOutputs(update))
    return;  // queued again once its outputs are kept
  if (options_.on_update) options_.on_update(update);
  const v1::Job::State s = update.state();
  if (s == v1::Job::succeeded || s == v1::Job::failed || s == v1::Job::cancelled ||
      s == v1::Job::lost) {
    // The attempt's staged inputs go with it (links to local data only
    // unlink).
    RemoveStagedInputs(update.job_id(), update.attempt());
  }
  v1::Envelope env;
  *env.mutable_job_update() = std::move(update);
  QueueReliable(std::move(env));
}

void AgentClient::QueueReliable(v1::Envelope env) {
  if (stopped_) return;
  env.set_seq(++next_seq_);
  Pending& p = outbox_[env.seq()];
  p.envelope = std::move(env);
  p.last_sent = clock_->Now();
  if (registered_) Send(p.envelope);
}

void AgentClient::ResendTick() {
  if (stopped_) return;
  if (registered_) {
    const absl::Time now = clock_->Now();
    for (auto& [seq, p] : outbox_) {
      if (now - p.last_sent >= options_.resend_interval) {
        p.last_sent = now;
        Send(p.envelope);
      }
    }
  }
  resend_timer_.expires_after(absl::ToChronoMilliseconds(options_.resend_interval / 2));
  resend_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) ResendTick();
  });
}

}  // namespace portolan::agent
