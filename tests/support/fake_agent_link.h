// SPDX-License-Identifier: Apache-2.0
#pragma once

// Test doubles for the core's agent side, linked only into tests.
#include <string>
#include <vector>

#include "portolan/scheduler/agent_registry.h"
#include "portolan/v1/wire.pb.h"

namespace portolan::testing {

// Records what the core sends to an agent.
class FakeLink : public scheduler::AgentLink {
 public:
  void Send(const v1::Envelope& e) override { sent.push_back(e); }
  void Close(const std::string& reason) override { closed = reason; }
  std::vector<v1::Envelope> sent;
  std::string closed;
  template <typename Pred>
  std::vector<v1::Envelope> Find(Pred p) const {
    std::vector<v1::Envelope> out;
    for (const auto& e : sent)
      if (p(e)) out.push_back(e);
    return out;
  }
  std::vector<v1::Envelope> Assigns() const {
    return Find([](const auto& e) { return e.has_assign(); });
  }
  std::vector<v1::Envelope> Cancels() const {
    return Find([](const auto& e) { return e.has_cancel(); });
  }
};

// What the scheduler's RPC session does with a message, less the socket: it
// encodes it (scheduler/rpc/server.cc encodes a frame) and keeps nothing. For
// benchmarks, where FakeLink's copy of every message would be measured too.
class EncodingLink : public scheduler::AgentLink {
 public:
  void Send(const v1::Envelope& e) override { bytes += e.SerializeAsString().size(); }
  void Close(const std::string&) override {}
  size_t bytes = 0;
};

// A Register of agent `id` at `site`: `pus` single-PU cores split evenly
// over `numa_nodes` NUMA nodes (in order), 16 GiB each.
inline v1::Register SimpleRegister(const std::string& id, uint32_t pus, const std::string& site,
                                   uint32_t numa_nodes = 1) {
  v1::Register reg;
  reg.set_agent_id(id);
  reg.set_site(site);
  v1::Topology* t = reg.mutable_topology();
  t->set_pus(pus);
  t->set_memory_mb(16384 * numa_nodes);
  for (uint32_t n = 0; n < numa_nodes; ++n) {
    auto* node = t->add_numa_nodes();
    node->set_os_index(n);
    node->set_memory_mb(16384);
  }
  for (uint32_t i = 0; i < pus; ++i) {
    v1::Core* c = t->add_cores();
    c->set_index(i);
    c->set_numa(static_cast<int32_t>(i * numa_nodes / pus));
    c->add_pus(i);
  }
  return reg;
}

}  // namespace portolan::testing
