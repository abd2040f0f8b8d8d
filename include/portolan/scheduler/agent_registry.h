// SPDX-License-Identifier: Apache-2.0
#pragma once

// The agents the scheduler knows, one of the parts of Core: each agent's
// record (what it reported, its session, its free hardware) and its reliable
// outbox — Assign and Cancel carry a sequence number and are resent until
// the agent acknowledges them. Guarded by Core's mutex (see core.h for why
// there is one lock); not thread-safe by itself.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "portolan/placement/placement.h"
#include "portolan/topology/allocator.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/wire.pb.h"

namespace portolan::scheduler {

// One connected agent session as the core sees it. Implemented by the RPC
// server (one per TCP connection) and by a fake in tests.
class AgentLink {
 public:
  virtual ~AgentLink() = default;
  // Queues one envelope for sending, in order. Thread-safe, never blocks; a
  // closed link drops it silently (reliable messages are resent anyway).
  virtual void Send(const v1::Envelope& envelope) = 0;
  // Closes the session after what is queued. Thread-safe.
  virtual void Close(const std::string& reason) = 0;
};

// Messages one session read, in order, for Core::OnMessages.
struct Delivery {
  std::string agent_id;
  const AgentLink* link = nullptr;
  std::vector<v1::Envelope> envelopes;
};

struct AgentRecord {
  struct Pending {
    v1::Envelope envelope;
    absl::Time last_sent;
  };
  v1::Agent info;  // without its topology, which is kept serialized below
  // The agent's v1::Topology, serialized (about 1 KiB for 128 PUs, against
  // about 5 KiB parsed): the scheduler holds 10,000s of agents and reads it
  // only to answer the API and to store the agent. `topo` is what placement uses.
  std::string topology;
  std::shared_ptr<AgentLink> link;
  std::map<uint64_t, Pending> outbox;  // unacknowledged reliable messages
  absl::Time last_seen;
  std::unique_ptr<topology::AgentTopology> topo;  // free PUs, NUMA memory, GPUs
  // Kill-and-confirm: the agent went silent past its TTL while still
  // connected, so it may well still run its attempts. They were told to
  // stop (job id -> attempt); each ends lost, and may be restarted, once
  // the agent confirms it stopped, or when `confirm_by` passes.
  std::map<std::string, uint32_t> stopping;
  // Attempts it ran that were ended as lost with their fate unknown (job id
  // -> attempts), awaiting its word; kept in memory only, so that a
  // duplicate update never costs a store read on the RPC path.
  std::map<std::string, std::set<uint32_t>> unconfirmed;
  absl::Time confirm_by = absl::InfiniteFuture();
  // host:port where it serves datasets to other agents ("" none).
  std::string data_endpoint;
};

// `into` += `sign` × `r`, field by field (cpus, memory, gpus).
void AddResources(v1::Resources* into, const v1::Resources& r, int sign);

// An Assign of `job` without its events and earlier attempts (the agent has
// no use for them; a job's history can be long), made without copying them:
// they are moved out of `job` for the copy and back, so `job` is unchanged
// afterwards.
v1::Envelope AssignOf(v1::Job& job);

class AgentRegistry {
 public:
  using Map = std::map<std::string, AgentRecord>;

  // The records by agent id (a std::map: ordered, stable references).
  AgentRecord& operator[](const std::string& id) { return recs_[id]; }
  AgentRecord& at(const std::string& id) { return recs_.at(id); }
  Map::iterator find(const std::string& id) { return recs_.find(id); }
  Map::iterator upper_bound(const std::string& id) { return recs_.upper_bound(id); }
  Map::iterator begin() { return recs_.begin(); }
  Map::iterator end() { return recs_.end(); }
  Map::const_iterator begin() const { return recs_.begin(); }
  Map::const_iterator end() const { return recs_.end(); }
  size_t size() const { return recs_.size(); }

  // Queues `envelope` in the agent's outbox with the next sequence number
  // and sends it now if the agent is connected; resent until acknowledged.
  void SendReliable(AgentRecord& rec, v1::Envelope envelope, absl::Time now);
  // Asks the agent to stop attempt `attempt` of `job_id`, withdrawing an
  // Assign of that job still unacknowledged.
  // `grace` > 0: SIGTERM to SIGKILL on the agent (a preemption's).
  void SendCancel(AgentRecord& rec, const std::string& job_id, uint32_t attempt,
                  const std::string& reason, absl::Time now,
                  absl::Duration grace = absl::ZeroDuration());

  // Each agent as placement sees it (free resources and hardware), by site.
  std::map<std::string, std::vector<placement::AgentView>> BySite();

  // Capacity minus what placed and running jobs hold.
  static v1::Resources Free(const AgentRecord& rec);
  // Capacity and allocated counts from the agent's hardware state.
  static void SyncAllocated(AgentRecord& rec);
  // The agent as the API and the store see it: info plus its topology.
  static v1::Agent View(const AgentRecord& rec);
  // Why an agent's reported topology cannot be used ("" when it can).
  static std::string TopologyProblem(const v1::Topology& t);

 private:
  Map recs_;
  uint64_t next_seq_ = 0;  // of reliable messages, across agents
};

}  // namespace portolan::scheduler
