// SPDX-License-Identifier: Apache-2.0
#pragma once

// A certificate authority in memory (OpenSSL, ECDSA P-256) for tests and
// benchmarks: it issues the certificate shapes deploy/dev-ca.sh issues
// (an agent: CN = id, OU = site, clientAuth and serverAuth (its data endpoint); the scheduler:
// serverAuth for localhost and 127.0.0.1), as PEM files or straight into a client context, so
// 10,000 emulated agents need no 20,000 files. Header-only; not thread-safe (one per thread).
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ssl.hpp>

namespace portolan::testing {

class TestCa {
 public:
  // A new self-signed CA named `name`.
  explicit TestCa(const std::string& name = "portolan-test-ca") {
    key_ = EVP_EC_gen("P-256");
    ca_ = NewCert(key_, {{"O", "Portolan test"}, {"CN", name}}, nullptr, 3650);
    Extend(ca_, {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                 {NID_key_usage, "critical,keyCertSign,cRLSign"}});
    X509_sign(ca_, key_, EVP_sha256());
  }
  // The CA in `cert_file` with its private key in `key_file`; ok() tells.
  TestCa(const std::string& cert_file, const std::string& key_file) {
    if (FILE* f = fopen(cert_file.c_str(), "r")) {
      ca_ = PEM_read_X509(f, nullptr, nullptr, nullptr);
      fclose(f);
    }
    if (FILE* f = fopen(key_file.c_str(), "r")) {
      key_ = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
      fclose(f);
    }
  }
  ~TestCa() {
    X509_free(ca_);
    EVP_PKEY_free(key_);
  }
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  bool ok() const { return ca_ != nullptr && key_ != nullptr; }

  // Writes the CA certificate to `path`.
  bool WriteCa(const std::string& path) const { return WritePem(path, ca_, nullptr); }

  // An agent certificate and key, as PEM files.
  bool IssueAgentFiles(const std::string& id, const std::string& site, const std::string& cert_path,
                       const std::string& key_path, long days = 1) {
    Leaf leaf = IssueAgent(id, site, days);
    return leaf.cert != nullptr && WritePem(cert_path, leaf.cert.get(), nullptr) &&
           WritePem(key_path, nullptr, leaf.key.get());
  }
  // The scheduler's certificate (localhost, 127.0.0.1, ::1) and key.
  bool IssueServerFiles(const std::string& cert_path, const std::string& key_path) {
    Leaf leaf = Issue({{"O", "Portolan"}, {"OU", "scheduler"}, {"CN", "portolan-scheduler"}},
                      {{NID_basic_constraints, "CA:FALSE"},
                       {NID_key_usage, "critical,digitalSignature"},
                       {NID_ext_key_usage, "serverAuth"},
                       {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"}},
                      1);
    return leaf.cert != nullptr && WritePem(cert_path, leaf.cert.get(), nullptr) &&
           WritePem(key_path, nullptr, leaf.key.get());
  }
  // A client context presenting a fresh agent certificate and verifying the
  // server against this CA; null if OpenSSL failed.
  std::shared_ptr<boost::asio::ssl::context> AgentContext(const std::string& id,
                                                          const std::string& site) {
    Leaf leaf = IssueAgent(id, site, 1);
    if (leaf.cert == nullptr) return nullptr;
    auto ctx = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_client);
    SSL_CTX* native = ctx->native_handle();
    if (X509_STORE_add_cert(SSL_CTX_get_cert_store(native), ca_) != 1 ||
        SSL_CTX_use_certificate(native, leaf.cert.get()) != 1 ||
        SSL_CTX_use_PrivateKey(native, leaf.key.get()) != 1)
      return nullptr;
    ctx->set_verify_mode(boost::asio::ssl::verify_peer);
    return ctx;
  }

 private:
  struct Leaf {
    std::unique_ptr<X509, decltype(&X509_free)> cert{nullptr, X509_free};
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{nullptr, EVP_PKEY_free};
  };
  using Names = std::vector<std::pair<const char*, std::string>>;
  using Extensions = std::vector<std::pair<int, const char*>>;

  Leaf IssueAgent(const std::string& id, const std::string& site, long days) {
    return Issue({{"O", "Portolan"}, {"OU", site}, {"CN", id}},
                 {{NID_basic_constraints, "CA:FALSE"},
                  {NID_key_usage, "critical,digitalSignature"},
                  {NID_ext_key_usage, "clientAuth,serverAuth"}},
                 days);
  }

  Leaf Issue(const Names& subject, const Extensions& extensions, long days) {
    Leaf leaf;
    if (!ok()) return leaf;
    leaf.key.reset(EVP_EC_gen("P-256"));
    if (leaf.key == nullptr) return leaf;
    X509* cert = NewCert(leaf.key.get(), subject, ca_, days);
    if (cert == nullptr) return leaf;
    if (!Extend(cert, extensions) || X509_sign(cert, key_, EVP_sha256()) <= 0) {
      X509_free(cert);
      return leaf;
    }
    leaf.cert.reset(cert);
    return leaf;
  }

  X509* NewCert(EVP_PKEY* key, const Names& subject, X509* issuer, long days) {
    X509* cert = X509_new();
    if (cert == nullptr || key == nullptr) {
      X509_free(cert);
      return nullptr;
    }
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(cert), -300);
    X509_gmtime_adj(X509_getm_notAfter(cert), days * 86400);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    for (const auto& [field, value] : subject) {
      if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                     0) != 1) {
        X509_free(cert);
        return nullptr;
      }
    }
    X509_set_issuer_name(cert, issuer != nullptr ? X509_get_subject_name(issuer) : name);
    return cert;
  }

  bool Extend(X509* cert, const Extensions& extensions) {
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, ca_ != nullptr ? ca_ : cert, cert, nullptr, nullptr, 0);
    for (const auto& [nid, value] : extensions) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
      const bool added = ext != nullptr && X509_add_ext(cert, ext, -1) == 1;
      X509_EXTENSION_free(ext);
      if (!added) return false;
    }
    return true;
  }

  static bool WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
    FILE* f = fopen(path.c_str(), "w");
    if (f == nullptr) return false;
    bool ok = cert != nullptr
                  ? PEM_write_X509(f, cert) == 1
                  : PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    return fclose(f) == 0 && ok;
  }

  X509* ca_ = nullptr;
  EVP_PKEY* key_ = nullptr;
  long serial_ = 0;
};

}  // namespace portolan::testing
