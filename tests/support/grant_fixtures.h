// SPDX-License-Identifier: Apache-2.0
#pragma once

// A transfer grant as the scheduler would sign it for tests of signing,
// verification and the data endpoint: job-1 attempt 1 may pull version 2 of
// reads-2026q3 from lingang-idc-1 to agent hk1, until `expires`.

#include "absl/time/time.h"
#include "portolan/base/strings.h"
#include "portolan/v1/dataset.pb.h"

namespace portolan::testing {

inline v1::TransferGrant SampleGrant(absl::Time expires) {
  v1::TransferGrant g;
  g.set_id("grant-1");
  g.set_job_id("job-1");
  g.set_attempt(1);
  g.set_dataset("reads-2026q3");
  g.set_dataset_version(2);
  g.set_source_site("lingang-idc-1");
  g.set_path("reads/2026q3");
  g.set_destination_agent("hk1");
  *g.mutable_expires() = base::ToProto(expires);
  return g;
}

}  // namespace portolan::testing
