// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "portolan/v1/auth.pb.h"

namespace portolan::auth {

// Who is calling, as established from a bearer token.
struct Principal {
  std::string name;
  v1::Token::Role role = v1::Token::role_unspecified;
  std::string tenant;              // role tenant
  std::vector<std::string> sites;  // role operator
  bool is_admin() const { return role == v1::Token::admin; }
  bool is_tenant() const { return role == v1::Token::tenant; }
  bool is_operator() const { return role == v1::Token::operator_; }
  bool is_data_officer() const { return role == v1::Token::data_officer; }
  bool may_see_site(const std::string& site) const;
};

// Lowercase hex SHA-256.
std::string Sha256Hex(const std::string& data);
// A new random token (32 bytes from the OS, URL-safe).
std::string NewToken();

// Bearer tokens from the tokens file, looked up by hash. Load() validates the
// whole file first and swaps it in only when valid, so a bad reload keeps the
// tokens in force. Thread-safe.
class TokenStore {
 public:
  absl::Status Load(const std::string& path);
  // Unauthenticated (no such token, revoked) or the principal.
  absl::StatusOr<Principal> Authenticate(const std::string& bearer) const;
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const std::map<std::string, Principal>> by_hash_;
};

// Per-principal token buckets: `rate` requests per second, bursts of `burst`.
class RateLimiter {
 public:
  RateLimiter(double rate, double burst) : rate_(rate), burst_(burst) {}
  // True when `key` may make a request at `now`.
  bool Allow(const std::string& key, absl::Time now);

 private:
  struct Bucket {
    double tokens;
    absl::Time last;
  };
  std::mutex mu_;
  double rate_, burst_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace portolan::auth
