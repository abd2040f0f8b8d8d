// SPDX-License-Identifier: Apache-2.0
#pragma once

// Prometheus metrics: counters, gauges and histograms with labels, rendered
// in the text exposition format (version 0.0.4).
//
// Thread-safety: everything is thread-safe. Recording on a series the caller
// holds (Counter*, Gauge*, Histogram*) is lock-free for counters and gauges
// and takes one short per-histogram lock; looking a series up by label values
// takes the family's lock, so hot paths look up once and keep the pointer.
// Series live as long as the registry (pointers stay valid).
//
// Cardinality: each family holds at most `max_series` label sets; further
// label sets are folded into one series whose label values are all
// "_other", so a flood of tenants or agents cannot grow memory without
// bound. Never use unbounded values (job ids) as labels.
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace portolan::metrics {

class Counter {
 public:
  void Inc(double v = 1);  // v >= 0
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>* bounds);
  void Observe(double v);
  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;
  const std::vector<double>& bounds() const { return *bounds_; }

 private:
  const std::vector<double>* bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Bucket bounds.
std::vector<double> ExponentialBuckets(double start, double factor, int count);
// Latencies from 10 µs to ~20 s, in seconds.
const std::vector<double>& LatencyBuckets();

class Registry;

template <typename T>
class Family {
 public:
  // The series for these label values (as many as the family's label names).
  T* With(const std::vector<std::string>& label_values);
  T* With() { return With(std::vector<std::string>{}); }
  // Drops every series (for gauges refilled at each scrape).
  void Clear();

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> labels, size_t max_series,
         std::function<std::unique_ptr<T>()> make)
      : name_(std::move(name)),
        help_(std::move(help)),
        labels_(std::move(labels)),
        max_series_(max_series),
        make_(std::move(make)) {}
  std::string name_, help_;
  std::vector<std::string> labels_;
  size_t max_series_;
  std::function<std::unique_ptr<T>()> make_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> series_;
};

class Registry {
 public:
  // Names follow Prometheus conventions (counters end in _total; units in
  // the name, base units: seconds, bytes). Registering a name twice aborts.
  Family<Counter>* AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> labels = {}, size_t max_series = 1000);
  Family<Gauge>* AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> labels = {}, size_t max_series = 1000);
  Family<Histogram>* AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds, std::vector<std::string> labels = {},
                                  size_t max_series = 100);
  // Called at the start of every Render, e.g. to set gauges from state.
  void OnScrape(std::function<void()> fn);

  // The text exposition format, families in registration order, series
  // sorted by label values.
  std::string Render();

 private:
  struct Entry {
    std::string type;
    Family<Counter>* counter = nullptr;
    Family<Gauge>* gauge = nullptr;
    Family<Histogram>* histogram = nullptr;
  };
  std::mutex mu_;
  std::vector<Entry> order_;
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
  std::vector<std::unique_ptr<std::vector<double>>> bounds_;
  std::vector<std::function<void()>> on_scrape_;
  std::map<std::string, bool> names_;
};

// Content-Type of Render()'s output.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace portolan::metrics
