// SPDX-License-Identifier: Apache-2.0
// Commands on the dataset registry: datasets, dataset.
#include <iostream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "api/cli/cli.h"
#include "api/cli/printers.h"

namespace portolan::cli {
namespace {

namespace po = boost::program_options;

std::string Categories(const v1::RegisteredDataset& d) {
  std::vector<std::string> names;
  for (int c : d.categories()) names.push_back(v1::Dataset::Category_Name(c));
  return names.empty() ? "-" : absl::StrJoin(names, ",");
}

void PrintDatasets(std::ostream& out, const v1::ListDatasetsResponse& r) {
  out << absl::StrFormat("%-20s %-10s %-6s %-20s %-26s %9s %10s %-9s %s\n", "DATASET", "TENANT",
                         "ORIGIN", "SITE", "CATEGORIES", "SIZE GB", "SUBJECTS", "STATE", "VERSION");
  for (const auto& d : r.datasets()) {
    out << absl::StrFormat("%-20s %-10s %-6s %-20s %-26s %9g %10u %-9s %u\n", d.id(), d.tenant(),
                           d.origin(), d.location().site(), Categories(d), d.size_gb(),
                           d.subjects(), v1::Classification::State_Name(d.classification().state()),
                           d.version());
  }
  if (!r.next_page_token().empty()) out << "more: --page-token " << r.next_page_token() << "\n";
}

void PrintDataset(std::ostream& out, const v1::RegisteredDataset& d) {
  out << "dataset:     " << d.id() << " (version " << d.version() << ")\n";
  out << "tenant:      " << d.tenant() << "\n";
  out << "origin:      " << d.origin() << "\n";
  out << "location:    " << d.location().site() << ":" << d.location().path() << "\n";
  out << absl::StrFormat("size:        %.3f GB\n", d.size_gb());
  out << "categories:  " << Categories(d) << "\n";
  out << absl::StrFormat("subjects:    %u (%u sensitive)\n", d.subjects(), d.sensitive_subjects());
  if (!d.sector().empty()) out << "sector:      " << d.sector() << "\n";
  if (!d.purposes().empty()) out << "purposes:    " << absl::StrJoin(d.purposes(), ", ") << "\n";
  const v1::Classification& c = d.classification();
  out << "class:       " << v1::Classification::State_Name(c.state()) << " by " << c.by()
      << (c.note().empty() ? "" : " (" + c.note() + ")") << "\n";
  if (!d.derived_from_job().empty()) {
    out << "derived:     by " << d.derived_from_job() << " from "
        << absl::StrJoin(d.derived_from(), ", ") << "\n";
  }
  if (!d.sha256().empty())
    out << "content:     " << d.bytes() << " bytes, sha256 " << d.sha256() << "\n";
  out << "updated:     by " << d.updated_by() << "\n";
}

void PrintVersions(std::ostream& out, const v1::DatasetVersions& v) {
  out << absl::StrFormat("%-8s %-26s %10s %-9s %-24s %s\n", "VERSION", "CATEGORIES", "SUBJECTS",
                         "STATE", "BY", "SITE");
  for (const auto& d : v.versions()) {
    out << absl::StrFormat("%-8u %-26s %10u %-9s %-24s %s\n", d.version(), Categories(d),
                           d.subjects(), v1::Classification::State_Name(d.classification().state()),
                           d.updated_by(), d.location().site());
  }
}

}  // namespace

void PrintJobData(std::ostream& out, const v1::Job& j) {
  if (!j.inputs().empty()) out << "  inputs:\n";
  for (const v1::StagedInput& in : j.inputs()) {
    std::string how;
    if (in.local()) {
      how = absl::StrCat("local at ", in.from_site(), " (linked)");
    } else if (in.cached()) {
      how = absl::StrFormat("from this site's cache, %u bytes", in.bytes_done());
    } else {
      how = absl::StrFormat(
          "from %s%s, %u of %u bytes, %.1f Mbit/s%s", in.from_site(),
          in.from_agent().empty() ? "" : absl::StrCat(" (agent ", in.from_agent(), ")"),
          in.bytes_done(), in.bytes_total(), in.rate_mbps(),
          in.done() ? absl::StrFormat(" in %.2f s", in.seconds()) : " so far");
    }
    out << absl::StrFormat("    %-20s v%-3u %-8s %s%s\n", in.dataset(), in.version(),
                           !in.error().empty() ? "failed"
                           : in.done()         ? "staged"
                                               : "staging",
                           how, in.error().empty() ? "" : absl::StrCat(": ", in.error()));
  }
  if (!j.outputs().empty()) out << "  outputs:\n";
  for (const v1::JobOutput& o : j.outputs()) {
    const v1::ProducedOutput* p = nullptr;
    for (const v1::ProducedOutput& x : j.produced()) {
      if (x.dataset() == o.id()) p = &x;
    }
    if (p == nullptr) {
      out << absl::StrFormat("    %-20s -> $PORTOLAN_OUTPUTS/%s (registered when it succeeds)\n",
                             o.id(), o.path());
    } else if (!p->error().empty()) {
      out << absl::StrFormat("    %-20s not kept: %s\n", o.id(), p->error());
    } else {
      out << absl::StrFormat("    %-20s v%-3u %u bytes in %u file(s) at %s:%s\n", o.id(),
                             p->version(), p->bytes(), p->files(), p->site(), p->store_path());
    }
  }
}

void PrintMeasuredPaths(std::ostream& out, const v1::NetworkView& n) {
  bool any = false;
  for (const v1::RttEntry& e : n.matrix()) {
    if (e.measured_transfers() == 0) continue;
    if (!any) out << "\nMeasured by staging transfers (configured bottleneck beside):\n";
    any = true;
    out << absl::StrFormat("  %s -> %s: %.3f Gbps over %u transfer(s), configured %s Gbps\n",
                           e.from(), e.to(), e.measured_gbps(), e.measured_transfers(),
                           Fixed(e.bottleneck_gbps(), 0));
  }
}

namespace {

int Datasets(Context& ctx, const Args& a) {
  const int limit = a.get<int>("limit", 100);
  if (limit < 1 || limit > 1000) {
    *ctx.err << "portolan: --limit must be 1-1000 (datasets per page), got " << limit << "\n";
    return kExitUsage;
  }
  return ctx.Show(ctx.client().ListDatasets(a.get<std::string>("tenant", ""), limit,
                                            a.get<std::string>("page-token", "")),
                  PrintDatasets);
}

int Dataset(Context& ctx, const Args& a) {
  const auto& w = a.args;
  if (w.size() == 1) return ctx.Show(ctx.client().GetDataset(w[0]), PrintDataset);
  if (w.size() == 2 && w[0] == "versions")
    return ctx.Show(ctx.client().DatasetVersions(w[1]), PrintVersions);
  if ((w.size() == 2 && w[0] == "register") || (w.size() == 3 && w[0] == "set")) {
    v1::RegisteredDataset body;
    if (absl::Status st = LoadMessage(w.back(), &body); !st.ok()) return ctx.FileError(st);
    return ctx.Show(
        w[0] == "register" ? ctx.client().CreateDataset(body) : ctx.client().PutDataset(w[1], body),
        PrintDataset);
  }
  return ctx.Usage(
      "dataset ID | dataset register FILE | dataset set ID FILE | dataset versions ID");
}

}  // namespace

void AddDatasetCommands(CommandTable& t) {
  t.Add({"datasets", "datasets [--tenant T] [--limit N] [--page-token T]",
         "datasets [--tenant T]        registered datasets: origin, site, categories, subjects,\n"
         "                             declared or attested, version",
         [](po::options_description& d) {
           d.add_options()("tenant", po::value<std::string>())("limit", po::value<int>())(
               "page-token", po::value<std::string>());
         },
         0, 0, false, Datasets});
  t.Add({"dataset",
         "dataset ID | dataset register FILE | dataset set ID FILE | dataset versions ID",
         "dataset ID                   one registered dataset\n"
         "dataset register FILE        register a dataset (YAML or JSON RegisteredDataset)\n"
         "dataset set ID FILE          change it (a new version; an admin or data officer\n"
         "                             attests with classification: {state: attested})\n"
         "dataset versions ID          every version, newest first",
         nullptr, 1, 3, false, Dataset});
}

}  // namespace portolan::cli
