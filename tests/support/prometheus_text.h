// SPDX-License-Identifier: Apache-2.0
#pragma once

// A strict parser for the Prometheus text exposition format 0.0.4, used by
// the tests to check what /metrics serves. Stricter than Prometheus itself
// where the format says "must": names and label names match their grammar,
// label values use only the \\ \" \n escapes, TYPE comes before a family's
// samples and at most once, a family's samples are contiguous, no series
// appears twice, values are floats (NaN, +Inf, -Inf allowed), histograms
// have le-labelled cumulative buckets ending in +Inf equal to _count, and
// counters are never negative.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace portolan::test_support {

struct Sample {
  std::string name;  // as written, e.g. foo_bucket
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Family {
  std::string name;
  std::string type = "untyped";
  std::string help;
  std::vector<Sample> samples;
};

struct Exposition {
  std::map<std::string, Family> families;
  std::string error;  // "" when the text is valid; else "line N: why"
  bool ok() const { return error.empty(); }
  // The value of the series `name` with exactly these labels, or NaN.
  double Value(const std::string& name,
               const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& [_, f] : families) {
      for (const Sample& s : f.samples) {
        if (s.name == name && s.labels == labels) return s.value;
      }
    }
    return std::nan("");
  }
  // Sum over every series of `name` whose labels include `subset`.
  double Sum(const std::string& name, const std::map<std::string, std::string>& subset = {}) const {
    double total = 0;
    for (const auto& [_, f] : families) {
      for (const Sample& s : f.samples) {
        if (s.name != name) continue;
        bool match = true;
        for (const auto& [k, v] : subset) {
          auto it = s.labels.find(k);
          if (it == s.labels.end() || it->second != v) match = false;
        }
        if (match) total += s.value;
      }
    }
    return total;
  }
};

inline bool ParseFloat(const std::string& s, double* out) {
  if (s == "NaN") {
    *out = std::nan("");
    return true;
  }
  if (s == "+Inf" || s == "Inf") {
    *out = INFINITY;
    return true;
  }
  if (s == "-Inf") {
    *out = -INFINITY;
    return true;
  }
  static const std::regex num(R"([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)");
  if (!std::regex_match(s, num)) return false;
  *out = std::strtod(s.c_str(), nullptr);
  return true;
}

inline Exposition ParsePrometheusText(const std::string& text) {
  Exposition ex;
  static const std::regex metric_name("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex label_name("[a-zA-Z_][a-zA-Z0-9_]*");
  std::set<std::string> finished;  // families whose samples ended
  std::string current;             // family of the previous sample
  std::set<std::string> seen_series;
  auto family_of = [&](const std::string& sample) -> std::string {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string sfx = suffix;
      if (sample.size() > sfx.size() &&
          sample.compare(sample.size() - sfx.size(), sfx.size(), sfx) == 0) {
        std::string base = sample.substr(0, sample.size() - sfx.size());
        auto it = ex.families.find(base);
        if (it != ex.families.end() &&
            (it->second.type == "histogram" || it->second.type == "summary"))
          return base;
      }
    }
    return sample;
  };
  size_t pos = 0;
  int line_no = 0;
  auto fail = [&](const std::string& why) {
    ex.error = "line " + std::to_string(line_no) + ": " + why;
    return ex;
  };
  if (!text.empty() && text.back() != '\n') {
    line_no = 1 + static_cast<int>(std::count(text.begin(), text.end(), '\n'));
    return fail("the last line does not end with a line feed");
  }
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
        const bool help = line[2] == 'H';
        std::string rest = line.substr(7);
        size_t sp = rest.find(' ');
        std::string name = rest.substr(0, sp);
        std::string arg = sp == std::string::npos ? "" : rest.substr(sp + 1);
        if (!std::regex_match(name, metric_name)) return fail("bad metric name '" + name + "'");
        if (finished.count(name) || (current == name))
          return fail(name + ": HELP/TYPE after its samples");
        Family& f = ex.families[name];
        f.name = name;
        if (help) {
          if (!f.help.empty()) return fail(name + ": HELP twice");
          for (size_t i = 0; i < arg.size(); ++i) {
            if (arg[i] == '\\') {
              if (i + 1 >= arg.size() || (arg[i + 1] != '\\' && arg[i + 1] != 'n'))
                return fail(name + ": bad escape in HELP");
              ++i;
            }
          }
          f.help = arg.empty() ? " " : arg;
        } else {
          static const std::set<std::string> types = {"counter", "gauge", "histogram", "summary",
                                                      "untyped"};
          if (!types.count(arg)) return fail(name + ": unknown TYPE '" + arg + "'");
          if (f.type != "untyped" || !f.samples.empty()) return fail(name + ": TYPE twice");
          f.type = arg;
        }
      }
      continue;  // other comments are allowed
    }
    // name{labels} value [timestamp]
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    Sample s;
    s.name = line.substr(0, i);
    if (!std::regex_match(s.name, metric_name)) return fail("bad metric name '" + s.name + "'");
    std::string series_key = s.name;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (true) {
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) return fail("unterminated label set");
        std::string ln = line.substr(i, eq - i);
        if (!std::regex_match(ln, label_name)) return fail("bad label name '" + ln + "'");
        if (s.labels.count(ln)) return fail("label " + ln + " twice");
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') return fail("label value must be quoted");
        ++i;
        std::string v;
        while (true) {
          if (i >= line.size()) return fail("unterminated label value");
          char c = line[i++];
          if (c == '"') break;
          if (c == '\\') {
            if (i >= line.size()) return fail("dangling escape");
            char e = line[i++];
            if (e == '\\') {
              v += '\\';
            } else if (e == '"') {
              v += '"';
            } else if (e == 'n') {
              v += '\n';
            } else {
              return fail(std::string("bad escape \\") + e);
            }
          } else {
            v += c;
          }
        }
        s.labels[ln] = v;
        if (i < line.size() && line[i] == ',') {
          ++i;
        } else if (i >= line.size() || line[i] != '}') {
          return fail("expected , or } in the label set");
        }
      }
    }
    if (i >= line.size() || line[i] != ' ') return fail("expected a space before the value");
    std::string rest = line.substr(i + 1);
    size_t sp = rest.find(' ');
    std::string value = rest.substr(0, sp);
    if (!ParseFloat(value, &s.value)) return fail("bad value '" + value + "'");
    if (sp != std::string::npos) {
      std::string ts = rest.substr(sp + 1);
      if (!std::regex_match(ts, std::regex("-?\\d+"))) return fail("bad timestamp '" + ts + "'");
    }
    for (const auto& [k, v] : s.labels) series_key += "|" + k + "=" + v;
    if (!seen_series.insert(series_key).second) return fail("series twice: " + series_key);
    const std::string fam = family_of(s.name);
    if (fam != current) {
      if (finished.count(fam)) return fail(fam + ": samples not contiguous");
      if (!current.empty()) finished.insert(current);
      current = fam;
    }
    Family& f = ex.families[fam];
    f.name = fam;
    if (f.type == "counter" && !(s.value >= 0)) return fail(s.name + ": negative counter");
    if (f.type == "histogram" && s.name == fam + "_bucket" && !s.labels.count("le"))
      return fail(s.name + ": bucket without le");
    f.samples.push_back(std::move(s));
  }
  // Histograms: buckets cumulative, +Inf present and equal to _count.
  for (const auto& [name, f] : ex.families) {
    if (f.type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    std::map<std::map<std::string, std::string>, double> counts;
    for (const Sample& s : f.samples) {
      auto labels = s.labels;
      if (s.name == name + "_bucket") {
        double le;
        if (!ParseFloat(labels["le"], &le)) {
          ex.error = name + ": bad le '" + labels["le"] + "'";
          return ex;
        }
        labels.erase("le");
        buckets[labels].push_back({le, s.value});
      } else if (s.name == name + "_count") {
        counts[labels] = s.value;
      } else if (s.name != name + "_sum") {
        ex.error = name + ": unexpected sample " + s.name;
        return ex;
      }
    }
    for (auto& [labels, b] : buckets) {
      for (size_t k = 1; k < b.size(); ++k) {
        if (!(b[k].first > b[k - 1].first) || b[k].second < b[k - 1].second) {
          ex.error = name + ": buckets not increasing and cumulative";
          return ex;
        }
      }
      if (b.empty() || !std::isinf(b.back().first) || !counts.count(labels) ||
          counts[labels] != b.back().second) {
        ex.error = name + ": +Inf bucket missing or not equal to _count";
        return ex;
      }
    }
  }
  return ex;
}

}  // namespace portolan::test_support
