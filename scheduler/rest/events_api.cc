// SPDX-License-Identifier: Apache-2.0
// GET /v1/events: the core's EventHub as server-sent events, each event
// filtered by what the caller may read through the REST API: a job's
// changes go to admins and its own tenant, an agent's to admins and the
// operators of its site, a link's to admins and operators.
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "portolan/codec/codec.h"
#include "portolan/rest/api.h"

namespace portolan::rest {

using scheduler::EventHub;

namespace {

// Names this process's numbering in SSE ids ("<epoch>-<seq>"): an id from an
// earlier scheduler, or from another one of an HA cluster, is recognised as
// such and answered with a reset instead of a wrong resumption.
const std::string& Epoch() {
  static const std::string epoch = [] {
    std::random_device rd;
    return absl::StrCat(absl::Hex(static_cast<uint32_t>(rd()), absl::kZeroPad8));
  }();
  return epoch;
}

const char* KindName(const v1::Event& e) {
  switch (e.change_case()) {
    case v1::Event::kJob:
      return "job";
    case v1::Event::kAgent:
      return "agent";
    case v1::Event::kLink:
      return "link";
    default:
      return "reset";
  }
}

bool MaySee(const auth::Principal& p, const v1::Event& e) {
  switch (e.change_case()) {
    case v1::Event::kJob:
      return p.is_admin() || (p.is_tenant() && e.job().tenant() == p.tenant);
    case v1::Event::kAgent:
      return p.is_admin() || (p.is_operator() && p.may_see_site(e.agent().site()));
    case v1::Event::kLink:
      return p.is_admin() || p.is_operator();
    default:
      return true;
  }
}

void AppendSse(const v1::Event& e, std::string* out) {
  // The JSON is one line (no whitespace; newlines in strings are escaped).
  absl::StrAppend(out, "id: ", Epoch(), "-", e.seq(), "\nevent: ", KindName(e),
                  "\ndata: ", codec::ToJson(e), "\n\n");
}

class EventStream : public ResponseStream {
 public:
  EventStream(EventHub* hub, EventHub::Filter filter, uint64_t after, std::string first)
      : hub_(hub), filter_(std::move(filter)), after_(after), first_(std::move(first)) {}
  void Start(std::function<void()> wake) override {
    sub_ = hub_->Subscribe(std::move(filter_), after_, std::move(wake));
  }
  std::string Pull() override {
    std::string out = std::move(first_);
    first_.clear();
    for (const v1::Event& e : sub_->Take()) AppendSse(e, &out);
    return out;
  }
  std::string Keepalive() override { return ":\n\n"; }

 private:
  EventHub* const hub_;
  EventHub::Filter filter_;
  const uint64_t after_;
  std::string first_;
  std::unique_ptr<EventHub::Subscription> sub_;
};

struct Query {
  std::set<std::string> kinds{"job", "agent", "link"};
  std::string job;  // only this job and its tasks
};

absl::StatusOr<Query> ParseQuery(const Request& req) {
  Query q;
  for (const auto& [k, v] : req.query) {
    if (k == "kinds") {
      q.kinds.clear();
      for (absl::string_view kind : absl::StrSplit(v, ',', absl::SkipEmpty())) {
        if (kind != "job" && kind != "agent" && kind != "link") {
          return codec::InvalidField("kinds",
                                     absl::StrCat("unknown kind '", kind, "' (job, agent, link)"));
        }
        q.kinds.insert(std::string(kind));
      }
      if (q.kinds.empty())
        return codec::InvalidField("kinds", "kinds names none of job, agent, link");
    } else if (k == "job") {
      q.job = v;
    } else {
      return codec::InvalidField(k, absl::StrCat("unknown query parameter '", k, "' (kinds, job)"));
    }
  }
  if (!q.job.empty()) q.kinds = {"job"};
  return q;
}

}  // namespace

void RegisterEventsApi(Server& server, EventHub* hub) {
  server.Route("GET", "/v1/events", [hub](const Request& req) {
    auto q = ParseQuery(req);
    if (!q.ok()) return StatusResponse(q.status());
    // Resumption: Last-Event-ID (EventSource sends it when it reconnects).
    std::string first = "retry: 2000\n: portolan events\n\n";
    uint64_t after = hub->last_seq();
    auto last = req.headers.find("last-event-id");
    if (last != req.headers.end() && !last->second.empty()) {
      std::pair<std::string, std::string> id = absl::StrSplit(last->second, '-');
      uint64_t seq = 0;
      if (id.first == Epoch() && absl::SimpleAtoi(id.second, &seq) && seq <= after) {
        after = seq;
      } else {
        v1::Event reset;
        reset.set_seq(after);
        reset.set_reset(absl::StrCat("events since ", last->second,
                                     " are unknown here: the scheduler restarted or another one "
                                     "leads now"));
        AppendSse(reset, &first);
      }
    }
    auth::Principal who = req.principal;
    Query query = *std::move(q);
    EventHub::Filter filter = [who = std::move(who), query = std::move(query)](const v1::Event& e) {
      if (e.has_reset()) return true;
      if (!query.kinds.contains(KindName(e)) || !MaySee(who, e)) return false;
      return query.job.empty() || e.job().id() == query.job || e.job().array_job() == query.job;
    };
    Response r;
    r.content_type = "text/event-stream";
    r.headers = {{"Cache-Control", "no-store"}, {"X-Accel-Buffering", "no"}};
    r.stream = std::make_shared<EventStream>(hub, std::move(filter), after, std::move(first));
    return r;
  });
}

}  // namespace portolan::rest
