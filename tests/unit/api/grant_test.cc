// SPDX-License-Identifier: Apache-2.0
// Transfer grants: what the scheduler signs verifies at the source, and a
// forged, altered, expired or unknown-key grant does not.
#include "portolan/grant/grant.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "../../support/grant_fixtures.h"
#include "portolan/base/strings.h"

namespace portolan::grant {
namespace {

class GrantTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/portolan-grant-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  v1::TransferGrant Grant(absl::Time expires) { return testing::SampleGrant(expires); }
  std::string dir_;
  const absl::Time now_ = absl::FromUnixSeconds(1'790'000'000);
};

TEST_F(GrantTest, ASignedGrantVerifiesWithItsKeyUntilItExpires) {
  auto signer = Signer::LoadOrCreate(dir_ + "/grant-key.pem");
  ASSERT_TRUE(signer.ok()) << signer.status();
  EXPECT_EQ((*signer)->public_key().size(), 32u);
  EXPECT_EQ((*signer)->key_id().size(), 16u);
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/grant-key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);  // private

  const PublicKeys keys{{(*signer)->key_id(), (*signer)->public_key()}};
  const v1::SignedGrant sg = (*signer)->Sign(Grant(now_ + absl::Hours(1)));
  auto g = Verify(sg, keys, now_);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->destination_agent(), "hk1");
  EXPECT_EQ(g->dataset_version(), 2u);

  // Expired.
  auto late = Verify(sg, keys, now_ + absl::Hours(2));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(late.status().message().find("expired"), std::string::npos) << late.status();

  // The same key read back from its file signs grants the first one verifies.
  auto again = Signer::LoadOrCreate(dir_ + "/grant-key.pem");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->key_id(), (*signer)->key_id());
  EXPECT_TRUE(Verify((*again)->Sign(Grant(now_ + absl::Hours(1))), keys, now_).ok());
}

TEST_F(GrantTest, AlteredForgedOrForeignGrantsAreRefused) {
  auto signer = Signer::LoadOrCreate(dir_ + "/a.pem");
  auto other = Signer::LoadOrCreate(dir_ + "/b.pem");
  ASSERT_TRUE(signer.ok() && other.ok());
  const PublicKeys keys{{(*signer)->key_id(), (*signer)->public_key()}};
  v1::SignedGrant sg = (*signer)->Sign(Grant(now_ + absl::Hours(1)));

  // Re-targeted: the bytes say another destination, the signature is old.
  v1::TransferGrant retarget = Grant(now_ + absl::Hours(1));
  retarget.set_destination_agent("evil");
  v1::SignedGrant altered = sg;
  altered.set_grant(retarget.SerializeAsString());
  auto st = Verify(altered, keys, now_);
  EXPECT_EQ(st.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(st.status().message().find("does not verify"), std::string::npos) << st.status();

  // Signed by a key the agent does not know, even when named as a known id.
  v1::SignedGrant foreign = (*other)->Sign(Grant(now_ + absl::Hours(1)));
  EXPECT_FALSE(Verify(foreign, keys, now_).ok());
  foreign.set_key_id((*signer)->key_id());
  EXPECT_FALSE(Verify(foreign, keys, now_).ok());

  // No signature, a truncated one.
  v1::SignedGrant bare = sg;
  bare.clear_signature();
  EXPECT_FALSE(Verify(bare, keys, now_).ok());
  bare.set_signature(sg.signature().substr(0, 63));
  EXPECT_FALSE(Verify(bare, keys, now_).ok());
}

TEST_F(GrantTest, AKeyFileOthersCanReadOrThatIsNotEd25519IsRefused) {
  const std::string path = dir_ + "/k.pem";
  ASSERT_TRUE(Signer::LoadOrCreate(path).ok());
  chmod(path.c_str(), 0644);
  EXPECT_FALSE(Signer::FromPemFile(path).ok());
  const std::string junk = dir_ + "/junk.pem";
  std::ofstream(junk) << "not a key\n";
  chmod(junk.c_str(), 0600);
  auto st = Signer::FromPemFile(junk);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("Ed25519"), std::string::npos) << st.status();
}

}  // namespace
}  // namespace portolan::grant
