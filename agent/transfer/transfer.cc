// SPDX-License-Identifier: Apache-2.0
#include "portolan/transfer/transfer.h"

#include <openssl/evp.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/tls/tls.h"

namespace portolan::transfer {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using SslStream = asio::ssl::stream<tcp::socket&>;

constexpr uint32_t kMaxRequestBytes = 64 * 1024;
constexpr uint32_t kMaxResponseBytes = 4 * 1024 * 1024;
constexpr size_t kChunk = 256 * 1024;

// Blocking reads and writes give up after `timeout` (a stalled peer).
void SetTimeouts(tcp::socket& s, absl::Duration timeout) {
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void WriteMessage(SslStream& s, const google::protobuf::Message& m) {
  const std::string body = m.SerializeAsString();
  const uint32_t n = static_cast<uint32_t>(body.size());
  const unsigned char len[4] = {static_cast<unsigned char>(n >> 24),
                                static_cast<unsigned char>(n >> 16),
                                static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
  asio::write(s, asio::buffer(len, 4));
  asio::write(s, asio::buffer(body));
}

// False when the frame is over `max` or does not parse.
bool ReadMessage(SslStream& s, uint32_t max, google::protobuf::Message* m) {
  unsigned char len[4];
  asio::read(s, asio::buffer(len, 4));
  const uint32_t n = (uint32_t{len[0]} << 24) | (uint32_t{len[1]} << 16) | (uint32_t{len[2]} << 8) |
                     uint32_t{len[3]};
  if (n > max) return false;
  std::string body(n, '\0');
  asio::read(s, asio::buffer(body));
  return m->ParseFromString(body);
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  void Update(const char* p, size_t n) { EVP_DigestUpdate(ctx_, p, n); }
  std::string Hex() {
    unsigned char d[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, d, &n);
    return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(d), n));
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace

DataServer::DataServer(std::shared_ptr<asio::ssl::context> ctx, ServerOptions options)
    : ctx_(std::move(ctx)), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<DataServer>> DataServer::Start(
    const std::string& listen, std::shared_ptr<asio::ssl::context> ctx, ServerOptions options) {
  auto hp = base::ParseHostPort(listen);
  if (!hp.ok()) return hp.status();
  std::unique_ptr<DataServer> s(new DataServer(std::move(ctx), std::move(options)));
  boost::system::error_code ec;
  const tcp::endpoint ep(asio::ip::make_address(hp->host, ec), hp->port);
  if (ec)
    return absl::InvalidArgumentError(absl::StrCat("data endpoint ", listen, ": ", ec.message()));
  s->acceptor_.open(ep.protocol(), ec);
  if (!ec) s->acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s->acceptor_.bind(ep, ec);
  if (!ec) s->acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("data endpoint ", listen, ": cannot listen: ", ec.message()));
  }
  s->port_ = s->acceptor_.local_endpoint().port();
  s->accept_thread_ = std::thread([p = s.get()] { p->Accept(); });
  return s;
}

DataServer::~DataServer() {
  stopping_ = true;
  // A blocking accept() wakes on shutdown(2) of its socket, not on close.
  ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  boost::system::error_code ec;
  acceptor_.close(ec);
  absl::MutexLock lock(&active_->mu);
  active_->mu.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &active_->n));
}

void DataServer::Accept() {
  while (!stopping_) {
    tcp::socket socket(io_);
    boost::system::error_code ec;
    acceptor_.accept(socket, ec);
    if (ec) {
      if (stopping_) return;
      continue;
    }
    {
      absl::MutexLock lock(&active_->mu);
      if (active_->n >= options_.max_connections) continue;  // closed: too many at once
      ++active_->n;
    }
    std::thread([this, active = active_, s = std::move(socket)]() mutable {
      Serve(std::move(s));
      absl::MutexLock lock(&active->mu);
      --active->n;
    }).detach();
  }
}

std::string DataServer::Check(const v1::DataRequest& request, const std::string& peer_agent,
                              v1::TransferGrant* grant, std::vector<std::string>* files,
                              std::string* root) {
  base::Clock* clock = options_.clock != nullptr ? options_.clock : base::RealClock();
  auto g = grant::Verify(request.grant(), options_.keys ? options_.keys() : grant::PublicKeys{},
                         clock->Now());
  if (!g.ok()) return std::string(g.status().message());
  *grant = *g;
  if (g->destination_agent() != peer_agent) {
    return absl::StrCat("grant ", g->id(), " is for agent ", g->destination_agent(),
                        ", but the caller's certificate names ", peer_agent);
  }
  if (g->source_site() != options_.site) {
    return absl::StrCat("grant ", g->id(), " is for data at ", g->source_site(), ", not at ",
                        options_.site);
  }
  if (!base::IsSafeRelativePath(g->path()))
    return absl::StrCat("grant ", g->id(), " names an unsafe path");
  std::error_code ec;
  const fs::path base = fs::canonical(options_.data_dir, ec);
  if (ec) return "this agent has no data directory";
  const fs::path target = fs::canonical(base / g->path(), ec);
  const std::string b = base.string() + "/";
  if (ec) return absl::StrCat("dataset ", g->dataset(), ": no such data at ", g->path());
  if (!absl::StartsWith(target.string(), b))
    return absl::StrCat("dataset ", g->dataset(), ": ", g->path(), " leaves the data directory");
  *root = target.string();
  auto listed = ListFiles(*root);
  if (!listed.ok()) return absl::StrCat("dataset ", g->dataset(), ": ", listed.status().message());
  *files = std::move(*listed);
  return "";
}

absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& root) {
  std::error_code ec;
  const fs::path target(root);
  if (fs::is_regular_file(fs::symlink_status(target, ec))) return std::vector<std::string>{""};
  if (!fs::is_directory(target, ec))
    return absl::NotFoundError(absl::StrCat(root, " is not a file or directory"));
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(target, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file() && !it->is_symlink())
      files.push_back(fs::relative(it->path(), target).string());
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", root, ": ", ec.message()));
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<TreeDigest> DigestTree(const std::string& root) {
  auto files = ListFiles(root);
  if (!files.ok()) return files.status();
  TreeDigest d;
  Sha256 hash;
  std::vector<char> buf(kChunk);
  for (const std::string& f : *files) {
    const fs::path p = f.empty() ? fs::path(root) : fs::path(root) / f;
    std::ifstream in(p, std::ios::binary);
    if (!in) return absl::InternalError(absl::StrCat("cannot read ", p.string()));
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const size_t n = static_cast<size_t>(in.gcount());
      if (n == 0) break;
      hash.Update(buf.data(), n);
      d.bytes += n;
    }
    ++d.files;
  }
  d.sha256 = hash.Hex();
  return d;
}

void DataServer::Serve(tcp::socket socket) {
  SetTimeouts(socket, options_.io_timeout);
  SslStream tls(socket, *ctx_);
  v1::ServedTransfer report;
  try {
    tls.handshake(asio::ssl::stream_base::server);
    auto id = tls::PeerIdentity(tls.native_handle());
    if (!id.ok()) return;  // no verified certificate: nothing to report
    report.set_peer_agent(id->common_name);
    v1::DataRequest request;
    if (!ReadMessage(tls, kMaxRequestBytes, &request)) return;
    v1::TransferGrant grant;
    std::vector<std::string> files;
    std::string root;
    const std::string refused = Check(request, id->common_name, &grant, &files, &root);
    report.set_grant(grant.id());
    report.set_job_id(grant.job_id());
    report.set_dataset(grant.dataset());
    *report.mutable_time() =
        base::ToProto((options_.clock ? options_.clock : base::RealClock())->Now());
    v1::DataResponse response;
    if (!refused.empty()) {
      response.set_error(refused);
      report.set_refused(true);
      report.set_reason(refused);
      spdlog::warn("data: refused {} from agent {}: {}", grant.dataset(), id->common_name, refused);
      WriteMessage(tls, response);
      if (options_.on_served) options_.on_served(report);
      return;
    }
    response.set_ok(true);
    for (const std::string& f : files) {
      v1::DataFile* df = response.add_files();
      df->set_path(f);
      const fs::path p = f.empty() ? fs::path(root) : fs::path(root) / f;
      std::error_code ec;
      df->set_size(fs::file_size(p, ec));
      response.set_bytes(response.bytes() + df->size());
    }
    WriteMessage(tls, response);
    Sha256 hash;
    std::vector<char> buf(kChunk);
    uint64_t sent = 0;
    for (const v1::DataFile& df : response.files()) {
      std::ifstream in(df.path().empty() ? fs::path(root) : fs::path(root) / df.path(),
                       std::ios::binary);
      uint64_t left = df.size();
      while (left > 0 && in) {
        in.read(buf.data(), static_cast<std::streamsize>(std::min<uint64_t>(left, buf.size())));
        const size_t n = static_cast<size_t>(in.gcount());
        if (n == 0) break;
        hash.Update(buf.data(), n);
        asio::write(tls, asio::buffer(buf.data(), n));
        left -= n;
        sent += n;
      }
      if (left > 0) throw std::runtime_error(absl::StrCat(df.path(), " shrank while it was sent"));
    }
    report.set_bytes(sent);
    report.set_sha256(hash.Hex());
    boost::system::error_code ec;
    tls.shutdown(ec);
    spdlog::info("data: served {} ({} bytes) to agent {} under grant {}", grant.dataset(), sent,
                 id->common_name, grant.id());
  } catch (const std::exception& e) {
    // A broken or timed-out connection: reported when a grant was read.
    if (report.grant().empty()) return;
    report.set_refused(false);
    report.set_reason(absl::StrCat("transfer broken: ", e.what()));
  }
  if (options_.on_served) options_.on_served(report);
}

namespace {

// One try against `endpoint`. `refused` is set when the source answered
// with a refusal (no other source is tried then).
absl::StatusOr<PullResult> PullFrom(const std::string& endpoint, const v1::StageSource& source,
                                    const std::string& dest, asio::ssl::context& ctx,
                                    const Progress& progress, absl::Duration io_timeout,
                                    bool* refused) {
  auto hp = base::ParseHostPort(endpoint);
  if (!hp.ok()) return hp.status();
  asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect(tcp::endpoint(asio::ip::make_address(hp->host, ec), hp->port), ec);
  if (ec) return absl::UnavailableError(absl::StrCat(endpoint, ": ", ec.message()));
  SetTimeouts(socket, io_timeout);
  SslStream tls(socket, ctx);
  const auto started = std::chrono::steady_clock::now();
  PullResult out;
  try {
    tls.handshake(asio::ssl::stream_base::client);
    auto id = tls::PeerIdentity(tls.native_handle());
    if (!id.ok())
      return absl::UnavailableError(absl::StrCat(endpoint, ": ", id.status().message()));
    if (id->unit != source.site()) {
      return absl::PermissionDeniedError(absl::StrCat(endpoint, " presents a certificate of ",
                                                      id->subject, ", not an agent at ",
                                                      source.site()));
    }
    out.from_agent = id->common_name;
    v1::DataRequest request;
    *request.mutable_grant() = source.grant();
    WriteMessage(tls, request);
    v1::DataResponse response;
    if (!ReadMessage(tls, kMaxResponseBytes, &response))
      return absl::UnavailableError(absl::StrCat(endpoint, ": a malformed answer"));
    if (!response.ok()) {
      *refused = true;
      return absl::PermissionDeniedError(
          absl::StrCat("agent ", out.from_agent, " refused: ", response.error()));
    }
    std::error_code fec;
    fs::create_directories(fs::path(dest).parent_path(), fec);
    Sha256 hash;
    std::vector<char> buf(kChunk);
    for (const v1::DataFile& df : response.files()) {
      if (!df.path().empty() && !base::IsSafeRelativePath(df.path()))
        return absl::PermissionDeniedError(
            absl::StrCat("the source sent an unsafe path ", df.path()));
      const fs::path p = df.path().empty() ? fs::path(dest) : fs::path(dest) / df.path();
      if (!df.path().empty()) fs::create_directories(p.parent_path(), fec);
      std::ofstream f(p, std::ios::binary | std::ios::trunc);
      if (!f) return absl::InternalError(absl::StrCat("cannot write ", p.string()));
      uint64_t left = df.size();
      while (left > 0) {
        const size_t n =
            tls.read_some(asio::buffer(buf.data(), std::min<uint64_t>(left, buf.size())));
        hash.Update(buf.data(), n);
        f.write(buf.data(), static_cast<std::streamsize>(n));
        left -= n;
        out.bytes += n;
        if (progress) progress(out.bytes, response.bytes());
      }
      if (!f.flush()) return absl::InternalError(absl::StrCat("cannot write ", p.string()));
      ++out.files;
    }
    out.sha256 = hash.Hex();
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(endpoint, ": transfer broken: ", e.what()));
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return out;
}

}  // namespace

absl::StatusOr<PullResult> Pull(const v1::StageSource& source, const std::string& dest,
                                asio::ssl::context& ctx, const Progress& progress,
                                absl::Duration io_timeout) {
  std::error_code ec;
  if (fs::exists(dest, ec))
    return absl::AlreadyExistsError(absl::StrCat(dest, " exists: a staging target must be new"));
  if (source.sources().empty())
    return absl::UnavailableError(absl::StrCat("no agent at ", source.site(), " serves data"));
  std::vector<std::string> failures;
  for (const std::string& endpoint : source.sources()) {
    bool refused = false;
    auto r = PullFrom(endpoint, source, dest, ctx, progress, io_timeout, &refused);
    if (r.ok()) return r;
    fs::remove_all(dest, ec);  // no partial copy
    if (refused || absl::IsPermissionDenied(r.status())) return r.status();
    failures.emplace_back(r.status().message());
  }
  return absl::UnavailableError(absl::StrCat("dataset ", source.dataset(),
                                             " could not be pulled from ", source.site(), ": ",
                                             absl::StrJoin(failures, "; ")));
}

}  // namespace portolan::transfer
