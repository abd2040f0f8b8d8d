// SPDX-License-Identifier: Apache-2.0
#pragma once

// Transfer grants (docs/datasets.md): the scheduler signs what one agent may
// pull from the agents of one site for one job attempt; the source agent
// verifies before it serves a byte. Ed25519 over the grant's deterministic
// serialization, on OpenSSL. A grant key never leaves the scheduler; agents
// hold only the public half, by key id.

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "portolan/v1/dataset.pb.h"

namespace portolan::grant {

// Public keys by key id (raw 32-byte Ed25519 keys), as RegisterAck carries.
using PublicKeys = std::map<std::string, std::string>;

// Holds one Ed25519 private key. Immutable after construction: thread-safe.
class Signer {
 public:
  // A PEM private key (PKCS#8, `openssl genpkey -algorithm ed25519`).
  // The file must not be readable by others.
  static absl::StatusOr<std::unique_ptr<Signer>> FromPemFile(const std::string& path);
  // The key in `path`, made there first (mode 0600) when the file is missing.
  static absl::StatusOr<std::unique_ptr<Signer>> LoadOrCreate(const std::string& path);
  ~Signer();

  // The first 16 hex digits of the public key's SHA-256.
  const std::string& key_id() const { return key_id_; }
  const std::string& public_key() const { return public_key_; }  // raw, 32 bytes

  v1::SignedGrant Sign(const v1::TransferGrant& grant) const;

 private:
  struct Key;
  explicit Signer(std::unique_ptr<Key> key);
  std::unique_ptr<Key> key_;
  std::string key_id_;
  std::string public_key_;
};

// The grant inside `signed_grant` when its signature verifies with one of
// `keys` and it has not expired at `now`. PermissionDenied saying why not.
absl::StatusOr<v1::TransferGrant> Verify(const v1::SignedGrant& signed_grant,
                                         const PublicKeys& keys, absl::Time now);

}  // namespace portolan::grant
