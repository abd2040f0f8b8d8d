// SPDX-License-Identifier: Apache-2.0
// portolan-sim: many emulated data-centre agents in one process, each with
// its own RPC session to a real scheduler (plain TCP or mutual TLS), a
// synthetic topology, heartbeats, and job "execution" that reports running
// and then succeeded after a simulated duration. Drives the scheduler with
// thousands of agents on one machine. Prints JSON lines of progress and a
// summary; asserts nothing.
//
//   portolan-sim --scheduler 127.0.0.1:7081 --agents 10000 [--seconds 60]
//                [--job-ms 0] [--topology 2x2x16x2] [--memory-gib 512]
//                [--sites a,b,...] [--prefix sim] [--connect-rate 2000]
//                [--tls-cert C --tls-key K --tls-ca CA] (cert CN/OU must match
//                each agent; for TLS use one agent per certificate)
//                [--tls-ca CA --tls-ca-key CAKEY] (mutual TLS for any number of
//                agents: each gets its own certificate, CN = its id, OU = its
//                site, minted in memory and signed by the CA, as
//                deploy/dev-ca.sh would issue it)
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>

#include "../support/test_ca.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "portolan/base/strings.h"
#include "portolan/tls/tls.h"
#include "portolan/v1/wire.pb.h"
#include "portolan/wire/frame.h"

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace portolan;

namespace {

struct Stats {
  uint64_t registered = 0, refused = 0, disconnects = 0, assigned = 0, completed = 0,
           heartbeats = 0, frames_in = 0, frames_out = 0;
};

struct Options {
  base::HostPort scheduler{"127.0.0.1", 7081};
  int agents = 1000;
  int seconds = 60;
  int job_ms = 0;
  int packages = 2, numa_per_package = 2, cores_per_numa = 16, pus_per_core = 2;
  int memory_gib = 512;
  std::vector<std::string> sites = {"lingang-idc-1", "lingang-idc-2", "hongqiao-1",
                                    "hongkong-1",    "singapore-1",   "tokyo-1",
                                    "frankfurt-1",   "london-1",      "lingang-offshore-1"};
  std::string prefix = "sim";
  int connect_rate = 2000;  // new connections per second
};

v1::Topology MakeTopology(const Options& o) {
  v1::Topology t;
  t.set_source("portolan-sim");
  t.set_packages(o.packages);
  const int numa = o.packages * o.numa_per_package;
  const uint32_t mem_per_numa = static_cast<uint32_t>(o.memory_gib * 1024 / numa);
  uint32_t pu = 0;
  int core_index = 0;
  for (int n = 0; n < numa; ++n) {
    v1::NumaNode* node = t.add_numa_nodes();
    node->set_os_index(n);
    node->set_memory_mb(mem_per_numa);
    for (int c = 0; c < o.cores_per_numa; ++c) {
      v1::Core* core = t.add_cores();
      core->set_index(core_index++);
      core->set_package(n / o.numa_per_package);
      core->set_numa(n);
      core->set_l3(n);
      for (int p = 0; p < o.pus_per_core; ++p) core->add_pus(pu++);
    }
  }
  t.set_pus(pu);
  t.set_memory_mb(mem_per_numa * numa);
  return t;
}

class SimAgent : public std::enable_shared_from_this<SimAgent> {
 public:
  SimAgent(asio::io_context& io, const Options& o, const v1::Topology& topo, std::string id,
           std::string site, Stats* stats, std::shared_ptr<asio::ssl::context> tls)
      : io_(io),
        o_(o),
        topo_(topo),
        id_(std::move(id)),
        site_(std::move(site)),
        stats_(stats),
        tls_(std::move(tls)),
        timer_(io) {}

  void Start() {
    auto self = shared_from_this();
    auto sock = std::make_shared<tcp::socket>(io_);
    sock->async_connect(
        tcp::endpoint(asio::ip::make_address(o_.scheduler.host), o_.scheduler.port),
        [self, sock](const boost::system::error_code& ec) {
          if (ec) {
            ++self->stats_->disconnects;
            return;
          }
          sock->set_option(tcp::no_delay(true));
          self->stream_ = std::make_unique<tls::Stream>(std::move(*sock), self->tls_.get());
          self->stream_->ExpectServerName(self->o_.scheduler.host);
          self->stream_->AsyncHandshake(asio::ssl::stream_base::client,
                                        [self](const boost::system::error_code& hec) {
                                          if (hec) {
                                            ++self->stats_->disconnects;
                                            return;
                                          }
                                          self->Register();
                                          self->Read();
                                        });
        });
  }

 private:
  void Register() {
    v1::Envelope env;
    v1::Register* r = env.mutable_register_();
    r->set_agent_id(id_);
    r->set_site(site_);
    *r->mutable_topology() = topo_;
    r->set_version("sim");
    Send(env);
  }

  void Read() {
    auto self = shared_from_this();
    stream_->AsyncReadSome(asio::buffer(buf_),
                           [self](const boost::system::error_code& ec, size_t n) {
                             if (ec) {
                               ++self->stats_->disconnects;
                               self->closed_ = true;
                               return;
                             }
                             self->decoder_.Append(self->buf_.data(), n);
                             v1::Envelope env;
                             while (true) {
                               auto next = self->decoder_.Next(&env);
                               if (!next.ok() || !*next) break;
                               ++self->stats_->frames_in;
                               self->Handle(env);
                             }
                             self->Read();
                           });
  }

  void Handle(const v1::Envelope& env) {
    switch (env.body_case()) {
      case v1::Envelope::kRegisterAck:
        if (!env.register_ack().accepted()) {
          ++stats_->refused;
          return;
        }
        ++stats_->registered;
        interval_ms_ = std::max<uint32_t>(env.register_ack().heartbeat_interval_ms(), 100);
        Heartbeat();
        return;
      case v1::Envelope::kAssign: {
        Ack(env.seq());
        ++stats_->assigned;
        const v1::Job& job = env.assign().job();
        Update(job.id(), job.attempt(), v1::Job::running);
        auto self = shared_from_this();
        auto t = std::make_shared<asio::steady_timer>(io_);
        t->expires_after(std::chrono::milliseconds(o_.job_ms));
        std::string id = job.id();
        uint32_t attempt = job.attempt();
        t->async_wait([self, t, id, attempt](const boost::system::error_code&) {
          ++self->stats_->completed;
          self->Update(id, attempt, v1::Job::succeeded);
        });
        return;
      }
      case v1::Envelope::kCancel:
        Ack(env.seq());
        Update(env.cancel().job_id(), env.cancel().attempt(), v1::Job::cancelled);
        return;
      default:
        return;  // Acks of our updates and heartbeats: nothing to resend on loopback
    }
  }

  void Ack(uint64_t seq) {
    v1::Envelope a;
    a.mutable_ack()->set_seq(seq);
    Send(a);
  }

  void Update(const std::string& job, uint32_t attempt, v1::Job::State state) {
    if (closed_) return;
    v1::Envelope env;
    env.set_seq(++seq_);
    v1::JobUpdate* u = env.mutable_job_update();
    u->set_job_id(job);
    u->set_attempt(attempt);
    u->set_state(state);
    if (state == v1::Job::running) u->set_message("simulated");
    Send(env);
  }

  void Heartbeat() {
    if (closed_) return;
    v1::Envelope env;
    env.set_seq(++seq_);
    env.mutable_heartbeat()->mutable_usage()->set_memory_available_mb(topo_.memory_mb());
    Send(env);
    ++stats_->heartbeats;
    auto self = shared_from_this();
    timer_.expires_after(std::chrono::milliseconds(interval_ms_));
    timer_.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->Heartbeat();
    });
  }

  void Send(const v1::Envelope& env) {
    if (closed_) return;
    queue_.push_back(wire::EncodeFrame(env));
    ++stats_->frames_out;
    if (queue_.size() == 1) Write();
  }

  void Write() {
    auto self = shared_from_this();
    stream_->AsyncWrite(asio::buffer(queue_.front()),
                        [self](const boost::system::error_code& ec, size_t) {
                          if (ec) {
                            self->closed_ = true;
                            return;
                          }
                          self->queue_.pop_front();
                          if (!self->queue_.empty()) self->Write();
                        });
  }

  asio::io_context& io_;
  const Options& o_;
  const v1::Topology& topo_;
  std::string id_, site_;
  Stats* stats_;
  std::shared_ptr<asio::ssl::context> tls_;  // null: plain TCP
  std::unique_ptr<tls::Stream> stream_;
  asio::steady_timer timer_;
  wire::FrameDecoder decoder_{wire::kDefaultMaxFrameBytes};
  std::array<char, 16 * 1024> buf_;
  std::deque<std::string> queue_;
  uint64_t seq_ = 0;
  uint32_t interval_ms_ = 5000;
  bool closed_ = false;
};

bool ParseTopology(const std::string& s, Options* o) {
  std::vector<std::string> parts = absl::StrSplit(s, 'x');
  return parts.size() == 4 && absl::SimpleAtoi(parts[0], &o->packages) &&
         absl::SimpleAtoi(parts[1], &o->numa_per_package) &&
         absl::SimpleAtoi(parts[2], &o->cores_per_numa) &&
         absl::SimpleAtoi(parts[3], &o->pus_per_core);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string cert, key, ca, ca_key;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i], v = argv[i + 1];
    bool ok = true;
    if (f == "--scheduler") {
      auto hp = base::ParseHostPort(v);
      ok = hp.ok();
      if (ok) o.scheduler = *hp;
    } else if (f == "--agents") {
      ok = absl::SimpleAtoi(v, &o.agents);
    } else if (f == "--seconds") {
      ok = absl::SimpleAtoi(v, &o.seconds);
    } else if (f == "--job-ms") {
      ok = absl::SimpleAtoi(v, &o.job_ms);
    } else if (f == "--topology") {
      ok = ParseTopology(v, &o);
    } else if (f == "--memory-gib") {
      ok = absl::SimpleAtoi(v, &o.memory_gib);
    } else if (f == "--sites") {
      o.sites = absl::StrSplit(v, ',');
    } else if (f == "--prefix") {
      o.prefix = v;
    } else if (f == "--connect-rate") {
      ok = absl::SimpleAtoi(v, &o.connect_rate) && o.connect_rate > 0;
    } else if (f == "--tls-cert") {
      cert = v;
    } else if (f == "--tls-key") {
      key = v;
    } else if (f == "--tls-ca") {
      ca = v;
    } else if (f == "--tls-ca-key") {
      ca_key = v;
    } else {
      ok = false;
    }
    if (!ok) {
      fprintf(stderr, "portolan-sim: bad flag %s %s (see the comment at the top of sim.cc)\n",
              f.c_str(), v.c_str());
      return 2;
    }
  }
  std::shared_ptr<asio::ssl::context> tls;
  std::unique_ptr<testing::TestCa> minter;
  if (!ca_key.empty()) {
    minter = std::make_unique<testing::TestCa>(ca, ca_key);
    if (!cert.empty() || ca.empty() || !minter->ok()) {
      fprintf(stderr, "portolan-sim: %s\n",
              minter->ok() ? "--tls-ca-key needs --tls-ca and no --tls-cert"
                           : "cannot read the CA certificate (--tls-ca) and key (--tls-ca-key)");
      return 2;
    }
  } else if (!cert.empty()) {
    auto ctx = tls::MakeClientContext({cert, key, ca});
    if (!ctx.ok()) {
      fprintf(stderr, "portolan-sim: %s\n", std::string(ctx.status().message()).c_str());
      return 2;
    }
    tls = *ctx;
  }
  signal(SIGPIPE, SIG_IGN);
  const v1::Topology topo = MakeTopology(o);
  asio::io_context io;
  Stats stats;
  std::vector<std::shared_ptr<SimAgent>> agents;
  agents.reserve(o.agents);
  for (int i = 0; i < o.agents; ++i) {
    const std::string id = absl::StrCat(o.prefix, "-", i);
    const std::string& site = o.sites[i % o.sites.size()];
    std::shared_ptr<asio::ssl::context> ctx = tls;
    if (minter) {
      ctx = minter->AgentContext(id, site);
      if (ctx == nullptr) {
        fprintf(stderr, "portolan-sim: cannot issue a certificate for %s\n", id.c_str());
        return 2;
      }
    }
    agents.push_back(std::make_shared<SimAgent>(io, o, topo, id, site, &stats, std::move(ctx)));
  }
  // Connect at --connect-rate per second so the listen backlog keeps up.
  const auto start = std::chrono::steady_clock::now();
  size_t next = 0;
  asio::steady_timer pacer(io);
  std::function<void()> connect_some = [&] {
    const size_t batch = std::max(1, o.connect_rate / 100);
    for (size_t k = 0; k < batch && next < agents.size(); ++k) agents[next++]->Start();
    if (next < agents.size()) {
      pacer.expires_after(std::chrono::milliseconds(10));
      pacer.async_wait([&](const boost::system::error_code&) { connect_some(); });
    }
  };
  connect_some();
  asio::steady_timer report(io);
  double all_registered_s = -1;
  std::function<void()> tick = [&] {
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (all_registered_s < 0 && stats.registered == static_cast<uint64_t>(o.agents))
      all_registered_s = t;
    printf(
        "{\"t_s\":%.1f,\"registered\":%llu,\"refused\":%llu,\"disconnects\":%llu,"
        "\"assigned\":%llu,\"completed\":%llu,\"heartbeats\":%llu}\n",
        t, (unsigned long long)stats.registered, (unsigned long long)stats.refused,
        (unsigned long long)stats.disconnects, (unsigned long long)stats.assigned,
        (unsigned long long)stats.completed, (unsigned long long)stats.heartbeats);
    fflush(stdout);
    if (t >= o.seconds) {
      io.stop();
      return;
    }
    report.expires_after(std::chrono::seconds(1));
    report.async_wait([&](const boost::system::error_code&) { tick(); });
  };
  report.expires_after(std::chrono::seconds(1));
  report.async_wait([&](const boost::system::error_code&) { tick(); });
  io.run();
  printf(
      "portolan-sim: %d agents (%s topology, %d PUs each), %llu registered%s, %llu jobs "
      "assigned, %llu completed, %llu disconnects\n",
      o.agents, topo.source().c_str(), topo.pus(), (unsigned long long)stats.registered,
      all_registered_s >= 0 ? absl::StrCat(" (all within ", all_registered_s, " s)").c_str() : "",
      (unsigned long long)stats.assigned, (unsigned long long)stats.completed,
      (unsigned long long)stats.disconnects);
  return 0;
}
