// SPDX-License-Identifier: Apache-2.0
// `portolan watch` without a job: the scheduler's event stream (GET
// /v1/events) as lines, reconnecting where it left off when the stream
// breaks.
#include <chrono>
#include <iostream>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "api/cli/cli.h"
#include "api/cli/printers.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"

namespace portolan::cli {
namespace {

std::string Line(const v1::Event& e) {
  const std::string when = e.has_time() ? absl::FormatTime("%H:%M:%E3S", base::FromProto(e.time()),
                                                           absl::LocalTimeZone())
                                        : std::string(12, ' ');
  switch (e.change_case()) {
    case v1::Event::kJob: {
      const v1::JobChange& j = e.job();
      std::string where = j.agent().empty() ? "-" : absl::StrCat(j.agent(), "@", j.site());
      return absl::StrFormat("%s  job    %-28s %-10s %-13s %-24s %s", when, j.id(), j.tenant(),
                             v1::Job::State_Name(j.state()), where, j.reason());
    }
    case v1::Event::kAgent: {
      const v1::AgentChange& a = e.agent();
      return absl::StrFormat("%s  agent  %-28s %-16s %-9s %-12s %d/%d PUs, %d job(s)", when, a.id(),
                             a.site(), v1::Agent::State_Name(a.state()),
                             a.connected() ? "connected" : "disconnected", a.allocated().cpus(),
                             a.capacity().cpus(), a.jobs());
    }
    case v1::Event::kLink: {
      const v1::Link& l = e.link();
      return absl::StrFormat("%s  link   %-28s %s - %s  %s  rtt %s ms  %s Gbit/s", when, l.id(),
                             l.a(), l.b(), (!l.has_up() || l.up()) ? "up" : "DOWN",
                             Fixed(l.rtt_ms()), Fixed(l.gbps()));
    }
    default:
      return absl::StrCat(when, "  reset  ", e.reset());
  }
}

}  // namespace

int WatchEvents(Context& ctx, const Args& a) {
  std::string query;
  if (a.has("kinds")) query = "kinds=" + a.vm["kinds"].as<std::string>();
  const int count = a.get<int>("count", 0);
  if (count < 0) return ctx.Usage("watch [--kinds job,agent,link] [--count N]: N must be >= 0");
  int seen = 0;
  std::string last_id;
  bool opened = false;
  for (int failures = 0;;) {
    absl::Status st = ctx.client().Watch(
        query, &last_id,
        [&](const v1::Event& e) {
          failures = 0;
          if (ctx.output == Output::kJson) {
            *ctx.out << codec::ToJson(e) << std::endl;
          } else if (ctx.structured()) {
            *ctx.out << "---\n";
            ctx.Emit(e);
          } else {
            *ctx.out << Line(e) << std::endl;
          }
          return count == 0 || ++seen < count;
        },
        [&] { opened = true; });
    if (st.ok()) return kExitOk;
    // Refusals (a bad token, a bad --kinds) and a first connection that
    // fails (a wrong URL, a certificate not trusted) end it; a stream that
    // broke is resumed after the last event seen, backing off up to 10 s.
    if (st.code() != absl::StatusCode::kUnavailable || !opened) return ctx.Report(st);
    ++failures;
    *ctx.err << "portolan: " << st.message() << "; reconnecting" << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(std::min(10, failures)));
  }
}

}  // namespace portolan::cli
