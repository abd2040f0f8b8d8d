// SPDX-License-Identifier: Apache-2.0
// Staging throughput between two agents on loopback (docs/datasets.md): a
// dataset of --mib MiB pulled under a signed grant over mutual TLS, with the
// source's checks, both sides' SHA-256 and the write to disk (transfer::Pull
// against transfer::DataServer, as the agents run them), against a plain TLS
// copy of the same file with the same certificates and TLS settings on the
// same machine: one to a file (like for like) and one read into memory and
// dropped (the TLS ceiling). --runs each, best of them reported; one JSON
// line, then a summary. tests/bench/staging_bench.sh adds `openssl s_time`.
//
//   staging_bench [--mib 256] [--runs 3]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <utility>  // Boost 1.74 asio/awaitable.hpp needs std::exchange under C++20
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "../support/test_ca.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/grant/grant.h"
#include "portolan/tls/tls.h"
#include "portolan/transfer/transfer.h"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kChunk = 256 * 1024;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// A plain TLS copy: the server sends `file` on one mutual-TLS connection;
// the client writes it to `dest` ("" = keep nothing). Returns seconds, or
// -1 when it failed.
double TlsCopy(asio::ssl::context& server_ctx, asio::ssl::context& client_ctx,
               const std::string& file, const std::string& dest, uint64_t size) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const uint16_t port = acceptor.local_endpoint().port();
  std::thread server([&] {
    try {
      tcp::socket s(io);
      acceptor.accept(s);
      asio::ssl::stream<tcp::socket&> tls(s, server_ctx);
      tls.handshake(asio::ssl::stream_base::server);
      std::ifstream in(file, std::ios::binary);
      std::vector<char> buf(kChunk);
      while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        if (in.gcount() > 0) asio::write(tls, asio::buffer(buf.data(), in.gcount()));
      }
      boost::system::error_code ec;
      tls.shutdown(ec);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "staging_bench: TLS copy server: %s\n", e.what());
    }
  });
  double took = -1;
  try {
    const auto start = Clock::now();
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    asio::ssl::stream<tcp::socket&> tls(s, client_ctx);
    tls.handshake(asio::ssl::stream_base::client);
    std::ofstream out;
    if (!dest.empty()) out.open(dest, std::ios::binary | std::ios::trunc);
    std::vector<char> buf(kChunk);
    uint64_t got = 0;
    while (got < size) {
      const size_t n = tls.read_some(asio::buffer(buf));
      if (!dest.empty()) out.write(buf.data(), static_cast<std::streamsize>(n));
      got += n;
    }
    if (!dest.empty()) out.close();
    took = Seconds(start);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "staging_bench: TLS copy client: %s\n", e.what());
  }
  server.join();
  return took;
}

}  // namespace

int main(int argc, char** argv) {
  int mib = 256, runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    int* target = flag == "--mib" ? &mib : flag == "--runs" ? &runs : nullptr;
    if (target == nullptr || !absl::SimpleAtoi(argv[i + 1], target) || *target < 1) {
      std::fprintf(stderr, "usage: staging_bench [--mib N] [--runs N]\n");
      return 2;
    }
  }
  const fs::path dir =
      fs::temp_directory_path() / absl::StrCat("portolan-staging-bench-", getpid());
  fs::create_directories(dir / "data/reads");
  auto path = [&](const std::string& name) { return (dir / name).string(); };
  portolan::testing::TestCa ca;
  ca.WriteCa(path("ca.pem"));
  ca.IssueAgentFiles("lg1", "lingang-idc-1", path("lg1.pem"), path("lg1.key"));
  ca.IssueAgentFiles("hk1", "hongkong-1", path("hk1.pem"), path("hk1.key"));
  const uint64_t size = uint64_t(mib) << 20;
  {
    std::mt19937_64 rng(26);
    std::ofstream f(path("data/reads/part-1"), std::ios::binary);
    std::vector<uint64_t> block(kChunk / 8);
    for (uint64_t done = 0; done < size; done += kChunk) {
      for (auto& w : block) w = rng();
      f.write(reinterpret_cast<const char*>(block.data()), kChunk);
    }
  }
  auto signer = portolan::grant::Signer::LoadOrCreate(path("grant.pem"));
  auto server_ctx =
      portolan::tls::MakeServerContext({path("lg1.pem"), path("lg1.key"), path("ca.pem")});
  auto client_ctx =
      portolan::tls::MakeClientContext({path("hk1.pem"), path("hk1.key"), path("ca.pem")});
  if (!signer.ok() || !server_ctx.ok() || !client_ctx.ok()) {
    std::fprintf(stderr, "staging_bench: cannot set up keys and TLS\n");
    return 1;
  }
  portolan::transfer::ServerOptions o;
  o.site = "lingang-idc-1";
  o.data_dir = path("data");
  o.keys = [&] {
    return portolan::grant::PublicKeys{{(*signer)->key_id(), (*signer)->public_key()}};
  };
  auto server = portolan::transfer::DataServer::Start("127.0.0.1:0", *server_ctx, o);
  if (!server.ok()) {
    std::fprintf(stderr, "staging_bench: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }

  double best_pull = 1e18, best_file = 1e18, best_mem = 1e18;
  for (int r = 0; r < runs; ++r) {
    portolan::v1::TransferGrant g;
    g.set_id(absl::StrCat("grant-", r));
    g.set_job_id("job-bench");
    g.set_dataset("reads");
    g.set_source_site("lingang-idc-1");
    g.set_path("reads");
    g.set_destination_agent("hk1");
    *g.mutable_expires() = portolan::base::ToProto(absl::Now() + absl::Hours(1));
    portolan::v1::StageSource src;
    src.set_dataset("reads");
    src.set_site("lingang-idc-1");
    src.add_sources(absl::StrCat("127.0.0.1:", (*server)->port()));
    *src.mutable_grant() = (*signer)->Sign(g);
    fs::remove_all(path("pulled"));
    const auto start = Clock::now();
    auto pulled = portolan::transfer::Pull(src, path("pulled"), **client_ctx, nullptr);
    const double took = Seconds(start);
    if (!pulled.ok() || pulled->bytes != size) {
      std::fprintf(stderr, "staging_bench: pull failed: %s\n",
                   std::string(pulled.status().message()).c_str());
      return 1;
    }
    best_pull = std::min(best_pull, took);
    const double file =
        TlsCopy(**server_ctx, **client_ctx, path("data/reads/part-1"), path("copied"), size);
    const double mem = TlsCopy(**server_ctx, **client_ctx, path("data/reads/part-1"), "", size);
    if (file < 0 || mem < 0) return 1;
    best_file = std::min(best_file, file);
    best_mem = std::min(best_mem, mem);
  }
  server->reset();
  fs::remove_all(dir);
  const double mb = static_cast<double>(size) / 1e6;
  const double pull = mb / best_pull, file = mb / best_file, mem = mb / best_mem;
  std::printf(
      "{\"bench\":\"staging\",\"mib\":%d,\"runs\":%d,\"pull_mb_s\":%.1f,\"tls_copy_file_mb_s\":%."
      "1f,"
      "\"tls_copy_mem_mb_s\":%.1f,\"pull_vs_tls_file\":%.3f,\"pull_vs_tls_mem\":%.3f}\n",
      mib, runs, pull, file, mem, pull / file, pull / mem);
  std::printf(
      "staging %d MiB, best of %d: Portolan pull %.1f MB/s (grant, mutual TLS, SHA-256 both "
      "sides, to disk); plain TLS copy to disk %.1f MB/s (ratio %.2f); to memory %.1f MB/s "
      "(ratio %.2f)\n",
      mib, runs, pull, file, pull / file, mem, pull / mem);
  return 0;
}
