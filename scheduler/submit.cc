// SPDX-License-Identifier: Apache-2.0
// Core: a job submitted (REST's POST /v1/jobs): validated, stored durably,
// then queued and decided.
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/scheduler/core.h"
#include "portolan/v1/options.pb.h"

namespace portolan::scheduler {
namespace {
// The first spec field in which two jobs differ ("" when the specs agree).
std::string SpecDifference(const v1::Job& a, const v1::Job& b) {
  const google::protobuf::Descriptor* d = v1::Job::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->options().GetExtension(v1::output_only)) continue;
    google::protobuf::util::MessageDifferencer diff;
    std::vector<const google::protobuf::FieldDescriptor*> only{f};
    if (!diff.CompareWithFields(a, b, only, only)) return f->name();
  }
  return "";
}

}  // namespace

absl::StatusOr<std::pair<v1::Job, bool>> Core::Submit(v1::Job spec) {
  if (auto answered = PrepareSubmit(spec)) return *std::move(answered);
  // Stored without holding the core lock, so concurrent submits share one
  // commit (the store's group commit); acknowledged only once stored, and a
  // failed write leaves no trace.
  auto decision = simulate::Spec(spec);
  const absl::Status st = store_->PutJob(spec);
  return FinishSubmit(std::move(spec), std::move(decision), st);
}

void Core::SubmitAsync(v1::Job spec, SubmitDone done) {
  if (auto answered = PrepareSubmit(spec)) return done(*std::move(answered));
  auto job = std::make_shared<v1::Job>(std::move(spec));
  store_->PutJobAsync(*job, [this, job, decision = simulate::Spec(*job),
                             done = std::move(done)](absl::Status st) mutable {
    done(FinishSubmit(std::move(*job), std::move(decision), st));
  });
}

absl::Status Core::ResolveAndValidate(v1::Job& spec) {
  absl::Status st = datasets_.Resolve(spec);  // refs: the registry's facts
  if (st.ok()) st = datasets_.CheckOutputs(spec);
  if (st.ok()) st = ValidateAndDefault(spec);
  return st;
}

absl::Status Core::CheckWithPolicy(const v1::Job& spec) {
  if (policy_ == nullptr) return absl::UnavailableError("no placement policy loaded yet");
  if (absl::Status st = CheckAgainstPolicy(spec, *policy_->compiled); !st.ok()) return st;
  return CheckDependencies(spec);
}

std::optional<absl::StatusOr<std::pair<v1::Job, bool>>> Core::PrepareSubmit(v1::Job& spec) {
  if (absl::Status st = ResolveAndValidate(spec); !st.ok()) return st;
  const std::pair<std::string, std::string> key{spec.tenant(), spec.idempotency_key()};
  std::string earlier;  // the job an earlier submit with the same key created
  std::string id;       // the new job's
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status st = CheckWithPolicy(spec); !st.ok()) return st;
    if (!key.second.empty()) {
      // A concurrent submit with the same key is being stored: wait for it.
      struct Arg {
        Core* core;
        const std::pair<std::string, std::string>* key;
      } arg{this, &key};
      mu_.Await(absl::Condition(
          +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return !a->core->submitting_keys_.contains(*a->key);
          },
          &arg));
      earlier = jobs_.ByIdempotencyKey(key.first, key.second);
      if (earlier.empty()) submitting_keys_.insert(key);
    }
    // Time-ordered (the store appends them to its index) and never repeated
    // by this process; one another process made (before a restart, an HA
    // peer) is not reused either.
    if (earlier.empty()) {
      do {
        id = base::NewOrderedId("job");
      } while (jobs_.Contains(id));
    }
  }
  if (!earlier.empty()) {
    auto job = ReadJob(earlier);
    if (!job.ok()) return job.status();
    // A retry repeats the request; the same key on a different request is a
    // client bug that must not silently return someone else's job.
    if (std::string diff = SpecDifference(*job, spec); !diff.empty()) {
      return codec::WithErrorCode(
          codec::FieldError(absl::StatusCode::kAlreadyExists, "idempotency_key",
                            absl::StrCat("idempotency key '", base::CleanForMessage(key.second),
                                         "' was used for job ", earlier, " with a different ", diff,
                                         "; use a new key for a new job")),
          "idempotency_conflict");
    }
    return std::make_pair(*std::move(job), false);
  }
  const absl::Time now = clock_->Now();
  spec.set_id(std::move(id));
  spec.set_state(v1::Job::queued);
  spec.set_reason("waiting for placement");
  *spec.mutable_submitted_at() = base::ToProto(now);
  v1::JobEvent* ev = spec.add_events();
  *ev->mutable_time() = base::ToProto(now);
  ev->set_state(v1::Job::queued);
  ev->set_message("submitted");
  return std::nullopt;
}

absl::StatusOr<std::pair<v1::Job, bool>> Core::FinishSubmit(
    v1::Job spec, std::shared_ptr<const simulate::JobSpec> decision, const absl::Status& stored) {
  if (!stored.ok()) spdlog::error("store: cannot persist job {}: {}", spec.id(), stored.message());
  const std::pair<std::string, std::string> key{spec.tenant(), spec.idempotency_key()};
  const absl::Time now = base::FromProto(spec.submitted_at());
  absl::MutexLock lock(&mu_);
  if (!key.second.empty()) submitting_keys_.erase(key);
  if (!stored.ok()) {
    return absl::UnavailableError(
        absl::StrCat("job not accepted: state store write failed: ", stored.message()));
  }
  const std::string id = spec.id();
  if (metrics_ != nullptr) metrics_->submits->With({spec.tenant()})->Inc();
  const v1::Job& job = jobs_.Add(std::move(spec), std::move(decision));
  Publish(JobChanged(job, now));
  IndexDependencies(job);
  if (IsArrayJob(job)) {
    // Its first window of tasks is made and decided now.
    arrays_.Add(job);
    RequestPass();
    ScheduleLocked();
    v1::Job out = *jobs_.Held(id);
    if (const ArrayTable::Array* a = arrays_.Find(id))
      *out.mutable_task_counts() = ArrayTable::Counts(*a);
    return std::make_pair(out, true);
  }
  spdlog::debug("job {} submitted by tenant {} ({} cpus, {} MiB)", id, job.tenant(),
                job.resources().cpus(), job.resources().memory_mb());
  // Nothing else changed: only the new job needs a decision now. It is still
  // held afterwards (records are dropped only in Tick).
  ScheduleLocked(&id);
  return std::make_pair(job, true);
}

}  // namespace portolan::scheduler
