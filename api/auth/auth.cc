// SPDX-License-Identifier: Apache-2.0
#include "portolan/auth/auth.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "portolan/codec/codec.h"

namespace portolan::auth {

bool Principal::may_see_site(const std::string& site) const {
  if (is_admin()) return true;
  return is_operator() && std::find(sites.begin(), sites.end(), site) != sites.end();
}

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string NewToken() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return "";
  std::string out;
  absl::WebSafeBase64Escape(absl::string_view(reinterpret_cast<const char*>(raw), sizeof raw),
                            &out);
  return "ptk_" + out;
}

absl::Status TokenStore::Load(const std::string& path) {
  v1::TokensFile file;
  if (absl::Status st = codec::LoadFile(path, &file); !st.ok()) return st;
  auto map = std::make_shared<std::map<std::string, Principal>>();
  std::set<std::string> names;
  for (int i = 0; i < file.tokens_size(); ++i) {
    const v1::Token& t = file.tokens(i);
    const std::string f = absl::StrCat("tokens[", i, "]");
    auto bad = [&](const std::string& field, const std::string& why) {
      return codec::InvalidField(f + "." + field,
                                 absl::StrCat(path, ": ", f, ".", field, ": ", why));
    };
    if (t.name().empty()) return bad("name", "every token needs a name");
    if (!names.insert(t.name()).second)
      return bad("name", absl::StrCat("duplicate name '", t.name(), "'"));
    if (t.sha256().size() != 64 ||
        t.sha256().find_first_not_of("0123456789abcdef") != std::string::npos) {
      return bad("sha256", "must be 64 lowercase hex digits (portolan token new prints it)");
    }
    if (t.role() == v1::Token::role_unspecified)
      return bad("role", "role is required (tenant, operator, admin, data_officer)");
    if (t.role() == v1::Token::tenant && t.tenant_id().empty())
      return bad("tenant_id", "a tenant token names its tenant");
    if (t.role() == v1::Token::operator_ && t.sites_size() == 0)
      return bad("sites", "an operator token names its sites");
    if (t.revoked()) continue;
    Principal p;
    p.name = t.name();
    p.role = t.role();
    p.tenant = t.tenant_id();
    p.sites.assign(t.sites().begin(), t.sites().end());
    (*map)[t.sha256()] = std::move(p);
  }
  std::lock_guard<std::mutex> lock(mu_);
  by_hash_ = std::move(map);
  return absl::OkStatus();
}

absl::StatusOr<Principal> TokenStore::Authenticate(const std::string& bearer) const {
  std::shared_ptr<const std::map<std::string, Principal>> map;
  {
    std::lock_guard<std::mutex> lock(mu_);
    map = by_hash_;
  }
  if (bearer.empty())
    return absl::UnauthenticatedError("missing bearer token (Authorization: Bearer ...)");
  if (map != nullptr) {
    auto it = map->find(Sha256Hex(bearer));
    if (it != map->end()) return it->second;
  }
  return absl::UnauthenticatedError("unknown or revoked token");
}

size_t TokenStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_hash_ ? by_hash_->size() : 0;
}

bool RateLimiter::Allow(const std::string& key, absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = buckets_.emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  b.tokens = std::min(burst_, b.tokens + absl::ToDoubleSeconds(now - b.last) * rate_);
  b.last = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

}  // namespace portolan::auth
