// SPDX-License-Identifier: Apache-2.0
#include "portolan/etcd/client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "portolan/base/files.h"
#include "portolan/base/log.h"

namespace portolan::etcd {

std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char c = static_cast<unsigned char>(prefix.back());
    if (c < 0xff) {
      prefix.back() = static_cast<char>(c + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

namespace {

// etcd before 3.5 (Debian 12 ships 3.4) reports its own context's deadline
// or cancellation — a member that cannot reach quorum in time — as code
// UNKNOWN with the Go error's text (etcd-io/etcd#12885 changed that): given
// the code it means, so that it is retried elsewhere and reported as a
// timeout, not as an unknown failure.
grpc::Status Normalize(grpc::Status st) {
  if (st.error_code() != grpc::StatusCode::UNKNOWN) return st;
  if (st.error_message() == "context deadline exceeded")
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, st.error_message());
  if (st.error_message() == "context canceled")
    return grpc::Status(grpc::StatusCode::CANCELLED, st.error_message());
  return st;
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& grpc_status, absl::string_view what) {
  const grpc::Status status = Normalize(grpc_status);
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

absl::StatusOr<Url> ParseUrl(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "etcd://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", url, "' is not an etcd URL: expected etcd://host:port[,host:port...]"));
  }
  Url out;
  out.prefix = "portolan";
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    out.prefix = std::string(absl::StripSuffix(rest.substr(slash + 1), "/"));
    rest = rest.substr(0, slash);
    if (out.prefix.empty() || out.prefix.find_first_of(" \t") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", url, "': the key prefix is empty"));
    }
  }
  for (absl::string_view ep : absl::StrSplit(rest, ',')) {
    size_t colon = ep.rfind(':');
    int port = 0;
    if (ep.empty() || colon == absl::string_view::npos || colon == 0 ||
        !absl::SimpleAtoi(ep.substr(colon + 1), &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", url, "': endpoint '", ep, "' is not host:port"));
    }
    out.endpoints.emplace_back(ep);
  }
  return out;
}

struct Client::Endpoint {
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Auth::Stub> auth;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
};

namespace {

absl::StatusOr<std::string> ReadWhole(const std::string& path, absl::string_view what) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": cannot read"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Errors after which another member may answer: this one is down, has no
// leader or did not answer in time.
bool TryAnother(const grpc::Status& st) {
  return st.error_code() == grpc::StatusCode::UNAVAILABLE ||
         st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

bool TokenRefused(const grpc::Status& st) {
  return st.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
         st.error_message().find("invalid auth token") != std::string::npos;
}

}  // namespace

Client::Client(Options options) : options_(std::move(options)) {}
Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(Options options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("etcd: no endpoints");
  if (!options.password_file.empty()) {
    absl::Status st = base::CheckNotWorldReadable(options.password_file, "etcd password file");
    if (!st.ok()) return st;
    auto pw = ReadWhole(options.password_file, "etcd password file");
    if (!pw.ok()) return pw.status();
    options.password = std::string(absl::StripTrailingAsciiWhitespace(*pw));
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!options.ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    auto ca = ReadWhole(options.ca_file, "etcd CA file");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    if (!options.cert_file.empty() || !options.key_file.empty()) {
      auto cert = ReadWhole(options.cert_file, "etcd client certificate");
      if (!cert.ok()) return cert.status();
      auto key = ReadWhole(options.key_file, "etcd client key");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(ssl);
  }
  std::unique_ptr<Client> c(new Client(std::move(options)));
  for (const std::string& address : c->options_.endpoints) {
    auto e = std::make_unique<Endpoint>();
    e->address = address;
    grpc::ChannelArguments args;
    // Reconnect quickly after a member comes back (the default backoff grows
    // to 120 s). The minimum stays: gRPC also uses it as the connect timeout.
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetMaxReceiveMessageSize(64 << 20);
    e->channel = grpc::CreateCustomChannel(address, creds, args);
    e->kv = etcdserverpb::KV::NewStub(e->channel);
    e->lease = etcdserverpb::Lease::NewStub(e->channel);
    e->auth = etcdserverpb::Auth::NewStub(e->channel);
    e->maintenance = etcdserverpb::Maintenance::NewStub(e->channel);
    c->endpoints_.push_back(std::move(e));
  }
  if (!c->options_.username.empty()) {
    absl::Status last;
    const absl::Time deadline = absl::Now() + c->options_.timeout;
    for (auto& e : c->endpoints_) {
      last = c->Login(*e, deadline);
      if (last.ok() || last.code() != absl::StatusCode::kUnavailable) break;
    }
    if (!last.ok() && last.code() != absl::StatusCode::kUnavailable &&
        last.code() != absl::StatusCode::kDeadlineExceeded) {
      return last;
    }
  }
  return c;
}

absl::Status Client::Login(Endpoint& e, absl::Time deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  etcdserverpb::AuthenticateRequest req;
  req.set_name(options_.username);
  req.set_password(options_.password);
  etcdserverpb::AuthenticateResponse resp;
  grpc::Status st = e.auth->Authenticate(&ctx, req, &resp);
  if (!st.ok()) return FromGrpc(st, absl::StrCat("etcd login as ", options_.username));
  absl::MutexLock lock(&mu_);
  token_ = resp.token();
  return absl::OkStatus();
}

template <typename Call>
absl::Status Client::Run(absl::string_view what, Call&& call) {
  const absl::Time deadline = absl::Now() + options_.timeout;
  const size_t n = endpoints_.size();
  size_t start;
  {
    absl::MutexLock lock(&mu_);
    start = current_;
  }
  grpc::Status last;
  bool relogged = false;
  for (size_t attempt = 0;; ++attempt) {
    const absl::Time now = absl::Now();
    if (now >= deadline) break;
    if (attempt > 0 && attempt % n == 0) {
      // Every member failed once: wait a little before the next round.
      absl::SleepFor(std::min(absl::Milliseconds(100), deadline - now));
      continue;
    }
    Endpoint& e = *endpoints_[(start + attempt) % n];
    grpc::ClientContext ctx;
    // One member that hangs (stopped, or without quorum) must leave time for the others.
    ctx.set_deadline(
        absl::ToChronoTime(std::min(deadline, absl::Now() + options_.timeout / (n > 1 ? 2 : 1))));
    {
      absl::MutexLock lock(&mu_);
      if (!token_.empty()) ctx.AddMetadata("token", token_);
    }
    last = Normalize(call(e, ctx));
    if (last.ok()) {
      absl::MutexLock lock(&mu_);
      current_ = (start + attempt) % n;
      return absl::OkStatus();
    }
    if (TokenRefused(last) && !options_.username.empty() && !relogged) {
      relogged = true;
      absl::Status st = Login(e, deadline);
      if (!st.ok()) return st;
      --attempt;  // the same endpoint again, with the new token
      continue;
    }
    if (!TryAnother(last)) break;
  }
  if (last.ok()) last = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no member answered");
  return FromGrpc(last, absl::StrCat("etcd ", what));
}

template <typename Resp, typename Req, typename Method>
absl::StatusOr<Resp> Client::Unary(absl::string_view what, const Req& req, Method method) {
  Resp resp;
  absl::Status st = Run(what, [&](Endpoint& e, grpc::ClientContext& ctx) {
    resp.Clear();
    return ((*e.kv).*method)(&ctx, req, &resp);
  });
  if (!st.ok()) return st;
  return resp;
}

absl::StatusOr<etcdserverpb::RangeResponse> Client::Range(const etcdserverpb::RangeRequest& req) {
  return Unary<etcdserverpb::RangeResponse>("range", req, &etcdserverpb::KV::Stub::Range);
}

absl::StatusOr<etcdserverpb::TxnResponse> Client::Txn(const etcdserverpb::TxnRequest& req) {
  return Unary<etcdserverpb::TxnResponse>("transaction", req, &etcdserverpb::KV::Stub::Txn);
}

absl::StatusOr<etcdserverpb::PutResponse> Client::Put(const etcdserverpb::PutRequest& req) {
  return Unary<etcdserverpb::PutResponse>("put", req, &etcdserverpb::KV::Stub::Put);
}

absl::StatusOr<int64_t> Client::GrantLease(absl::Duration ttl) {
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(std::max<int64_t>(1, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(ttl)))));
  etcdserverpb::LeaseGrantResponse resp;
  absl::Status st = Run("lease grant", [&](Endpoint& e, grpc::ClientContext& ctx) {
    resp.Clear();
    return e.lease->LeaseGrant(&ctx, req, &resp);
  });
  if (!st.ok()) return st;
  if (!resp.error().empty()) return absl::UnavailableError("etcd lease grant: " + resp.error());
  return resp.id();
}

absl::StatusOr<absl::Duration> Client::KeepAlive(int64_t lease) {
  etcdserverpb::LeaseKeepAliveResponse resp;
  absl::Status st = Run("lease keep-alive", [&](Endpoint& e, grpc::ClientContext& ctx) {
    // LeaseKeepAlive is a stream; one request and its answer renew the lease once.
    auto stream = e.lease->LeaseKeepAlive(&ctx);
    etcdserverpb::LeaseKeepAliveRequest req;
    req.set_id(lease);
    if (!stream->Write(req)) return stream->Finish();
    resp.Clear();
    if (!stream->Read(&resp)) return stream->Finish();
    stream->WritesDone();
    ctx.TryCancel();
    stream->Finish();  // CANCELLED, by us: the answer is in
    return grpc::Status::OK;
  });
  if (!st.ok()) return st;
  return absl::Seconds(resp.ttl());
}

absl::Status Client::RevokeLease(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(lease);
  etcdserverpb::LeaseRevokeResponse resp;
  return Run("lease revoke", [&](Endpoint& e, grpc::ClientContext& ctx) {
    return e.lease->LeaseRevoke(&ctx, req, &resp);
  });
}

std::vector<absl::StatusOr<etcdserverpb::StatusResponse>> Client::MemberStatus() {
  std::vector<absl::StatusOr<etcdserverpb::StatusResponse>> out;
  for (auto& e : endpoints_) {
    grpc::ClientContext ctx;
    ctx.set_deadline(
        absl::ToChronoTime(absl::Now() + std::min(options_.timeout, absl::Seconds(1))));
    {
      absl::MutexLock lock(&mu_);
      if (!token_.empty()) ctx.AddMetadata("token", token_);
    }
    etcdserverpb::StatusRequest req;
    etcdserverpb::StatusResponse resp;
    grpc::Status st = e->maintenance->Status(&ctx, req, &resp);
    if (st.ok()) {
      out.emplace_back(std::move(resp));
    } else {
      out.emplace_back(FromGrpc(st, absl::StrCat("etcd member ", e->address)));
    }
  }
  return out;
}

}  // namespace portolan::etcd
