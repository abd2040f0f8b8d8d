// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace portolan::etcd {

// How to reach an etcd cluster. Endpoints are host:port pairs of its members'
// client URLs; TLS is used when `ca_file` is set (then `cert_file`/`key_file`
// are the client certificate, if the cluster asks for one); `username` with
// `password` logs in to a cluster with authentication enabled.
struct Options {
  std::vector<std::string> endpoints;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string username;
  std::string password;
  // Read into `password` by Connect when set (must not be world-readable).
  std::string password_file;
  // Each call's deadline, across all the endpoints it tries.
  absl::Duration timeout = absl::Seconds(5);
};

// Parses a store URL `etcd://host:port[,host:port...][/prefix]` into
// endpoints and a key prefix (default "portolan"). InvalidArgument says what
// is wrong.
struct Url {
  std::vector<std::string> endpoints;
  std::string prefix;
};
absl::StatusOr<Url> ParseUrl(absl::string_view url);

// A client of etcd's v3 gRPC API (the API every etcd client uses; the JSON
// gateway is a translation of it). One gRPC channel per endpoint; a call goes
// to the endpoint that answered last, and on UNAVAILABLE (member down, or
// cut off from its cluster's quorum) or a deadline moves on to the next one
// within the same overall deadline, as etcd's Go client does. A call that
// timed out may still have been applied: callers make their writes
// idempotent (puts of whole records) or check afterwards (elections).
//
// Thread-safe; gRPC multiplexes concurrent calls over each channel.
class Client {
 public:
  // Opens channels (lazily connected) and, with a username, logs in once to
  // check the credentials. Fails on bad options or a refused login; an
  // unreachable cluster is not an error here (the first call reports it).
  static absl::StatusOr<std::unique_ptr<Client>> Connect(Options options);

  absl::StatusOr<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& request);
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& request);
  absl::StatusOr<etcdserverpb::PutResponse> Put(const etcdserverpb::PutRequest& request);

  // A lease of `ttl` (rounded up to whole seconds, at least 1); its id.
  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl);
  // Renews a lease once; returns its TTL now, zero if it had expired.
  absl::StatusOr<absl::Duration> KeepAlive(int64_t lease);
  absl::Status RevokeLease(int64_t lease);

  // Every member's status as its endpoint reports it (an error for those not
  // answering), in the order of options().endpoints.
  std::vector<absl::StatusOr<etcdserverpb::StatusResponse>> MemberStatus();

  const Options& options() const { return options_; }

  ~Client();

 private:
  explicit Client(Options options);
  struct Endpoint;
  // Runs `call` on endpoints starting at the last good one until one answers
  // or the deadline passes; `what` names the call in errors.
  template <typename Call>
  absl::Status Run(absl::string_view what, Call&& call);
  // One unary KV call (`method`: &KV::Stub::Range, ::Txn, ::Put) through Run.
  template <typename Resp, typename Req, typename Method>
  absl::StatusOr<Resp> Unary(absl::string_view what, const Req& req, Method method);
  absl::Status Login(Endpoint& e, absl::Time deadline);

  const Options options_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  absl::Mutex mu_;
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
  std::string token_ ABSL_GUARDED_BY(mu_);  // auth token when logged in
};

// The first key after every key that starts with `prefix`: the range_end
// that makes a range request cover the prefix.
std::string PrefixEnd(std::string prefix);

// gRPC status -> absl::Status with the same code and message, prefixed.
absl::Status FromGrpc(const grpc::Status& status, absl::string_view what);

}  // namespace portolan::etcd
