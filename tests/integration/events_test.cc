// SPDX-License-Identifier: Apache-2.0
// GET /v1/events through the real scheduler and agents: each role's stream
// carries exactly what its REST reads would show; a reconnect resumes where
// it left off; `portolan watch` prints the stream.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "harness.h"
#include "portolan/codec/codec.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

// A stream read on a thread of its own until `done` says the last expected
// event has come (or 60 s pass, which fails the test).
class Watcher {
 public:
  Watcher(const Cluster& c, const std::string& token, std::function<bool(const v1::Event&)> done,
          const std::string& query = "")
      : client_(c.ClientWith(token)) {
    thread_ = std::thread([this, done = std::move(done), query] {
      std::string last;
      status_ = client_->Watch(
          query, &last,
          [&](const v1::Event& e) {
            std::lock_guard<std::mutex> lock(mu_);
            events_.push_back(e);
            ids_.push_back(last);
            return !done(e);
          },
          [this] {
            std::lock_guard<std::mutex> lock(mu_);
            open_ = true;
            cv_.notify_all();
          });
      std::lock_guard<std::mutex> lock(mu_);
      ended_ = true;
      cv_.notify_all();
    });
  }
  ~Watcher() {
    if (thread_.joinable()) thread_.join();
  }
  bool WaitOpen() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(20), [this] { return open_ || ended_; }) && open_;
  }
  // The events once the stream ended; fails the test if it did not in 60 s.
  std::vector<v1::Event> Events() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      EXPECT_TRUE(cv_.wait_for(lock, seconds(60), [this] { return ended_; }))
          << "the stream did not deliver the last expected event";
      if (!ended_) return events_;
    }
    if (thread_.joinable()) thread_.join();
    EXPECT_TRUE(status_.ok()) << status_;
    return events_;
  }
  std::vector<std::string> ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_;
  }
  // How the stream ended (OK while it runs).
  absl::Status status() {
    std::lock_guard<std::mutex> lock(mu_);
    return ended_ ? status_ : absl::OkStatus();
  }

 private:
  std::unique_ptr<client::Client> client_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false, ended_ = false;
  std::vector<v1::Event> events_;
  std::vector<std::string> ids_;
  absl::Status status_;
};

bool Succeeded(const v1::Event& e, const std::string& job) {
  return e.has_job() && e.job().id() == job && e.job().state() == v1::Job::succeeded;
}
bool LinkUp(const v1::Event& e) { return e.has_link() && e.link().has_up() && e.link().up(); }

std::vector<v1::Job::State> StatesOf(const std::vector<v1::Event>& events, const std::string& job) {
  std::vector<v1::Job::State> out;
  for (const v1::Event& e : events)
    if (e.has_job() && e.job().id() == job) out.push_back(e.job().state());
  return out;
}

std::string Submit(Cluster& c, const std::string& tenant) {
  auto job = c.client().Submit(JobSpec({"/bin/true"}, 1, tenant));
  EXPECT_TRUE(job.ok()) << job.status();
  if (!job.ok()) return "";
  EXPECT_TRUE(WaitForState(c.client(), job->id(), v1::Job::succeeded));
  return job->id();
}

// Admin, tenants acme and globex and the operator of lingang-idc-1 watch
// while agents register, jobs of both tenants run and a cable goes down and
// up: each sees what its REST reads show and nothing else. All over HTTPS.
TEST(EventsIT, EachRoleSeesExactlyWhatItsReadsShow) {
  Cluster c;
  c.EnableTls();  // streams over HTTPS: a read and a write pending at once
  c.StartScheduler();
  std::string a1, g1, a2;  // set before the events that end the watchers can come
  std::mutex ids_mu;
  auto id_of = [&](std::string& id) {
    std::lock_guard<std::mutex> lock(ids_mu);
    return id;
  };
  Watcher admin(c, Cluster::kAdminToken, LinkUp);
  Watcher op(c, Cluster::kOperatorToken, LinkUp);
  Watcher acme(c, Cluster::kAcmeToken, [&](const v1::Event& e) { return Succeeded(e, id_of(a2)); });
  Watcher globex(c, Cluster::kGlobexToken,
                 [&](const v1::Event& e) { return Succeeded(e, id_of(g1)); });
  // A failed assertion returns with the other streams open, waiting for
  // events that will not come: the scheduler goes first then, which ends
  // them, so the test ends (instead of hanging until ctest's timeout).
  absl::Cleanup end_streams = [&] {
    if (::testing::Test::HasFailure()) c.KillScheduler();
  };
  for (Watcher* w : {&admin, &op, &acme, &globex})
    ASSERT_TRUE(w->WaitOpen()) << "a stream did not open in 20 s: " << w->status() << "\n"
                               << c.SchedulerLog();

  c.StartAgent("lg1", "lingang-idc-1");
  c.StartAgent("hk1", "hongkong-1");
  ASSERT_TRUE(WaitFor([&] { return c.client().ListAgents()->agents_size() == 2; }, seconds(20)));
  {
    std::string id = Submit(c, "acme");
    std::lock_guard<std::mutex> lock(ids_mu);
    a1 = id;
  }
  // globex's watcher ends at its job's success: a1's events came before.
  // The ids are set under the lock taken before each submit: a job can end
  // before Submit returns, and a watcher must not judge its success with the
  // id still unset (it then waited for ever).
  {
    std::lock_guard<std::mutex> lock(ids_mu);
    auto job = c.client().Submit(JobSpec({"/bin/true"}, 1, "globex"));
    ASSERT_TRUE(job.ok()) << job.status();
    g1 = job->id();
  }
  ASSERT_TRUE(WaitForState(c.client(), g1, v1::Job::succeeded));
  {
    std::lock_guard<std::mutex> lock(ids_mu);
    auto job = c.client().Submit(JobSpec({"/bin/true"}, 1, "acme"));
    ASSERT_TRUE(job.ok()) << job.status();
    a2 = job->id();
  }
  ASSERT_TRUE(WaitForState(c.client(), a2, v1::Job::succeeded));
  ASSERT_TRUE(c.client().SetLinkUp("sjc2-lg1-hkg", false).ok());
  ASSERT_TRUE(c.client().SetLinkUp("sjc2-lg1-hkg", true).ok());

  // Admin: everything, numbered without gaps.
  const std::vector<v1::Event> all = admin.Events();
  ASSERT_FALSE(all.empty());
  for (size_t i = 1; i < all.size(); ++i) EXPECT_EQ(all[i].seq(), all[i - 1].seq() + 1) << i;
  for (const std::string& id : {a1, g1, a2}) {
    const auto states = StatesOf(all, id);
    ASSERT_GE(states.size(), 3u) << id;
    EXPECT_EQ(states.front(), v1::Job::queued) << id;
    EXPECT_EQ(states.back(), v1::Job::succeeded) << id;
    EXPECT_NE(std::find(states.begin(), states.end(), v1::Job::running), states.end()) << id;
  }
  std::set<std::string> agents_seen;
  std::vector<bool> link_states;
  for (const v1::Event& e : all) {
    if (e.has_agent()) agents_seen.insert(e.agent().id());
    if (e.has_link()) {
      EXPECT_EQ(e.link().id(), "sjc2-lg1-hkg");
      link_states.push_back(e.link().up());
    }
    if (e.has_job() && e.job().state() == v1::Job::running) {
      EXPECT_FALSE(e.job().agent().empty());
      EXPECT_FALSE(e.job().site().empty());
    }
  }
  EXPECT_EQ(agents_seen, (std::set<std::string>{"lg1", "hk1"}));
  EXPECT_EQ(link_states, (std::vector<bool>{false, true}));

  // The operator of lingang-idc-1: its site's agent and the links; no jobs.
  const std::vector<v1::Event> op_events = op.Events();
  EXPECT_FALSE(op_events.empty());
  int op_agent_events = 0, op_link_events = 0;
  for (const v1::Event& e : op_events) {
    EXPECT_FALSE(e.has_job()) << codec::ToJson(e);
    if (e.has_agent()) {
      EXPECT_EQ(e.agent().id(), "lg1") << codec::ToJson(e);
      ++op_agent_events;
    }
    op_link_events += e.has_link() ? 1 : 0;
  }
  EXPECT_GT(op_agent_events, 0);
  EXPECT_EQ(op_link_events, 2);
  // Tenants: their own jobs only; no agents, no links.
  const std::vector<v1::Event> acme_events = acme.Events();
  const std::vector<v1::Event> globex_events = globex.Events();
  for (const auto& [events, tenant] : {std::pair{&acme_events, std::string("acme")},
                                       std::pair{&globex_events, std::string("globex")}}) {
    ASSERT_FALSE(events->empty()) << tenant;
    for (const v1::Event& e : *events) {
      ASSERT_TRUE(e.has_job()) << tenant << " got " << codec::ToJson(e);
      EXPECT_EQ(e.job().tenant(), tenant) << codec::ToJson(e);
    }
  }
  EXPECT_EQ(StatesOf(acme_events, a1).back(), v1::Job::succeeded);
  EXPECT_EQ(StatesOf(globex_events, g1).back(), v1::Job::succeeded);
  EXPECT_TRUE(StatesOf(globex_events, a1).empty()) << "globex saw acme's job";
  EXPECT_TRUE(StatesOf(acme_events, g1).empty()) << "acme saw globex's job";

  // A reconnect with the id of an event resumes right after it.
  const std::vector<std::string> ids = admin.ids();
  ASSERT_EQ(ids.size(), all.size());
  const size_t mid = all.size() / 2;
  std::string last = ids[mid];
  std::vector<v1::Event> resumed;
  absl::Status st = c.client().Watch("", &last, [&](const v1::Event& e) {
    resumed.push_back(e);
    return resumed.size() < all.size() - mid - 1;
  });
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_EQ(resumed.size(), all.size() - mid - 1);
  for (size_t i = 0; i < resumed.size(); ++i)
    EXPECT_EQ(resumed[i].SerializeAsString(), all[mid + 1 + i].SerializeAsString()) << i;
  EXPECT_EQ(last, ids.back());
  // An id this scheduler did not give (an earlier run's) starts with a reset.
  last = "0badcafe-3";
  st = c.client().Watch("", &last, [&](const v1::Event& e) {
    EXPECT_TRUE(e.has_reset()) << codec::ToJson(e);
    EXPECT_TRUE(absl::StrContains(e.reset(), "restarted")) << e.reset();
    return false;
  });
  ASSERT_TRUE(st.ok()) << st;
}

// Refusals are clear: a bad token, an unknown kind, an unknown parameter.
TEST(EventsIT, BadTokensAndQueriesAreRefusedWithTheReason) {
  Cluster c;
  c.StartScheduler();
  std::string last;
  auto never = [](const v1::Event&) { return false; };
  absl::Status st = c.ClientWith("not-a-token")->Watch("", &last, never);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnauthenticated) << st;
  st = c.client().Watch("kinds=job,cables", &last, never);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "unknown kind 'cables'")) << st;
  EXPECT_EQ(codec::StatusField(st), "kinds");
  st = c.client().Watch("since=5", &last, never);
  EXPECT_EQ(codec::StatusField(st), "since") << st;
  // The scheduler goes on serving.
  EXPECT_TRUE(c.client().ListAgents().ok());
}

// `portolan watch --kinds link --count 2 -o json` prints the two link
// changes as JSON lines and exits 0.
TEST(EventsIT, TheCliPrintsTheStream) {
  Cluster c;
  c.StartScheduler();
  std::pair<int, std::string> result;
  std::atomic<bool> done{false};
  std::thread cli([&] {
    result = Cli(c, "-o json watch --kinds link --count 2");
    done = true;
  });
  // The CLI subscribes at some point: flip the link until it has seen two
  // changes (bounded: 40 flips).
  bool up = false;
  for (int i = 0; i < 40 && !done; ++i) {
    EXPECT_TRUE(c.client().SetLinkUp("apg-lg2-hkg", up).ok());
    up = !up;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  cli.join();
  ASSERT_EQ(result.first, 0) << result.second;
  std::vector<std::string> lines = absl::StrSplit(result.second, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << result.second;
  for (const std::string& line : lines) {
    v1::Event e;
    ASSERT_TRUE(codec::ParseJson(line, &e).ok()) << line;
    EXPECT_EQ(e.link().id(), "apg-lg2-hkg");
  }
}

}  // namespace
}  // namespace portolan::testing
