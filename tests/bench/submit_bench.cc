// SPDX-License-Identifier: Apache-2.0
// Durable submit benchmark: starts nothing itself; point it at a running
// scheduler. C client threads submit trivial jobs for S seconds over REST;
// each 201 means the job is on disk. Prints submits/s and latency
// percentiles as a JSON line and a summary. Not a test.
//
//   build/tests/bench/submit_bench --server http://127.0.0.1:7080 --clients 64 --seconds 10
//   [--token T] (or the token in $PORTOLAN_TOKEN)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "portolan/client/client.h"

int main(int argc, char** argv) {
  std::string server = "http://127.0.0.1:7080";
  const char* env_token = std::getenv("PORTOLAN_TOKEN");
  std::string token = env_token ? env_token : "";
  int clients = 64, seconds = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--server"))
      server = argv[i + 1];
    else if (!strcmp(argv[i], "--clients"))
      (void)absl::SimpleAtoi(argv[i + 1], &clients);
    else if (!strcmp(argv[i], "--seconds"))
      (void)absl::SimpleAtoi(argv[i + 1], &seconds);
    else if (!strcmp(argv[i], "--token"))
      token = argv[i + 1];
  }
  const std::string body =
      R"({"tenant":"bench","command":["/bin/true"],"resources":{"cpus":1,"memory_mb":16},"placement":{"sites":["london-1"]}})";
  std::atomic<bool> stop{false};
  std::atomic<long> errors{0};
  std::mutex mu;
  std::vector<double> lat_ms;
  std::vector<std::thread> threads;
  auto t0 = std::chrono::steady_clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      portolan::client::Client client(server, token);
      std::vector<double> mine;
      std::string out;
      while (!stop.load()) {
        auto a = std::chrono::steady_clock::now();
        auto code = client.Raw("POST", "/v1/jobs", body, &out);
        auto b = std::chrono::steady_clock::now();
        if (!code.ok() || *code != 201) {
          ++errors;
          continue;
        }
        mine.push_back(std::chrono::duration<double, std::milli>(b - a).count());
      }
      std::lock_guard<std::mutex> l(mu);
      lat_ms.insert(lat_ms.end(), mine.begin(), mine.end());
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::sort(lat_ms.begin(), lat_ms.end());
  auto pct = [&](double p) {
    return lat_ms.empty()
               ? 0.0
               : lat_ms[std::min(lat_ms.size() - 1, static_cast<size_t>(p * lat_ms.size()))];
  };
  printf(
      "{\"bench\":\"submit\",\"clients\":%d,\"seconds\":%.1f,\"acknowledged\":%zu,\"errors\":%ld,"
      "\"submits_per_s\":%.0f,\"p50_ms\":%.2f,\"p99_ms\":%.2f}\n",
      clients, secs, lat_ms.size(), errors.load(), lat_ms.size() / secs, pct(0.5), pct(0.99));
  printf(
      "submit: %d clients, %.1f s: %.0f durable submits/s, p50 %.2f ms, p99 %.2f ms, %ld errors\n",
      clients, secs, lat_ms.size() / secs, pct(0.5), pct(0.99), errors.load());
  return 0;
}
