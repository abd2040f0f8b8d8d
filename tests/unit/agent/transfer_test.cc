// SPDX-License-Identifier: Apache-2.0
// Staging between agents over real mutual TLS on loopback: a granted pull
// copies the dataset byte for byte; a forged, expired, re-targeted or
// foreign-site grant, a path leaving the data directory, and an agent other
// than the grant's destination are refused at the source, which reports
// every answer.
#include "portolan/transfer/transfer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "../../support/grant_fixtures.h"
#include "../../support/test_ca.h"
#include "portolan/base/strings.h"
#include "portolan/tls/tls.h"

namespace portolan::transfer {
namespace {

namespace fs = std::filesystem;

class TransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("portolan-transfer-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data/reads/2026q3/sub");
    ASSERT_TRUE(ca_.ok());
    ASSERT_TRUE(ca_.WriteCa(Path("ca.pem")));
    for (auto [id, site] : {std::pair{"lg1", "lingang-idc-1"}, std::pair{"hk1", "hongkong-1"},
                            std::pair{"evil", "hongkong-1"}}) {
      ASSERT_TRUE(ca_.IssueAgentFiles(id, site, Path(std::string(id) + ".pem"),
                                      Path(std::string(id) + ".key")));
    }
    std::ofstream(dir_ / "data/reads/2026q3/a.txt") << "GATTACA\n";
    std::mt19937 rng(7);
    std::string blob(3 * 1024 * 1024 + 17, '\0');
    for (char& ch : blob) ch = static_cast<char>(rng());
    std::ofstream(dir_ / "data/reads/2026q3/sub/b.bin", std::ios::binary) << blob;
    std::ofstream(dir_ / "secret") << "not data\n";
    fs::create_symlink(dir_ / "secret", dir_ / "data/escape");

    auto signer = grant::Signer::LoadOrCreate(Path("grant.pem"));
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_ = std::move(*signer);
    auto server_ctx = tls::MakeServerContext({Path("lg1.pem"), Path("lg1.key"), Path("ca.pem")});
    ASSERT_TRUE(server_ctx.ok()) << server_ctx.status();
    ServerOptions o;
    o.site = "lingang-idc-1";
    o.data_dir = (dir_ / "data").string();
    o.keys = [this] { return grant::PublicKeys{{signer_->key_id(), signer_->public_key()}}; };
    o.on_served = [this](const v1::ServedTransfer& t) {
      absl::MutexLock lock(&mu_);
      served_.push_back(t);
    };
    auto server = DataServer::Start("127.0.0.1:0", *server_ctx, o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  std::shared_ptr<boost::asio::ssl::context> Client(const std::string& id) {
    auto ctx = tls::MakeClientContext({Path(id + ".pem"), Path(id + ".key"), Path("ca.pem")});
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    return *ctx;
  }
  v1::TransferGrant Grant() { return testing::SampleGrant(absl::Now() + absl::Hours(1)); }
  v1::StageSource Source(const v1::SignedGrant& sg) {
    v1::StageSource s;
    s.set_dataset("reads-2026q3");
    s.set_site("lingang-idc-1");
    s.add_sources("127.0.0.1:" + std::to_string(server_->port()));
    *s.mutable_grant() = sg;
    return s;
  }
  // Waits until the source has reported `n` answers (it reports after its
  // last write, so shortly after the client is done).
  bool WaitForServed(size_t n = 1) {
    for (int i = 0; i < 500; ++i) {
      {
        absl::MutexLock lock(&mu_);
        if (served_.size() >= n) return true;
      }
      usleep(10000);
    }
    return false;
  }
  // The source's last report.
  v1::ServedTransfer LastServed() {
    absl::MutexLock lock(&mu_);
    return served_.empty() ? v1::ServedTransfer() : served_.back();
  }
  // Pulls as `agent` with `g`; the refusal message, or "" on success.
  std::string Refusal(const v1::SignedGrant& sg, const std::string& agent = "hk1") {
    auto ctx = Client(agent);
    auto r = Pull(Source(sg), Path("in-" + std::to_string(++pulls_)), *ctx, nullptr);
    EXPECT_TRUE(WaitForServed(pulls_));
    if (r.ok()) return "";
    EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
    EXPECT_FALSE(fs::exists(Path("in-" + std::to_string(pulls_)))) << "partial copy left";
    return std::string(r.status().message());
  }

  fs::path dir_;
  testing::TestCa ca_;
  std::unique_ptr<grant::Signer> signer_;
  std::unique_ptr<DataServer> server_;
  absl::Mutex mu_;
  std::vector<v1::ServedTransfer> served_;
  int pulls_ = 0;
};

TEST_F(TransferTest, AGrantedPullCopiesTheDatasetByteForByte) {
  auto ctx = Client("hk1");
  uint64_t last_done = 0, total = 0;
  auto r = Pull(Source(signer_->Sign(Grant())), Path("inputs/reads-2026q3"), *ctx,
                [&](uint64_t done, uint64_t all) {
                  EXPECT_GE(done, last_done);
                  last_done = done;
                  total = all;
                });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->files, 2u);
  EXPECT_EQ(r->bytes, 8u + 3 * 1024 * 1024 + 17);
  EXPECT_EQ(total, r->bytes);
  EXPECT_EQ(last_done, r->bytes);
  EXPECT_EQ(r->from_agent, "lg1");
  for (const char* f : {"a.txt", "sub/b.bin"}) {
    std::ifstream a(dir_ / "data/reads/2026q3" / f, std::ios::binary);
    std::ifstream b(dir_ / "inputs/reads-2026q3" / f, std::ios::binary);
    const std::string x((std::istreambuf_iterator<char>(a)), {});
    const std::string y((std::istreambuf_iterator<char>(b)), {});
    EXPECT_EQ(x, y) << f;
  }
  // The source hashed what it sent; the destination what it received.
  ASSERT_TRUE(WaitForServed());
  const v1::ServedTransfer t = LastServed();
  EXPECT_FALSE(t.refused());
  EXPECT_EQ(t.peer_agent(), "hk1");
  EXPECT_EQ(t.grant(), "grant-1");
  EXPECT_EQ(t.bytes(), r->bytes);
  EXPECT_EQ(t.sha256(), r->sha256);
  EXPECT_EQ(r->sha256.size(), 64u);
  // The tree's digest on either side says the same (a kept output and a
  // later copy of it compare so).
  for (const char* tree : {"data/reads/2026q3", "inputs/reads-2026q3"}) {
    auto d = DigestTree(Path(tree));
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->sha256, r->sha256) << tree;
    EXPECT_EQ(d->bytes, r->bytes) << tree;
    EXPECT_EQ(d->files, 2u) << tree;
  }
  // Symbolic links are neither listed nor hashed.
  std::filesystem::create_symlink("/etc/passwd", dir_ / "inputs/reads-2026q3/passwd");
  EXPECT_EQ(DigestTree(Path("inputs/reads-2026q3"))->sha256, r->sha256);
  EXPECT_EQ(DigestTree(Path("nowhere")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TransferTest, ForgedExpiredRetargetedAndForeignGrantsAreRefusedAtTheSource) {
  // Forged: the bytes say another path, the signature is the old one's.
  v1::SignedGrant forged = signer_->Sign(Grant());
  v1::TransferGrant other = Grant();
  other.set_path("reads");
  forged.set_grant(other.SerializeAsString());
  EXPECT_NE(Refusal(forged).find("does not verify"), std::string::npos);
  EXPECT_TRUE(LastServed().refused());

  v1::TransferGrant expired = Grant();
  *expired.mutable_expires() = base::ToProto(absl::Now() - absl::Minutes(1));
  EXPECT_NE(Refusal(signer_->Sign(expired)).find("expired"), std::string::npos);

  // A valid grant for hk1 presented by another agent.
  EXPECT_NE(Refusal(signer_->Sign(Grant()), "evil").find("is for agent hk1"), std::string::npos);
  EXPECT_EQ(LastServed().peer_agent(), "evil");

  v1::TransferGrant elsewhere = Grant();
  elsewhere.set_source_site("hongqiao-1");
  EXPECT_NE(Refusal(signer_->Sign(elsewhere)).find("not at lingang-idc-1"), std::string::npos);

  v1::TransferGrant up = Grant();
  up.set_path("../secret");
  EXPECT_NE(Refusal(signer_->Sign(up)).find("unsafe path"), std::string::npos);
  v1::TransferGrant link = Grant();
  link.set_path("escape");
  EXPECT_NE(Refusal(signer_->Sign(link)).find("leaves the data directory"), std::string::npos);

  // Signed by a key the source does not know.
  auto stranger = grant::Signer::LoadOrCreate(Path("stranger.pem"));
  ASSERT_TRUE(stranger.ok());
  EXPECT_NE(Refusal((*stranger)->Sign(Grant())).find("not one of the scheduler's grant keys"),
            std::string::npos);
  absl::MutexLock lock(&mu_);
  EXPECT_EQ(served_.size(), 7u);
  for (const auto& t : served_) EXPECT_TRUE(t.refused()) << t.reason();
}

TEST_F(TransferTest, NoReachableSourceIsUnavailableAndAWrongSiteServerIsNotTrusted) {
  auto ctx = Client("hk1");
  v1::StageSource s = Source(signer_->Sign(Grant()));
  s.clear_sources();
  s.add_sources("127.0.0.1:1");
  auto r = Pull(s, Path("in-x"), *ctx, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  // The data is at hongkong-1 by the scheduler's word, but the server is an
  // agent of lingang-idc-1: the destination does not take its bytes.
  v1::StageSource wrong = Source(signer_->Sign(Grant()));
  wrong.set_site("hongkong-1");
  r = Pull(wrong, Path("in-y"), *ctx, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
  EXPECT_FALSE(fs::exists(Path("in-y")));
}

}  // namespace
}  // namespace portolan::transfer
