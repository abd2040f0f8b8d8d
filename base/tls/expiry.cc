// SPDX-License-Identifier: Apache-2.0
#include "portolan/tls/expiry.h"

#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "portolan/metrics/metrics.h"

namespace portolan::tls {

absl::StatusOr<absl::Time> CertificateNotAfter(const std::string& pem_file) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(fopen(pem_file.c_str(), "r"), fclose);
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(pem_file, ": cannot open"));
  std::unique_ptr<X509, void (*)(X509*)> cert(PEM_read_X509(f.get(), nullptr, nullptr, nullptr),
                                              X509_free);
  if (cert == nullptr)
    return absl::InvalidArgumentError(absl::StrCat(pem_file, ": no PEM certificate"));
  int days = 0, seconds = 0;
  // Difference from the epoch (a null `from` means now; so measure from 0).
  std::unique_ptr<ASN1_TIME, void (*)(ASN1_TIME*)> epoch(ASN1_TIME_set(nullptr, 0), ASN1_TIME_free);
  if (epoch == nullptr ||
      !ASN1_TIME_diff(&days, &seconds, epoch.get(), X509_get0_notAfter(cert.get())))
    return absl::InvalidArgumentError(absl::StrCat(pem_file, ": unreadable notAfter"));
  return absl::FromUnixSeconds(int64_t{days} * 86400 + seconds);
}

void AddCertificateExpiryMetric(metrics::Registry& registry,
                                std::vector<std::pair<std::string, std::string>> use_and_file) {
  std::erase_if(use_and_file, [](const auto& u) { return u.second.empty(); });
  if (use_and_file.empty()) return;
  auto* family = registry.AddGauge(
      "portolan_tls_certificate_expiry_seconds",
      "Seconds until each certificate this daemon presents expires (negative once expired), "
      "by use and file; read again at each scrape.",
      {"use", "file"});
  registry.OnScrape([family, use_and_file] {
    family->Clear();
    const absl::Time now = absl::Now();
    for (const auto& [use, file] : use_and_file) {
      auto not_after = CertificateNotAfter(file);
      if (not_after.ok()) family->With({use, file})->Set(absl::ToDoubleSeconds(*not_after - now));
    }
  });
}

}  // namespace portolan::tls
