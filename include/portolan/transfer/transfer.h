// SPDX-License-Identifier: Apache-2.0
#pragma once

// Dataset staging between agents (docs/datasets.md): the source agent's data
// endpoint and the destination's pull, agent to agent over mutual TLS with
// the agents' own certificates. The source serves a byte only under a
// transfer grant the scheduler signed for the caller: signature, expiry,
// destination (the caller's certificate), source site and path are checked
// first, and every answer, served or refused, is reported for the audit.
//
// The protocol, on one connection: the client sends a DataRequest, the server
// a DataResponse (refused with the reason, or the files with their sizes),
// then the files' bytes in that order. Each message is framed by a 4-byte
// big-endian length. Blocking sockets with send/receive timeouts, one thread
// per transfer, at most `max_connections` at once.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>  // Boost 1.74 asio/awaitable.hpp needs std::exchange under C++20
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "portolan/base/clock.h"
#include "portolan/grant/grant.h"
#include "portolan/v1/dataset.pb.h"
#include "portolan/v1/wire.pb.h"

namespace portolan::transfer {

struct ServerOptions {
  std::string site;      // this agent's site: grants must name it as the source
  std::string data_dir;  // datasets live under it; nothing outside is served
  // The scheduler's grant keys as this agent knows them now (RegisterAck).
  std::function<grant::PublicKeys()> keys;
  // Every answer, served or refused (called from the transfer's thread).
  std::function<void(const v1::ServedTransfer&)> on_served;
  base::Clock* clock = nullptr;  // for grant expiry; the real clock when null
  int max_connections = 16;
  absl::Duration io_timeout = absl::Seconds(30);  // per read or write
};

// The data endpoint. Thread-safe; the destructor stops accepting and waits
// for the transfers in flight.
class DataServer {
 public:
  // Listens on `listen` ("host:port"; port 0 picks one). `ctx` must require
  // and verify client certificates (tls::MakeServerContext).
  static absl::StatusOr<std::unique_ptr<DataServer>> Start(
      const std::string& listen, std::shared_ptr<boost::asio::ssl::context> ctx,
      ServerOptions options);
  ~DataServer();
  uint16_t port() const { return port_; }

 private:
  DataServer(std::shared_ptr<boost::asio::ssl::context> ctx, ServerOptions options);
  void Accept();
  void Serve(boost::asio::ip::tcp::socket socket);
  // The refusal reason, or "" once `files` and `root` say what to send.
  std::string Check(const v1::DataRequest& request, const std::string& peer_agent,
                    v1::TransferGrant* grant, std::vector<std::string>* files, std::string* root);

  std::shared_ptr<boost::asio::ssl::context> ctx_;
  const ServerOptions options_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_{io_};
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  // Transfers in flight. Shared with their threads, which outlive neither the
  // server (the destructor waits) nor this count.
  struct Active {
    absl::Mutex mu;
    int n ABSL_GUARDED_BY(mu) = 0;
  };
  std::shared_ptr<Active> active_ = std::make_shared<Active>();
};

// The files of a dataset as the data endpoint sends them: `root` itself when
// it is a regular file (one entry, ""), else the regular files below it,
// symbolic links not followed, relative paths in byte order.
absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& root);

// Their size and SHA-256 over their bytes in that order: what a transfer of
// the same tree reports (PullResult), so a kept output and a later copy of
// it can be compared.
struct TreeDigest {
  uint64_t bytes = 0;
  uint64_t files = 0;
  std::string sha256;
};
absl::StatusOr<TreeDigest> DigestTree(const std::string& root);

struct PullResult {
  uint64_t bytes = 0;
  uint64_t files = 0;
  std::string sha256;  // over the files' bytes in order (what the source hashed)
  double seconds = 0;
  std::string from_agent;  // the source agent's certificate name
};
// Bytes done and the total, as they arrive.
using Progress = std::function<void(uint64_t done, uint64_t total)>;

// Pulls `source` under its grant from the first of `source.sources` that
// answers, into `dest` (made; it must not exist yet). The server must show an
// agent certificate of `source.site` signed by the CA `ctx` trusts. A refusal
// is PermissionDenied with the source's reason; Unavailable when no source
// could be reached. A partial copy is removed.
absl::StatusOr<PullResult> Pull(const v1::StageSource& source, const std::string& dest,
                                boost::asio::ssl::context& ctx, const Progress& progress,
                                absl::Duration io_timeout = absl::Seconds(30));

}  // namespace portolan::transfer
