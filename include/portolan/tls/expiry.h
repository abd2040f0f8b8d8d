// SPDX-License-Identifier: Apache-2.0
#pragma once

// Certificate expiry for monitoring: the scheduler and the agent export the
// seconds left on each certificate they present, so an alert fires before a
// certificate expires and agents can no longer connect.
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace portolan::metrics {
class Registry;
}

namespace portolan::tls {

// The notAfter time of the first certificate in a PEM file (the leaf of a
// chain). Errors name the file.
absl::StatusOr<absl::Time> CertificateNotAfter(const std::string& pem_file);

// Registers portolan_tls_certificate_expiry_seconds{use, file}: at each
// scrape, seconds until each (use, file) certificate expires (negative once
// expired; the file is read again, so a renewed certificate shows at once).
// A file that cannot be read is left out of that scrape. Empty files are
// skipped. `registry` must outlive the scrapes.
void AddCertificateExpiryMetric(metrics::Registry& registry,
                                std::vector<std::pair<std::string, std::string>> use_and_file);

}  // namespace portolan::tls
