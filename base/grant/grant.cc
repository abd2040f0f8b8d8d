// SPDX-License-Identifier: Apache-2.0
#include "portolan/grant/grant.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "portolan/base/files.h"
#include "portolan/base/strings.h"

namespace portolan::grant {
namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kSignatureBytes = 64;

std::string KeyId(const std::string& public_key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(public_key.data()), public_key.size(), digest);
  return absl::BytesToHexString(
             absl::string_view(reinterpret_cast<const char*>(digest), sizeof digest))
      .substr(0, 16);
}

// The bytes signed: the grant's deterministic serialization.
std::string Canonical(const v1::TransferGrant& g) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  g.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

}  // namespace

struct Signer::Key {
  EVP_PKEY* pkey = nullptr;
  ~Key() { EVP_PKEY_free(pkey); }
};

Signer::Signer(std::unique_ptr<Key> key) : key_(std::move(key)) {
  unsigned char raw[kKeyBytes];
  size_t len = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(key_->pkey, raw, &len) == 1)
    public_key_.assign(reinterpret_cast<const char*>(raw), len);
  key_id_ = KeyId(public_key_);
}

Signer::~Signer() = default;

absl::StatusOr<std::unique_ptr<Signer>> Signer::FromPemFile(const std::string& path) {
  if (absl::Status st = base::CheckNotWorldReadable(path, "grant key"); !st.ok()) return st;
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr)
    return absl::NotFoundError(absl::StrCat("grant key ", path, ": cannot be read"));
  auto key = std::make_unique<Key>();
  key->pkey = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (key->pkey == nullptr || EVP_PKEY_get_id(key->pkey) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grant key ", path,
        ": not an Ed25519 private key in PEM (make one with: openssl genpkey -algorithm ed25519)"));
  }
  return std::unique_ptr<Signer>(new Signer(std::move(key)));
}

absl::StatusOr<std::unique_ptr<Signer>> Signer::LoadOrCreate(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0) return FromPemFile(path);
  auto key = std::make_unique<Key>();
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  const bool made =
      ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &key->pkey) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!made) return absl::InternalError("cannot generate an Ed25519 grant key");
  const std::string tmp = path + ".tmp";
  const mode_t old = umask(077);
  FILE* f = fopen(tmp.c_str(), "w");
  umask(old);
  if (f == nullptr)
    return absl::PermissionDeniedError(absl::StrCat("grant key ", path, ": cannot be written"));
  const bool written =
      PEM_write_PrivateKey(f, key->pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  const bool flushed = fflush(f) == 0 && fsync(fileno(f)) == 0;
  fclose(f);
  if (!written || !flushed || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("grant key ", path, ": cannot be written"));
  }
  return std::unique_ptr<Signer>(new Signer(std::move(key)));
}

v1::SignedGrant Signer::Sign(const v1::TransferGrant& grant) const {
  v1::SignedGrant out;
  out.set_grant(Canonical(grant));
  out.set_key_id(key_id_);
  unsigned char sig[kSignatureBytes];
  size_t len = sizeof sig;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx != nullptr && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_->pkey) == 1 &&
      EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(out.grant().data()),
                     out.grant().size()) == 1) {
    out.set_signature(reinterpret_cast<const char*>(sig), len);
  }
  EVP_MD_CTX_free(ctx);
  return out;  // an empty signature (OpenSSL failed) verifies nowhere
}

absl::StatusOr<v1::TransferGrant> Verify(const v1::SignedGrant& sg, const PublicKeys& keys,
                                         absl::Time now) {
  auto key = keys.find(sg.key_id());
  if (key == keys.end()) {
    return absl::PermissionDeniedError(
        absl::StrCat("grant signed with key '", base::CleanForMessage(sg.key_id()),
                     "', which is not one of the scheduler's grant keys this agent knows"));
  }
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(key->second.data()),
      key->second.size());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      pkey != nullptr && ctx != nullptr && sg.signature().size() == kSignatureBytes &&
      EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pkey) == 1 &&
      EVP_DigestVerify(
          ctx, reinterpret_cast<const unsigned char*>(sg.signature().data()), sg.signature().size(),
          reinterpret_cast<const unsigned char*>(sg.grant().data()), sg.grant().size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  if (!ok)
    return absl::PermissionDeniedError("grant signature does not verify (forged or altered)");
  v1::TransferGrant g;
  if (!g.ParseFromString(sg.grant())) return absl::PermissionDeniedError("grant does not parse");
  const absl::Time expires = base::FromProto(g.expires());
  if (!(now < expires)) {
    return absl::PermissionDeniedError(
        absl::StrCat("grant ", base::CleanForMessage(g.id()), " expired at ",
                     absl::FormatTime(absl::RFC3339_sec, expires, absl::UTCTimeZone())));
  }
  return g;
}

}  // namespace portolan::grant
