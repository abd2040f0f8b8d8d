// SPDX-License-Identifier: Apache-2.0
#include "portolan/ha/standby.h"

#include "portolan/rest/cluster_api.h"

namespace portolan::ha {

Standby::Standby(rest::ServerOptions rest, rpc::RpcOptions rpc, const std::atomic<Member*>* member)
    : rest_(std::move(rest)) {
  auto leader = [member] {
    Member* m = member->load();
    return m != nullptr ? m->leader() : v1::ClusterMember();
  };
  auto view = [member] {
    Member* m = member->load();
    return m != nullptr ? m->View() : v1::ClusterView();
  };
  AddMetrics(registry_, member);
  rest::RegisterStandbyApi(rest_, leader, view, &registry_);
  rpc.standby_leader = [leader] { return leader().rpc_addr(); };
  rpc_ = std::make_unique<rpc::RpcServer>(io_, nullptr, std::move(rpc));
}

Standby::~Standby() { Stop(); }

absl::Status Standby::Start(base::HostPort& rest, base::HostPort& rpc) {
  if (absl::Status st = rest_.Start(rest); !st.ok()) return st;
  rest = rest_.bound();
  if (absl::Status st = rpc_->Listen(rpc); !st.ok()) {
    rest_.Stop();
    return st;
  }
  rpc = rpc_->bound();
  io_thread_ = std::thread([this] { io_.run(); });
  return absl::OkStatus();
}

void Standby::Stop() {
  if (!io_thread_.joinable()) return;
  rest_.Stop();
  boost::asio::post(io_, [this] {
    rpc_->Stop();
    io_.stop();
  });
  io_thread_.join();
}

}  // namespace portolan::ha
