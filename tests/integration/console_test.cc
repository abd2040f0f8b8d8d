// SPDX-License-Identifier: Apache-2.0
// The web console in a real browser: Debian's headless chromium driven
// through chromedriver (WebDriver) against the real scheduler over HTTPS,
// with real agents. Screenshots go to build/console-screenshots/.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include "../support/webdriver.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "harness.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

class ConsoleIT : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!WebDriver::Available()) return;
    cluster_ = new Cluster();
    cluster_->EnableTls();
    cluster_->StartScheduler();
    cluster_->StartAgent("lg1-node-01", "lingang-idc-1", "pack:2 numa:2(memory=32GiB) core:4 pu:2");
    cluster_->StartAgent("hk1-node-01", "hongkong-1");
    ASSERT_TRUE(WaitFor(
        [] {
          return cluster_->client().ListAgents().ok() &&
                 cluster_->client().ListAgents()->agents_size() == 2;
        },
        seconds(20)));
    // An acme job with personal data of 250,000 people at Lingang: other
    // jurisdictions need an instrument acme does not hold.
    v1::Job spec = JobSpec({"/bin/sleep", "600"}, 2, "acme");
    spec.set_name("align-reads");
    v1::Dataset* d = spec.add_datasets();
    d->set_id("reads-2026q3");
    d->set_origin("CN");
    d->set_location("lingang-idc-1");
    d->set_size_gb(50);
    d->add_categories(v1::Dataset::personal);
    d->set_subjects(250000);
    auto job = cluster_->client().Submit(spec);
    ASSERT_TRUE(job.ok()) << job.status();
    acme_job_ = job->id();
    ASSERT_TRUE(WaitForState(cluster_->client(), acme_job_, v1::Job::running, seconds(30)));
    // globex holds a standard contract that expires in January 2027 (within
    // 90 days of the test machine's date, or already past) and exports
    // 150,000 people's data to Hong Kong under it: its ledger counts them.
    std::string body;
    ASSERT_EQ(*cluster_->client().Raw(
                  "PUT", "/v1/tenants/globex",
                  R"({"instruments": [{"type": "cn_standard_contract", "from": "CN", "to": "*",
                      "reference": "SC-2026-017", "expires": "2027-01-20"}]})",
                  &body),
              200)
        << body;
    ASSERT_EQ(*cluster_->client().Raw(
                  "POST", "/v1/jobs",
                  R"({"name": "hk-export", "tenant": "globex", "command": ["/bin/true"],
                      "resources": {"cpus": 1, "memory_mb": 64},
                      "placement": {"sites": ["hongkong-1"]},
                      "datasets": [{"id": "crm-2026", "origin": "CN", "location": "lingang-idc-1",
                                    "size_gb": 1, "categories": ["personal"], "subjects": 150000}]})",
                  &body),
              201)
        << body;
    auto globex = cluster_->client().Submit(JobSpec({"/bin/true"}, 1, "globex"));
    ASSERT_TRUE(globex.ok()) << globex.status();
    globex_job_ = globex->id();

    const int port = WebDriver::FreePort();
    driver_process_ = new Process({WebDriver::kChromedriver, "--port=" + std::to_string(port)},
                                  cluster_->dir() + "/chromedriver.log");
    driver_ = new WebDriver(port);
    std::filesystem::create_directories(kShots);
  }
  static void TearDownTestSuite() {
    delete driver_;  // ends the browser session (chromium exits)
    driver_ = nullptr;
    if (driver_process_ != nullptr) {
      driver_process_->Signal(SIGTERM);
      driver_process_->Wait(std::chrono::seconds(10));
      delete driver_process_;
      driver_process_ = nullptr;
    }
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (!WebDriver::Available()) {
      if (getenv("PORTOLAN_SKIP_BROWSER_TESTS") != nullptr) GTEST_SKIP() << "no chromium";
      FAIL() << "the browser tests need Debian's chromium and chromium-driver "
                "(deploy/install-deps.sh); PORTOLAN_SKIP_BROWSER_TESTS=1 skips them";
    }
    ASSERT_NE(driver_, nullptr) << "the suite's set-up failed";
  }
  void TearDown() override {
    if (driver_ == nullptr) return;
    if (HasFailure()) {
      std::cerr << "the page as it was: "
                << Shot(std::string("failed-") +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name())
                << "\n";
    }
    // No page of the console may break its own Content-Security-Policy or
    // throw: every message the browser logged at SEVERE is a failure, apart
    // from the API's refusals that the tests provoke (the browser logs each
    // 4xx answer as "Failed to load resource"; the console shows them).
    for (const std::string& line : driver_->ConsoleLog()) {
      if (absl::StartsWith(line, "SEVERE") && !absl::StrContains(line, "Failed to load resource")) {
        ADD_FAILURE() << "browser console: " << line;
      }
    }
  }

  static std::string Url(const std::string& hash = "") {
    return cluster_->base_url() + "/ui/" + hash;
  }
  // A fresh login page: no token kept, nothing of the last page left.
  static void FreshLoginPage() {
    WebDriver& d = *driver_;
    d.Navigate(Url());
    d.Execute("sessionStorage.clear(); return true;");
    d.Navigate("about:blank");
    d.Navigate(Url());
    d.WaitFor("#token");
  }
  // The login form filled in on a fresh page.
  static void SignIn(const std::string& token) {
    WebDriver& d = *driver_;
    FreshLoginPage();
    d.Type(d.Find("#token"), token);
    d.Click(d.Find("#login"));
  }
  static void SignInAs(const std::string& token, const std::string& role) {
    SignIn(token);
    driver_->Until([&] { return driver_->TextOf("#role") == role; }, "signed in as " + role);
  }
  // Clicks an SVG path with the mouse where it is on top (where another
  // cable crosses or runs close, a user moves along the line too): the first
  // point from its middle outwards that the browser hit-tests to it.
  static void ClickPath(const std::string& css) {
    auto xy = driver_->Execute("const p = document.querySelector(\"" + css +
                               "\");"
                               "const m = p.getScreenCTM(), n = p.getTotalLength();"
                               "for (const f of [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8]) {"
                               "  const pt = p.getPointAtLength(n * f);"
                               "  const x = Math.round(pt.x * m.a + pt.y * m.c + m.e);"
                               "  const y = Math.round(pt.x * m.b + pt.y * m.d + m.f);"
                               "  if (document.elementFromPoint(x, y) === p) return [x, y];"
                               "}"
                               "return null;");
    ASSERT_FALSE(xy.is_null()) << css << " is hidden under other elements along its length";
    driver_->ClickAt(xy.at(0).as_integer(), xy.at(1).as_integer());
  }
  static bool Exists(const std::string& css) { return !driver_->FindAll(css).empty(); }
  static void Go(const std::string& hash) {
    driver_->Execute("location.hash = '" + hash + "'; return true;");
  }
  static std::string Shot(const std::string& name) {
    const std::string path = std::string(kShots) + "/" + name + ".png";
    driver_->Screenshot(path);
    return path;
  }

  static constexpr const char* kShots = PORTOLAN_SCREENSHOT_DIR;
  static Cluster* cluster_;
  static Process* driver_process_;
  static WebDriver* driver_;
  static std::string acme_job_, globex_job_;
};
Cluster* ConsoleIT::cluster_ = nullptr;
Process* ConsoleIT::driver_process_ = nullptr;
WebDriver* ConsoleIT::driver_ = nullptr;
std::string ConsoleIT::acme_job_;
std::string ConsoleIT::globex_job_;

TEST_F(ConsoleIT, ServedFromTheBinaryWithStrictHeaders) {
  WebDriver& d = *driver_;
  d.Navigate(Url());
  d.WaitFor("#token");
  // The headers as the browser got them, read by fetch() from the page.
  auto headers = d.Execute(R"(
    const r = new XMLHttpRequest();
    r.open('GET', '/ui/app.js', false);
    r.send();
    return [r.status, r.getResponseHeader('content-security-policy'),
            r.getResponseHeader('x-content-type-options'), r.getResponseHeader('x-frame-options'),
            r.getResponseHeader('strict-transport-security'), r.getResponseHeader('content-type')];)");
  EXPECT_EQ(headers.at(0).as_integer(), 200);
  const std::string csp = headers.at(1).as_string();
  EXPECT_TRUE(absl::StrContains(csp, "default-src 'none'")) << csp;
  EXPECT_TRUE(absl::StrContains(csp, "script-src 'self'")) << csp;
  EXPECT_TRUE(absl::StrContains(csp, "frame-ancestors 'none'")) << csp;
  EXPECT_FALSE(absl::StrContains(csp, "unsafe-inline")) << csp;
  EXPECT_EQ(headers.at(2).as_string(), "nosniff");
  EXPECT_EQ(headers.at(3).as_string(), "DENY");
  EXPECT_TRUE(absl::StartsWith(headers.at(4).as_string(), "max-age=")) << "HSTS over HTTPS";
  EXPECT_TRUE(absl::StartsWith(headers.at(5).as_string(), "text/javascript"));
  // Nothing of the page comes from another origin.
  auto foreign = d.Execute(
      "return performance.getEntriesByType('resource').map(e => e.name)"
      ".filter(n => !n.startsWith(location.origin)).length;");
  EXPECT_EQ(foreign.as_integer(), 0);
}

TEST_F(ConsoleIT, ABadTokenGetsAClearMessage) {
  SignIn("not-a-token");
  WebDriver& d = *driver_;
  const std::string text = d.Text(d.WaitFor("p.error[role=alert]"));
  EXPECT_TRUE(absl::StrContains(text, "That token was not accepted")) << text;
  EXPECT_TRUE(absl::StrContains(text, "401")) << text;
  EXPECT_TRUE(Exists("#token")) << "still on the login form";
  EXPECT_EQ(d.Execute("return sessionStorage.getItem('portolan.token');").is_null(), true)
      << "a refused token is not kept";
  Shot("login-refused");
}

TEST_F(ConsoleIT, AdminSeesEverySiteAndLinkOnTheMap) {
  SignInAs(Cluster::kAdminToken, "admin");
  WebDriver& d = *driver_;
  auto network = cluster_->client().GetNetwork();
  ASSERT_TRUE(network.ok()) << network.status();
  d.WaitFor("svg.map g.site");
  for (const auto& s : network->sites()) {
    EXPECT_TRUE(Exists("svg.map g.site[data-site='" + s.id() + "']")) << s.id();
  }
  for (const auto& l : network->links()) {
    EXPECT_TRUE(Exists("svg.map g.link[data-link='" + l.id() + "'][data-up='true']")) << l.id();
  }
  EXPECT_EQ(d.FindAll("#links tbody tr").size(), static_cast<size_t>(network->links_size()));
  // Selecting a site shows its regime, zones and agents.
  d.Click(d.Find("svg.map g.site[data-site='hongkong-1'] circle"));
  const std::string panel = d.Text(d.WaitFor("#site-panel"));
  EXPECT_TRUE(absl::StrContains(panel, "HK")) << panel;
  EXPECT_TRUE(absl::StrContains(panel, "hk1-node-01")) << panel;
  d.Until([&] { return d.TextOf("#live") == "live"; }, "the events stream");
  Shot("map");
}

TEST_F(ConsoleIT, AJobsExplanationSaysWhyASiteWasRefused) {
  SignInAs(Cluster::kAdminToken, "admin");
  WebDriver& d = *driver_;
  Go("#/jobs");
  d.WaitFor("#jobs tr[data-job='" + acme_job_ + "']");
  Go("#/jobs/" + acme_job_);
  d.WaitFor("#explanation tr[data-site='hongkong-1']");
  const std::string chosen = d.Text(d.Find("#explanation tr.chosen th"));
  EXPECT_TRUE(absl::StartsWith(chosen, "lingang-idc-1")) << chosen;
  const auto hk = d.Find("#explanation tr[data-site='hongkong-1'] td.why");
  const std::string why = d.Text(hk);
  EXPECT_TRUE(absl::StrContains(why, "residency")) << why;
  EXPECT_TRUE(absl::StrContains(why, "cn_standard_contract")) << why;
  EXPECT_EQ(d.Text(d.Find("#explanation tr[data-site='hongkong-1'] td:nth-of-type(2)")), "no");
  // The dataset's arrow on the map: at Lingang, processed where it lies.
  EXPECT_TRUE(Exists("svg.map [data-arrow='lingang-idc-1>lingang-idc-1']"));
  EXPECT_TRUE(absl::StrContains(d.Text(d.Find("#job-state")), "running"));
  Shot("job-explanation");
}

TEST_F(ConsoleIT, PlanShowsTheDecisionWithoutSubmitting) {
  SignInAs(Cluster::kAdminToken, "admin");
  WebDriver& d = *driver_;
  auto before = cluster_->client().ListJobs();
  ASSERT_TRUE(before.ok());
  Go("#/plan");
  auto text = d.WaitFor("#plan-text");
  d.Clear(text);
  d.Type(text,
         "name: plan-me\ntenant: acme\ncommand: [/bin/true]\nresources: {cpus: 1, memory_mb: 64}\n"
         "datasets:\n  - {id: d1, origin: HK, location: hongkong-1, size_gb: 5}\n");
  d.Click(d.Find("#plan-submit"));
  const std::string summary = d.Text(d.WaitFor("#decision-summary"));
  EXPECT_TRUE(absl::StrContains(summary, "Placed on")) << summary;
  EXPECT_TRUE(Exists("#explanation tr.chosen"));
  EXPECT_TRUE(Exists("svg.map [data-arrow^='hongkong-1>']"));
  Shot("plan");
  auto after = cluster_->client().ListJobs();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->jobs_size(), before->jobs_size()) << "a plan submits nothing";
  // A document that is not YAML names its line.
  d.Clear(text);
  d.Type(text, "name: [unclosed\n");
  d.Click(d.Find("#plan-submit"));
  d.Until([&] { return absl::StrContains(d.TextOf("p.error"), "line"); },
          "the YAML error naming its line");
  const std::string error = d.TextOf("p.error");
  EXPECT_TRUE(absl::StrContains(error, "the job")) << error;
  // The server's own refusal comes back with its field.
  d.Clear(text);
  d.Type(text, "{\"name\": \"x\", \"comand\": [\"/bin/true\"]}");
  d.Click(d.Find("#plan-submit"));
  d.Until([&] { return absl::StrContains(d.TextOf("p.error"), "comand"); },
          "the server's error naming the field");
}

TEST_F(ConsoleIT, MarkingACableDownRecoloursItAndChangesTheMatrix) {
  SignInAs(Cluster::kAdminToken, "admin");
  WebDriver& d = *driver_;
  const std::string link = "sjc2-lg1-hkg";
  const std::string cell = "#rtt-matrix td[data-from='lingang-idc-1'][data-to='hongkong-1']";
  d.WaitFor("svg.map g.link[data-link='" + link + "'][data-up='true']");
  const std::string up_colour =
      d.Css(d.Find("g.link[data-link='" + link + "'] path.line"), "stroke");
  const std::string rtt_before = d.Text(d.Find(cell));
  // From the map: select the cable (by mouse), then mark it down and confirm.
  ClickPath("svg.map g.link[data-link='" + link + "'] path.hit");
  d.Click(d.WaitFor("#link-panel #toggle-link"));
  d.AcceptDialog();
  d.WaitFor("svg.map g.link[data-link='" + link + "'][data-up='false']");
  const std::string down_colour =
      d.Css(d.Find("g.link[data-link='" + link + "'] path.line"), "stroke");
  EXPECT_NE(down_colour, up_colour);
  EXPECT_EQ(down_colour, "rgb(217, 48, 37)");
  // The matrix shows what the scheduler now computes.
  auto network = cluster_->client().GetNetwork();
  ASSERT_TRUE(network.ok());
  std::string expected;
  for (const auto& e : network->matrix()) {
    if (e.from() == "lingang-idc-1" && e.to() == "hongkong-1")
      expected = absl::StrFormat("%.1f", e.rtt_ms());
  }
  ASSERT_FALSE(expected.empty());
  d.Until([&] { return d.TextOf(cell) == expected; }, "the matrix cell to read " + expected);
  EXPECT_NE(expected, rtt_before);
  Shot("link-down");
  // And up again, by keyboard from the map: focus the cable, Enter selects it.
  d.Execute("document.querySelector(\"svg.map g.link[data-link='" + link +
            "'] path.hit\").focus(); return true;");
  d.Keys("\ue007");
  d.Click(d.WaitFor("#link-panel #toggle-link"));
  d.AcceptDialog();
  d.WaitFor("svg.map g.link[data-link='" + link + "'][data-up='true']");
  d.Until([&] { return d.TextOf(cell) == rtt_before; }, "the matrix cell back at " + rtt_before);
}

TEST_F(ConsoleIT, PolicyVersionsShowWhatEachChanged) {
  std::string body;
  ASSERT_EQ(
      *cluster_->client().Raw("PUT", "/v1/network/links/sjc2-lg1-sin", R"({"up": false})", &body),
      200)
      << body;
  SignInAs(Cluster::kAdminToken, "admin");
  WebDriver& d = *driver_;
  Go("#/policy");
  d.WaitFor("#versions tr[data-version='v2']");
  EXPECT_TRUE(Exists("#versions tr[data-version='v1']"));
  d.Click(d.Find("button[aria-label='Show what v2 changed']"));
  const auto row = d.WaitFor("#policy-diff tr[data-path='links[sjc2-lg1-sin].up']");
  const std::string text = d.Text(row);
  EXPECT_TRUE(absl::StrContains(text, "true")) << text;
  EXPECT_TRUE(absl::StrContains(text, "false")) << text;
  EXPECT_EQ(d.FindAll("#policy-diff tbody tr").size(), 1u) << "only the link changed";
  Shot("policy-diff");
  // A candidate that is not valid: every problem is listed.
  auto text_area = d.Find("#policy-text");
  d.Type(text_area, "{\"sites\": [{\"id\": \"x\", \"latitude\": 300}]}");
  d.Click(d.Find("#validate"));
  const std::string validation = d.Text(d.WaitFor("#validation"));
  EXPECT_TRUE(absl::StrContains(validation, "problem(s)")) << validation;
  EXPECT_TRUE(absl::StrContains(validation, "latitude")) << validation;
}

TEST_F(ConsoleIT, TenantsShowExpiringInstrumentsAndTheLedger) {
  SignInAs(Cluster::kAdminToken, "admin");
  WebDriver& d = *driver_;
  Go("#/tenants");
  d.WaitFor("section[data-tenant='globex'] td.expires");
  const std::string cls = d.Attribute(d.Find("section[data-tenant='globex'] td.expires"), "class");
  EXPECT_TRUE(absl::StrContains(cls, "expiring") || absl::StrContains(cls, "expired")) << cls;
  const auto row = d.WaitFor("table[data-ledger='globex'] tr[data-origin='CN']");
  const std::string text = d.Text(row);
  EXPECT_TRUE(absl::StrContains(text, "150,000")) << text;
  Shot("tenants");
  Go("#/audit");
  d.WaitFor("#audit tbody tr");
  EXPECT_TRUE(absl::StrContains(d.Text(d.Find("#audit")), "crm-2026"));
}

TEST_F(ConsoleIT, ATenantSeesOnlyItsOwnJobs) {
  SignInAs(Cluster::kGlobexToken, "tenant");
  WebDriver& d = *driver_;
  d.WaitFor("#jobs tr[data-job='" + globex_job_ + "']");
  for (const auto& row : d.FindAll("#jobs tbody tr")) {
    EXPECT_EQ(d.Attribute(row, "data-tenant"), "globex");
  }
  EXPECT_FALSE(Exists("#jobs tr[data-job='" + acme_job_ + "']"));
  // A job submitted meanwhile appears by itself (GET /v1/events), acme's does not.
  auto live = cluster_->client().Submit(JobSpec({"/bin/true"}, 1, "globex"));
  auto hidden = cluster_->client().Submit(JobSpec({"/bin/true"}, 1, "acme"));
  ASSERT_TRUE(live.ok() && hidden.ok());
  d.WaitFor("#jobs tr[data-job='" + live->id() + "']");
  EXPECT_FALSE(Exists("#jobs tr[data-job='" + hidden->id() + "']"));
  // Only the views its role may use: no map (GET /v1/network is 403 for tenants).
  EXPECT_FALSE(Exists("nav a[href='#/map']"));
  EXPECT_FALSE(Exists("nav a[href='#/tenants']"));
  // acme's job by its id: the API's 404, as for a job that does not exist.
  Go("#/jobs/" + acme_job_);
  const std::string error = d.Text(d.WaitFor("p.error"));
  EXPECT_TRUE(absl::StrContains(error, "404")) << error;
  Shot("tenant-jobs");
}

TEST_F(ConsoleIT, AnOperatorSeesItsSitesMachineAndCordonsIt) {
  SignInAs(Cluster::kOperatorToken, "operator");
  WebDriver& d = *driver_;
  Go("#/agents");
  d.WaitFor("#agents tr[data-agent='lg1-node-01']");
  EXPECT_FALSE(Exists("#agents tr[data-agent='hk1-node-01']")) << "another site's agent";
  // The machine as `portolan agent` draws it, with acme's job on its PUs.
  Go("#/agents/lg1-node-01");
  d.WaitFor(".machine .numa");
  auto machine = cluster_->client().GetAgent("lg1-node-01");
  ASSERT_TRUE(machine.ok());
  const v1::Topology& t = machine->topology();
  EXPECT_EQ(d.FindAll(".machine .package").size(), static_cast<size_t>(t.packages()));
  EXPECT_EQ(d.FindAll(".machine .numa").size(), static_cast<size_t>(t.numa_nodes_size()));
  EXPECT_EQ(d.FindAll(".machine .core").size(), static_cast<size_t>(t.cores_size()));
  EXPECT_EQ(d.FindAll(".machine [data-pu]").size(), static_cast<size_t>(t.pus()));
  auto job = cluster_->client().GetJob(acme_job_);
  ASSERT_TRUE(job.ok());
  for (uint32_t pu : job->allocation().pus()) {
    const auto cell = d.Find(".machine .pu[data-pu='" + std::to_string(pu) + "']");
    EXPECT_TRUE(absl::StrContains(d.Attribute(cell, "title"), acme_job_)) << "PU " << pu;
  }
  Shot("agent");
  d.Click(d.Find("button[aria-label='Cordon lg1-node-01']"));
  d.AcceptDialog();
  d.WaitFor("button[aria-label='Uncordon lg1-node-01']");
  auto agent = cluster_->client().GetAgent("lg1-node-01");
  ASSERT_TRUE(agent.ok());
  EXPECT_EQ(agent->state(), v1::Agent::cordoned);
  d.Click(d.Find("button[aria-label='Uncordon lg1-node-01']"));
  d.AcceptDialog();
  d.WaitFor("button[aria-label='Cordon lg1-node-01']");
  EXPECT_EQ(cluster_->client().GetAgent("lg1-node-01")->state(), v1::Agent::ready);
}

TEST_F(ConsoleIT, KeyboardAloneSignsInAndEveryControlHasALabel) {
  WebDriver& d = *driver_;
  FreshLoginPage();
  // Tab reaches the token field first; Enter submits the form.
  d.Keys("\ue004");
  EXPECT_EQ(d.Attribute(d.Active(), "id"), "token");
  d.Keys(std::string(Cluster::kAdminToken) + "\ue007");
  d.Until([&] { return Exists("#role"); }, "signed in by keyboard");
  // Tab order: the skip link, then the views.
  d.Keys("\ue004");
  EXPECT_TRUE(absl::StrContains(d.Text(d.Active()), "Skip to content"));
  d.Keys("\ue004");
  EXPECT_EQ(d.Attribute(d.Active(), "href"), "#/map");
  d.Keys("\ue004\ue007");  // Jobs
  d.WaitFor("#jobs");
  for (const char* view : {"#/map", "#/jobs", "#/plan", "#/agents", "#/policy"}) {
    Go(view);
    d.WaitFor("main h2");
    // Every control has an accessible name: a label, aria-label or text.
    auto unnamed = d.Execute(R"(
      return [...document.querySelectorAll('button, input, select, textarea, [role=button], a[href]')]
        .filter(e => !(e.getAttribute('aria-label') || (e.labels && e.labels.length) ||
                       e.textContent.trim()))
        .map(e => e.outerHTML.slice(0, 120));)");
    EXPECT_EQ(unnamed.size(), 0u) << view << ": " << unnamed.serialize();
  }
}

}  // namespace
}  // namespace portolan::testing
