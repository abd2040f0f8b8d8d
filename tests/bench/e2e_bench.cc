// SPDX-License-Identifier: Apache-2.0
// End-to-end throughput: N trivial jobs (/bin/true, 1 cpu, 16 MiB) submitted
// over REST by C client threads, placed by the scheduler, run by its agents
// and reported back; the clock runs from the first submit until the
// scheduler counts all N as finished (its portolan_jobs gauge, read from
// /metrics every 50 ms). Starts nothing itself: tests/bench/e2e.sh starts a
// scheduler and agents and runs it. Prints one JSON line and a summary.
//
//   e2e_bench --server http://127.0.0.1:PORT --jobs 2000 [--clients 16]
//             [--timeout-s 600] [--token T] [--tenant bench]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "../support/prometheus_text.h"
#include "absl/strings/numbers.h"
#include "portolan/client/client.h"

namespace {

// Jobs of `tenant` by state, from the scheduler's metrics exposition
// (parsed with the tests' strict parser; empty when the scrape fails).
std::map<std::string, long> JobsByState(portolan::client::Client& client,
                                        const std::string& tenant) {
  std::map<std::string, long> out;
  std::string body;
  auto code = client.Raw("GET", "/metrics", "", &body);
  if (!code.ok() || *code != 200) return out;
  const auto exposition = portolan::test_support::ParsePrometheusText(body);
  if (!exposition.ok()) return out;
  for (const char* state : {"succeeded", "failed", "lost", "cancelled", "unschedulable"}) {
    out[state] =
        static_cast<long>(exposition.Sum("portolan_jobs", {{"state", state}, {"tenant", tenant}}));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "http://127.0.0.1:7080", tenant = "bench";
  const char* env_token = std::getenv("PORTOLAN_TOKEN");
  std::string token = env_token ? env_token : "";
  int jobs = 2000, clients = 16, timeout_s = 600;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--server")) {
      server = argv[i + 1];
    } else if (!strcmp(argv[i], "--jobs")) {
      (void)absl::SimpleAtoi(argv[i + 1], &jobs);
    } else if (!strcmp(argv[i], "--clients")) {
      (void)absl::SimpleAtoi(argv[i + 1], &clients);
    } else if (!strcmp(argv[i], "--timeout-s")) {
      (void)absl::SimpleAtoi(argv[i + 1], &timeout_s);
    } else if (!strcmp(argv[i], "--token")) {
      token = argv[i + 1];
    } else if (!strcmp(argv[i], "--tenant")) {
      tenant = argv[i + 1];
    } else {
      fprintf(stderr, "e2e_bench: unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  const std::string body = R"({"tenant":")" + tenant +
                           R"(","command":["/bin/true"],"resources":{"cpus":1,"memory_mb":16}})";
  std::atomic<int> next{0};
  std::atomic<long> refused{0};
  std::vector<std::thread> threads;
  const auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      portolan::client::Client client(server, token);
      std::string out;
      while (next.fetch_add(1) < jobs) {
        auto code = client.Raw("POST", "/v1/jobs", body, &out);
        if (!code.ok() || *code != 201) {
          ++refused;
          fprintf(stderr, "e2e_bench: submit refused: %s %s\n",
                  code.ok() ? std::to_string(*code).c_str()
                            : std::string(code.status().message()).c_str(),
                  out.c_str());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double submit_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  portolan::client::Client client(server, token);
  const long accepted = jobs - refused.load();
  long done = 0, succeeded = 0;
  std::map<std::string, long> states;
  double total_s = 0;
  for (;;) {
    states = JobsByState(client, tenant);
    succeeded = states["succeeded"];
    done = succeeded + states["failed"] + states["lost"] + states["cancelled"] +
           states["unschedulable"];
    total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (done >= accepted || total_s > timeout_s) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  printf(
      "{\"bench\":\"e2e\",\"jobs\":%d,\"clients\":%d,\"refused\":%ld,\"succeeded\":%ld,"
      "\"finished\":%ld,\"submit_s\":%.2f,\"total_s\":%.2f,\"jobs_per_s\":%.1f,"
      "\"timed_out\":%s}\n",
      jobs, clients, refused.load(), succeeded, done, submit_s, total_s, done / total_s,
      done >= accepted ? "false" : "true");
  printf(
      "e2e: %d jobs (/bin/true) submitted in %.2f s, %ld succeeded of %ld finished in %.2f s: "
      "%.1f jobs/s end to end\n",
      jobs, submit_s, succeeded, done, total_s, done / total_s);
  return done >= accepted && refused.load() == 0 && succeeded == accepted ? 0 : 1;
}
