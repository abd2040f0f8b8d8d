// SPDX-License-Identifier: Apache-2.0
// Fills a scheduler state directory with N stored jobs through the real
// SQLite store (the same PutJob the scheduler uses, from many threads so the
// group commit batches them), for tests/bench/recovery.sh. Most jobs are
// finished the way a real run leaves them (four events, an allocation, an
// attempt, timestamps); --queued-per-mille of them are still queued. With
// --datasets N each job also declares a dataset of CN personal data whose
// subject count is one of N values (so that jobs differ in what a placement
// decision reads: tests/bench/simulate_bench.sh).
//
//   populate_store --state-dir DIR --jobs 1000000 [--queued-per-mille 10] [--threads 64]
//                  [--datasets N]
//   populate_store --store etcd://HOST:PORT,.../PREFIX ...   (an etcd store, as --store says)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "portolan/etcd/client.h"
#include "portolan/store/etcd_store.h"
#include "portolan/store/store.h"
#include "portolan/v1/job.pb.h"

namespace {

void Stamp(google::protobuf::Timestamp* t, int64_t s) { t->set_seconds(s); }

portolan::v1::Job MakeJob(long i, bool queued, long datasets) {
  using portolan::v1::Job;
  Job j;
  const int64_t t0 = 1'790'000'000 + i;  // one job a second, back from 2026-09
  j.set_id(absl::StrCat("job-", absl::Hex(0x10000000000 + i, absl::kZeroPad12)));
  j.set_name(absl::StrCat("nightly-etl-", i % 500));
  j.set_tenant(absl::StrCat("tenant-", i % 20));
  j.set_kind(i % 3 == 0 ? Job::data_processing : Job::compute);
  j.add_command("/usr/bin/env");
  j.add_command("python3");
  j.add_command("transform.py");
  j.mutable_resources()->set_cpus(1 + i % 8);
  j.mutable_resources()->set_memory_mb(1024);
  j.mutable_topology()->set_numa(portolan::v1::TopologyRequest::any);
  j.mutable_restart()->set_policy(portolan::v1::RestartPolicy::never);
  j.set_priority(static_cast<int>(i % 3) * 10);
  Stamp(j.mutable_submitted_at(), t0);
  if (datasets > 0) {
    portolan::v1::Dataset* d = j.add_datasets();
    d->set_id(absl::StrCat("customers-", i % 97));
    d->set_origin("CN");
    d->set_location("lingang-idc-1");
    d->set_size_gb(1 + i % 50);
    d->add_categories(portolan::v1::Dataset::personal);
    d->set_subjects(static_cast<uint32_t>(1000 + (i * 7919) % datasets));
  }
  auto event = [&](Job::State s, int64_t at, const std::string& msg) {
    auto* e = j.add_events();
    Stamp(e->mutable_time(), at);
    e->set_state(s);
    e->set_message(msg);
  };
  event(Job::queued, t0, "submitted");
  if (queued) {
    j.set_state(Job::queued);
    j.set_reason("waiting for placement");
    return j;
  }
  const std::string agent = absl::StrCat("lg-", i % 200);
  auto* a = j.mutable_allocation();
  a->set_agent(agent);
  a->set_site("lingang-idc-1");
  a->set_cpus(j.resources().cpus());
  a->set_memory_mb(1024);
  for (int p = 0; p < j.resources().cpus(); ++p) a->add_pus(p);
  a->add_numa_nodes(0);
  (*a->mutable_numa_memory_mb())[0] = 1024;
  event(Job::placed, t0 + 1,
        absl::StrCat("placed on agent ", agent, " at site lingang-idc-1 (score 87.5, policy v3)"));
  event(Job::running, t0 + 2, "started");
  Stamp(j.mutable_started_at(), t0 + 2);
  const bool ok = i % 50 != 0;
  event(ok ? Job::succeeded : Job::failed, t0 + 62, ok ? "exited 0" : "exited 1");
  Stamp(j.mutable_finished_at(), t0 + 62);
  j.set_state(ok ? Job::succeeded : Job::failed);
  j.set_exit_code(ok ? 0 : 1);
  j.set_attempt(1);
  auto* at = j.add_attempts();
  at->set_number(1);
  *at->mutable_allocation() = *a;
  at->set_outcome(j.state());
  at->set_exit_code(j.exit_code());
  Stamp(at->mutable_placed_at(), t0 + 1);
  Stamp(at->mutable_finished_at(), t0 + 62);
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, store_url;
  long jobs = 1'000'000;
  int queued_per_mille = 10, threads = 64;
  long datasets = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--state-dir")) {
      dir = argv[i + 1];
    } else if (!strcmp(argv[i], "--store")) {
      store_url = argv[i + 1];
    } else if (!strcmp(argv[i], "--jobs")) {
      (void)absl::SimpleAtoi(argv[i + 1], &jobs);
    } else if (!strcmp(argv[i], "--queued-per-mille")) {
      (void)absl::SimpleAtoi(argv[i + 1], &queued_per_mille);
    } else if (!strcmp(argv[i], "--datasets")) {
      (void)absl::SimpleAtoi(argv[i + 1], &datasets);
    } else if (!strcmp(argv[i], "--threads")) {
      (void)absl::SimpleAtoi(argv[i + 1], &threads);
    } else {
      fprintf(stderr, "populate_store: unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (dir.empty() == store_url.empty()) {
    fprintf(stderr, "populate_store: give --state-dir or --store etcd://...\n");
    return 2;
  }
  std::unique_ptr<portolan::etcd::Client> client;
  absl::StatusOr<std::unique_ptr<portolan::store::Store>> store;
  if (!store_url.empty()) {
    auto url = portolan::etcd::ParseUrl(store_url);
    if (!url.ok()) {
      fprintf(stderr, "populate_store: %s\n", std::string(url.status().message()).c_str());
      return 2;
    }
    portolan::etcd::Options options;
    options.endpoints = url->endpoints;
    auto c = portolan::etcd::Client::Connect(options);
    if (!c.ok()) {
      fprintf(stderr, "populate_store: %s\n", std::string(c.status().message()).c_str());
      return 1;
    }
    client = std::move(*c);
    auto opened = portolan::store::EtcdStore::Open(client.get(), url->prefix);
    if (opened.ok()) {
      store = std::unique_ptr<portolan::store::Store>(std::move(*opened));
    } else {
      store = opened.status();
    }
  } else {
    store = portolan::store::OpenSqliteStore(dir);
  }
  if (!store.ok()) {
    fprintf(stderr, "populate_store: %s\n", std::string(store.status().message()).c_str());
    return 1;
  }
  std::atomic<long> next{0}, failed{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (long i = next.fetch_add(1); i < jobs; i = next.fetch_add(1)) {
        const bool queued = (i % 1000) < queued_per_mille;
        if (!(*store)->PutJob(MakeJob(i, queued, datasets)).ok()) ++failed;
        if (i > 0 && i % 100000 == 0) fprintf(stderr, "populate_store: %ld jobs\n", i);
      }
    });
  }
  for (auto& t : pool) t.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  printf("{\"bench\":\"populate_store\",\"jobs\":%ld,\"failed\":%ld,\"seconds\":%.1f}\n", jobs,
         failed.load(), s);
  return failed.load() == 0 ? 0 : 1;
}
