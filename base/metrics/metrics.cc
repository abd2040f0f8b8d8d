// SPDX-License-Identifier: Apache-2.0
#include "portolan/metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "fmt/format.h"

namespace portolan::metrics {

namespace {

void AtomicAdd(std::atomic<double>& a, double v) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

// Label values: backslash, double quote and line feed escaped.
std::string EscapeLabel(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// HELP text: backslash and line feed escaped.
std::string EscapeHelp(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                   const std::string& extra_name = "", const std::string& extra_value = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += names[i] + "=\"" + EscapeLabel(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    out += out.empty() ? "{" : ",";
    out += extra_name + "=\"" + EscapeLabel(extra_value) + "\"";
  }
  if (!out.empty()) out += "}";
  return out;
}

void Header(std::string& out, const std::string& name, const std::string& help,
            const std::string& type) {
  out += "# HELP " + name + " " + EscapeHelp(help) + "\n";
  out += "# TYPE " + name + " " + type + "\n";
}

}  // namespace

void Counter::Inc(double v) {
  if (v > 0) AtomicAdd(value_, v);
}

void Gauge::Add(double v) { AtomicAdd(value_, v); }

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), counts_(bounds->size() + 1, 0) {}

void Histogram::Observe(double v) {
  const size_t i = std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin();
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t running = 0;
  for (uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) out.push_back(v);
  return out;
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> b = {1e-5,   2.5e-5, 5e-5, 1e-4,   2.5e-4, 5e-4, 1e-3,
                                        2.5e-3, 5e-3,   1e-2, 2.5e-2, 5e-2,   0.1,  0.25,
                                        0.5,    1,      2.5,  5,      10,     20};
  return b;
}

template <typename T>
T* Family<T>::With(const std::vector<std::string>& label_values) {
  std::vector<std::string> key = label_values;
  key.resize(labels_.size());
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(key);
  if (it != series_.end()) return it->second.get();
  if (series_.size() >= max_series_) {
    key.assign(labels_.size(), "_other");
    it = series_.find(key);
    if (it != series_.end()) return it->second.get();
  }
  return series_.emplace(key, make_()).first->second.get();
}

template <typename T>
void Family<T>::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  series_.clear();
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

namespace {
void CheckName(std::map<std::string, bool>& names, const std::string& name) {
  if (!names.emplace(name, true).second) {
    fmt::print(stderr, "metrics: {} registered twice\n", name);
    std::abort();
  }
}
}  // namespace

Family<Counter>* Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> labels, size_t max_series) {
  std::lock_guard<std::mutex> lock(mu_);
  CheckName(names_, name);
  counters_.emplace_back(new Family<Counter>(name, help, std::move(labels), max_series,
                                             [] { return std::make_unique<Counter>(); }));
  order_.push_back(Entry{"counter", counters_.back().get(), nullptr, nullptr});
  return counters_.back().get();
}

Family<Gauge>* Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> labels, size_t max_series) {
  std::lock_guard<std::mutex> lock(mu_);
  CheckName(names_, name);
  gauges_.emplace_back(new Family<Gauge>(name, help, std::move(labels), max_series,
                                         [] { return std::make_unique<Gauge>(); }));
  order_.push_back(Entry{"gauge", nullptr, gauges_.back().get(), nullptr});
  return gauges_.back().get();
}

Family<Histogram>* Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<double> bounds,
                                          std::vector<std::string> labels, size_t max_series) {
  std::lock_guard<std::mutex> lock(mu_);
  CheckName(names_, name);
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  bounds_.push_back(std::make_unique<std::vector<double>>(std::move(bounds)));
  const std::vector<double>* b = bounds_.back().get();
  histograms_.emplace_back(new Family<Histogram>(name, help, std::move(labels), max_series,
                                                 [b] { return std::make_unique<Histogram>(b); }));
  order_.push_back(Entry{"histogram", nullptr, nullptr, histograms_.back().get()});
  return histograms_.back().get();
}

void Registry::OnScrape(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  on_scrape_.push_back(std::move(fn));
}

std::string Registry::Render() {
  std::vector<std::function<void()>> callbacks;
  std::vector<Entry> order;
  {
    std::lock_guard<std::mutex> lock(mu_);
    callbacks = on_scrape_;
    order = order_;
  }
  for (auto& fn : callbacks) fn();
  std::string out;
  for (const Entry& e : order) {
    if (e.counter != nullptr) {
      Family<Counter>& f = *e.counter;
      Header(out, f.name_, f.help_, "counter");
      std::lock_guard<std::mutex> lock(f.mu_);
      for (const auto& [values, c] : f.series_) {
        out += f.name_ + Labels(f.labels_, values) + " " + Number(c->value()) + "\n";
      }
    } else if (e.gauge != nullptr) {
      Family<Gauge>& f = *e.gauge;
      Header(out, f.name_, f.help_, "gauge");
      std::lock_guard<std::mutex> lock(f.mu_);
      for (const auto& [values, g] : f.series_) {
        out += f.name_ + Labels(f.labels_, values) + " " + Number(g->value()) + "\n";
      }
    } else {
      Family<Histogram>& f = *e.histogram;
      Header(out, f.name_, f.help_, "histogram");
      std::lock_guard<std::mutex> lock(f.mu_);
      for (const auto& [values, h] : f.series_) {
        Histogram::Snapshot s = h->Read();
        const std::vector<double>& bounds = h->bounds();
        for (size_t i = 0; i < s.cumulative.size(); ++i) {
          const std::string le = i < bounds.size() ? Number(bounds[i]) : "+Inf";
          out += f.name_ + "_bucket" + Labels(f.labels_, values, "le", le) + " " +
                 Number(static_cast<double>(s.cumulative[i])) + "\n";
        }
        out += f.name_ + "_sum" + Labels(f.labels_, values) + " " + Number(s.sum) + "\n";
        out += f.name_ + "_count" + Labels(f.labels_, values) + " " +
               Number(static_cast<double>(s.count)) + "\n";
      }
    }
  }
  return out;
}

}  // namespace portolan::metrics
