// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <utility>  // Boost 1.74 asio needs std::exchange under C++20

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "portolan/base/clock.h"
#include "portolan/base/strings.h"
#include "portolan/executor/executor.h"
#include "portolan/grant/grant.h"
#include "portolan/tls/tls.h"
#include "portolan/v1/wire.pb.h"
#include "portolan/wire/frame.h"

namespace portolan::agent {

struct AgentOptions {
  std::string id;
  std::string site;
  std::map<std::string, std::string> labels;
  // Every scheduler's agent RPC address (one, or all the members of an HA
  // cluster). The agent connects to one at a time, moving to the next when a
  // connection fails, and straight to the leader a standby names.
  std::vector<base::HostPort> schedulers{{"127.0.0.1", 7081}};
  absl::Duration reconnect_min = absl::Milliseconds(200);
  absl::Duration reconnect_max = absl::Seconds(10);
  absl::Duration resend_interval = absl::Seconds(2);
  size_t max_frame_bytes = wire::kDefaultMaxFrameBytes;
  executor::ExecutorOptions executor;
  // Re-discovers the machine's topology (real hardware only); a change (a
  // GPU gone, memory offlined) is sent with the next heartbeat.
  std::function<absl::StatusOr<v1::Topology>()> rediscover;
  absl::Duration rediscover_interval = absl::Seconds(60);
  // Mutual TLS (tls::MakeClientContext): the scheduler's certificate must
  // come from the CA and name the host of the address connected to. Null:
  // plain TCP.
  std::shared_ptr<boost::asio::ssl::context> tls;
  // Observes every job update the agent reports (on the io thread).
  std::function<void(const v1::JobUpdate&)> on_update;
  // Data staging (docs/datasets.md): the datasets at this agent's site
  // (--data-dir), and where this agent serves them to others (host:port,
  // told to the scheduler; "" serves none).
  std::string data_dir;
  std::string data_endpoint;
  // The site's cache of pulled inputs (under data_dir) holds at most this
  // many bytes, the most recently used entries (0: no bound).
  uint64_t staging_cache_max_bytes = 0;
};

// The agent's side of the protocol: connects out to the scheduler, registers
// with its topology and the jobs it still knows, heartbeats, runs Assigns on
// its Executor and reports JobUpdates until each is acknowledged. Reconnects
// with exponential backoff. Runs entirely on the given io_context (one
// thread); Start/Stop must be called on that thread or before it runs.
class AgentClient {
 public:
  // `on_fatal` is called (on the io thread) when the scheduler refuses the
  // registration: retrying cannot help, so the process should exit.
  // `clock` (not owned; outlives this) drives heartbeat, resend and
  // re-discovery times and the executor's; timers still wait in real time.
  AgentClient(boost::asio::io_context& io, AgentOptions options, v1::Topology topology,
              std::function<void(const std::string&)> on_fatal,
              base::Clock* clock = base::RealClock());
  ~AgentClient();

  // Re-adopts what an earlier agent process started (Executor::Recover);
  // call once, before Start.
  absl::StatusOr<executor::Recovery> Recover() { return executor_->Recover(); }
  void Start();
  // Closes the connection; running jobs keep running or are stopped as
  // options.executor.keep_running_on_exit says.
  void Stop();
  // State for metrics; call on the io thread.
  bool registered() const { return registered_; }
  uint64_t reconnects() const { return reconnects_; }
  const executor::Executor* executor() const { return executor_.get(); }  // null once stopped
  const v1::Topology& topology() const { return topology_; }

  // Data staging (staging.cc). Any thread: a transfer this agent served or
  // refused as a source, reported to the scheduler for the audit.
  void ReportServed(const v1::ServedTransfer& transfer);
  // Any thread: the scheduler's grant keys this agent was given (every key
  // seen since start, so grants of an earlier leader still verify).
  grant::PublicKeys GrantKeys() const;

 private:
  void Connect();
  void ScheduleReconnect(const std::string& why);
  // The address connected to (or being connected to).
  const base::HostPort& scheduler() const { return options_.schedulers[current_]; }
  void Handshake(uint64_t gen);
  void OnConnected();
  void Read();
  void Handle(const v1::Envelope& env);
  void Send(const v1::Envelope& env);
  void Write();
  // A read or write failed: says why (a refused certificate in particular)
  // and disconnects.
  void ConnectionFailed(const boost::system::error_code& ec);
  void Disconnect(const std::string& why);
  void Heartbeat();
  void ResendTick();
  void QueueUpdate(v1::JobUpdate update);
  void QueueReliable(v1::Envelope env);
  // An Assign with inputs: pulled (or linked) on a thread of its own, then
  // started with PORTOLAN_INPUTS; false for a duplicate.
  bool StartStaging(const v1::Assign& assign);
  void FinishStaging(const std::string& key, v1::Job job, const std::string& dir,
                     const absl::Status& status, std::vector<v1::StagedInput> inputs);
  // Removes the attempt's <dir>/work/inputs on a thread of its own, without
  // following a link at any step (it lies in the job's tree, where the job
  // may have put one).
  void RemoveStagedInputs(const std::string& job_id, uint32_t attempt);
  // An Assign's outputs, written beside the attempt (<attempt>/outputs.pb) so
  // that an agent restarted while the job runs still knows where they go.
  void RecordOutputs(const v1::Assign& assign);
  // A succeeded attempt with outputs: moved into --data-dir and measured on
  // a thread, then reported with the update (true: the update is taken).
  bool KeepOutputs(const v1::JobUpdate& update);

  boost::asio::io_context& io_;
  base::Clock* const clock_;
  AgentOptions options_;
  v1::Topology topology_;
  std::function<void(const std::string&)> on_fatal_;
  std::unique_ptr<executor::Executor> executor_;

  boost::asio::ip::tcp::socket socket_;  // while connecting
  std::shared_ptr<tls::Stream> stream_;  // once connected
  boost::asio::steady_timer reconnect_timer_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer resend_timer_;
  wire::FrameDecoder decoder_;
  std::array<char, 64 * 1024> buf_;
  std::deque<std::string> write_queue_;
  bool connected_ = false;
  bool registered_ = false;
  bool stopped_ = false;
  uint64_t generation_ = 0;  // bumps on every (re)connect; stale callbacks check it
  absl::Duration backoff_;
  size_t current_ = 0;  // index into options_.schedulers
  absl::Duration heartbeat_interval_ = absl::Seconds(5);
  absl::Time last_received_;
  double measured_rtt_ms_ = 0;
  absl::Time last_rediscover_;
  uint64_t next_seq_ = 0;
  uint64_t reconnects_ = 0;
  std::map<uint64_t, std::chrono::steady_clock::time_point> heartbeats_in_flight_;
  struct Pending {
    v1::Envelope envelope;
    absl::Time last_sent;
  };
  std::map<uint64_t, Pending> outbox_;  // unacknowledged JobUpdates and TransferReports
  struct Staging {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
  };
  std::map<std::string, Staging> staging_;      // by "job/attempt"; io thread only
  std::map<std::string, std::thread> keeping_;  // outputs being kept; io thread only
  mutable absl::Mutex keys_mu_;
  grant::PublicKeys grant_keys_ ABSL_GUARDED_BY(keys_mu_);
};

}  // namespace portolan::agent
