// SPDX-License-Identifier: Apache-2.0
// Hostile clients against the real scheduler over HTTPS: every request of
// issue 15's report with its expected answer and a /healthz after it;
// connection floods, stalled handshakes and half-sent requests closed within
// the timeouts with descriptors and memory back to where they were.
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "harness.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// One TLS connection with blocking I/O and a receive timeout; no certificate
// checks (the server's identity is not what these tests are about).
class TlsConn {
 public:
  explicit TlsConn(uint16_t port) {
    fd_ = ConnectLoopback(port);
    if (fd_ < 0) return;
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ctx_ = SSL_CTX_new(TLS_client_method());
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    ok_ = SSL_connect(ssl_) == 1;
  }
  ~TlsConn() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return ok_; }
  void Send(const std::string& s) {
    size_t off = 0;
    while (ok_ && off < s.size()) {
      int n = SSL_write(ssl_, s.data() + off,
                        static_cast<int>(std::min<size_t>(s.size() - off, 16384)));
      if (n <= 0) return;
      off += n;
    }
  }
  // Everything until the server closes or 10 s pass without a byte.
  std::string ReadAll() {
    std::string out;
    char buf[16384];
    while (ok_) {
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, n);
    }
    return out;
  }

 private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool ok_ = false;
};

struct Answer {
  int status = 0;
  std::string head;
  std::string body;
  std::string code;
};

Answer Parse(const std::string& raw) {
  Answer a;
  if (raw.size() < 12 || !absl::StartsWith(raw, "HTTP/1.")) return a;
  (void)absl::SimpleAtoi(raw.substr(9, 3), &a.status);
  const size_t end = raw.find("\r\n\r\n");
  a.head = raw.substr(0, end);
  if (end != std::string::npos) a.body = raw.substr(end + 4);
  v1::ErrorResponse e;
  if (a.status >= 400 && codec::ParseJson(a.body, &e).ok()) a.code = e.error().code();
  return a;
}

// Sends `raw` on a fresh TLS connection and reads the answer (the requests
// here say Connection: close, or are refused, so the server closes).
Answer RawTls(Cluster& c, const std::string& raw) {
  TlsConn t(c.rest_port());
  EXPECT_TRUE(t.ok());
  t.Send(raw);
  return Parse(t.ReadAll());
}

std::string Get(const std::string& path, const std::string& extra = "") {
  return absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", extra, "\r\n");
}

// /healthz answered 200 on a fresh TLS connection (false, not a failure of
// its own, when the connection or handshake fails: callers expect or wait).
bool Healthy(Cluster& c) {
  TlsConn t(c.rest_port());
  if (!t.ok()) return false;
  t.Send(Get("/healthz"));
  return Parse(t.ReadAll()).status == 200;
}

int OpenDescriptors(pid_t pid) {
  int n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    ++n;
  return n;
}

long RssKiB(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      long kb = 0;
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &kb);
      return kb;
    }
  }
  return -1;
}

void RaiseDescriptorLimit() {
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_NOFILE, &r);
}

constexpr char kJson[] = "Content-Type: application/json\r\n";

// The sanitizer build runs the same floods smaller (AddressSanitizer makes
// each connection several times dearer, and its quarantine holds freed
// memory, so RSS says nothing there); the plain build runs them in full.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
constexpr int kConnectCloses = kSanitized ? 4000 : 20000;
constexpr int kStalled = kSanitized ? 400 : 2000;

TEST(HostileIT, MalformedHttpGetsAJsonErrorAndTheServerKeepsServing) {
  Cluster c;
  c.EnableTls();
  c.StartScheduler();
  struct Case {
    std::string name;
    std::string raw;
    int status;
    std::string code;
  };
  const std::string auth = absl::StrCat("Authorization: Bearer ", Cluster::kAdminToken, "\r\n");
  std::string many_headers;
  for (int i = 0; i < 10000; ++i) absl::StrAppend(&many_headers, "X-", i, ": 1\r\n");
  const std::vector<Case> cases = {
      {"chunk -1", "GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 400,
       "bad_request"},
      {"chunk -2 on submit", "POST /v1/jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n",
       400, "bad_request"},
      {"chunk +10", "GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n+10\r\n", 400,
       "bad_request"},
      {"chunk 0x10", "GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n", 400,
       "bad_request"},
      {"chunk 7FFFFFFFFFFFFFFF",
       "POST /v1/jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7FFFFFFFFFFFFFFF\r\n", 413,
       "payload_too_large"},
      {"TRACE", Get("/healthz", auth).replace(0, 3, "TRACE"), 405, "method_not_allowed"},
      {"OPTIONS", Get("/v1/jobs").replace(0, 3, "OPTIONS"), 405, "method_not_allowed"},
      {"1 MB header", Get("/healthz", absl::StrCat("X-Big: ", std::string(1 << 20, 'a'), "\r\n")),
       431, "header_too_large"},
      {"10,000 headers", Get("/healthz", many_headers), 431, "header_too_large"},
      {"declared body over the limit, none sent",
       "POST /v1/jobs HTTP/1.1\r\nContent-Length: 50000000\r\n\r\n", 413, "payload_too_large"},
      {"negative Content-Length", "POST /v1/jobs HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400,
       "bad_request"},
      {"bad request line", "HELLO\r\n\r\n", 400, "bad_request"},
      {"%zz", Get("/v1/jobs/%zz", auth), 400, "bad_request"},
      {"1 MB id", Get(absl::StrCat("/v1/jobs/", std::string(1 << 20, 'a')), auth), 431,
       "header_too_large"},
      {"5,000-character id", Get(absl::StrCat("/v1/jobs/", std::string(5000, 'a')), auth), 400,
       "invalid_argument"},
      {"tenant id with CR/LF", Get("/v1/tenants/acme%0D%0Aevil", auth), 400, "bad_request"},
      {"tenant id with an escape", Get("/v1/tenants/acme%1B%5B2J", auth), 400, "bad_request"},
      {"text/plain body",
       absl::StrCat("POST /v1/jobs HTTP/1.1\r\n", auth,
                    "Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"),
       415, "unsupported_media_type"},
      {"form body",
       absl::StrCat("POST /v1/jobs HTTP/1.1\r\n", auth,
                    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n"
                    "Connection: close\r\n\r\na=b"),
       415, "unsupported_media_type"},
      {"no token",
       absl::StrCat("POST /v1/jobs HTTP/1.1\r\n", kJson,
                    "Content-Length: 2\r\nConnection: close\r\n\r\n{}"),
       401, "unauthenticated"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    Answer a = RawTls(c, k.raw);
    EXPECT_EQ(a.status, k.status) << a.head << "\n" << a.body.substr(0, 300);
    EXPECT_EQ(a.code, k.code) << a.body.substr(0, 300);
    EXPECT_LT(a.body.size(), 1000u) << "an error body echoes the request";
    EXPECT_FALSE(absl::StrContains(a.head + a.body, Cluster::kAdminToken));
    EXPECT_TRUE(Healthy(c));
  }
  // No log line carries a long run of the hostile input.
  std::stringstream log(c.SchedulerLog());
  std::string line;
  size_t longest = 0;
  while (std::getline(log, line)) longest = std::max(longest, line.size());
  EXPECT_LT(longest, 4096u);
}

TEST(HostileIT, TheContractRefusesNonsenseWithTheField) {
  Cluster c;
  c.EnableTls();
  c.StartScheduler();
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  struct Case {
    std::string name;
    std::string method, path, body;
    int status;
    std::string field;
  };
  const std::string ok_job =
      R"("command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 8})";
  std::string many_sites;
  for (int i = 0; i < 10000; ++i) absl::StrAppend(&many_sites, i ? "," : "", "\"s", i, "\"");
  std::string many_datasets;
  for (int i = 0; i < 1000; ++i) absl::StrAppend(&many_datasets, i ? "," : "", R"({"id": "same"})");
  const std::vector<Case> cases = {
      {"forged attempt", "POST", "/v1/jobs",
       absl::StrCat(
           "{", ok_job,
           R"(, "attempts": [{"number": 1, "outcome": "succeeded", "allocation": {"agent": "sg1-node-01"}}]})"),
       400, "attempts"},
      {"enum number", "POST", "/v1/jobs", absl::StrCat("{", ok_job, R"(, "kind": 99})"), 400,
       "kind"},
      {"numa number", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, R"(, "topology": {"numa": 99}})"), 400, "topology.numa"},
      {"size_gb 1e308", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, R"(, "datasets": [{"id": "d", "size_gb": 1e308}]})"), 400,
       "datasets[0].size_gb"},
      {"size_gb Infinity", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, R"(, "datasets": [{"id": "d", "size_gb": "Infinity"}]})"), 400,
       "datasets[0].size_gb"},
      {"size_gb NaN", "POST", "/v1/plan",
       absl::StrCat("{", ok_job, R"(, "datasets": [{"id": "d", "size_gb": "NaN"}]})"), 400,
       "datasets[0].size_gb"},
      {"single quotes", "POST", "/v1/jobs", "{'command': ['x']}", 400, ""},
      {"raw control character", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, ", \"name\": \"a\x01\"}"), 400, "name"},
      {"command as a string", "POST", "/v1/jobs",
       R"({"command": "echo hi", "resources": {"cpus": 1, "memory_mb": 8}})", 400, "command"},
      {"object as a list", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, R"(, "datasets": {"id": "d"}})"), 400, "datasets"},
      {"duplicate key", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, R"(, "name": "a", "name": "b"})"), 400, "name"},
      {"10,000 sites", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, R"(, "placement": {"sites": [)", many_sites, "]}}"), 400,
       "placement.sites"},
      {"1,000 datasets with one id", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, R"(, "datasets": [)", many_datasets, "]}"), 400, "datasets"},
      {"100,000-character dataset id", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, R"(, "datasets": [{"id": ")", std::string(100000, 'x'), "\"}]}"),
       400, "datasets[0].id"},
      {"900 KB env value", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, R"(, "env": {"BIG": ")", std::string(900000, 'x'), "\"}}"), 400,
       "env"},
      {"PORTOLAN_ env", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, R"(, "env": {"PORTOLAN_JOB_ID": "x"}})"), 400,
       "env.PORTOLAN_JOB_ID"},
      {"priority above the tenant's maximum", "POST", "/v1/jobs",
       absl::StrCat("{", ok_job, R"(, "priority": 1000})"), 403, "priority"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    std::string out;
    auto code = acme->Raw(k.method, k.path, k.body, &out);
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, k.status) << out.substr(0, 300);
    v1::ErrorResponse e;
    ASSERT_TRUE(codec::ParseJson(out, &e).ok()) << out.substr(0, 300);
    EXPECT_EQ(e.error().field(), k.field) << out.substr(0, 300);
    EXPECT_LT(out.size(), 1000u);
    EXPECT_TRUE(Healthy(c));
  }
  // The same idempotency key on a different job is a conflict, not the old job.
  std::string out;
  EXPECT_EQ(*acme->Raw("POST", "/v1/jobs",
                       absl::StrCat("{", ok_job, R"(, "idempotency_key": "k"})"), &out),
            201)
      << out;
  EXPECT_EQ(
      *acme->Raw(
          "POST", "/v1/jobs",
          R"({"command": ["/bin/rm", "-rf", "x"], "resources": {"cpus": 2, "memory_mb": 8}, "idempotency_key": "k"})",
          &out),
      409)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "idempotency_conflict")) << out;
  // An admin raises acme's maximum; then acme may use it.
  EXPECT_EQ(*c.client().Raw("PUT", "/v1/tenants/acme", R"({"max_priority": 1000})", &out), 200)
      << out;
  EXPECT_EQ(
      *acme->Raw("POST", "/v1/jobs", absl::StrCat("{", ok_job, R"(, "priority": 1000})"), &out),
      201)
      << out;
  // Policy numbers: weights, link RTT and capacity, prices.
  for (const char* body : {R"({"up": true, "rtt_ms": "Infinity"})", R"({"gbps": 1e309})"}) {
    SCOPED_TRACE(body);
    EXPECT_EQ(*c.client().Raw("PUT", "/v1/network/links/sh-metro-lg1-lg2", body, &out), 400) << out;
  }
}

// TCP connections on this host in state ESTABLISHED whose local port is
// `port` (the server's side), from /proc/net/tcp.
int EstablishedTo(uint16_t port) {
  std::ifstream f("/proc/net/tcp");
  std::string line;
  std::getline(f, line);  // header
  int n = 0;
  while (std::getline(f, line)) {
    std::vector<std::string> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cols.size() < 4) continue;
    const size_t colon = cols[1].find(':');
    if (colon == std::string::npos) continue;
    const unsigned long local_port = std::stoul(cols[1].substr(colon + 1), nullptr, 16);
    if (local_port == port && cols[3] == "01") ++n;
  }
  return n;
}

TEST(HostileIT, FloodsStalledHandshakesAndHalfSentRequestsAreShedOnTime) {
  RaiseDescriptorLimit();
  Cluster c;
  c.EnableTls();
  c.StartScheduler(0, {"--rest-handshake-timeout-s", "2", "--rest-request-timeout-s", "2",
                       "--rest-idle-timeout-s", "3", "--rest-max-connections", "6000",
                       "--rest-max-connections-per-client", "6000"});
  const pid_t pid = c.scheduler_pid();
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Healthy(c));
  // The check's own connection is gone (the server's idle timeout, 3 s).
  ASSERT_TRUE(WaitFor([&] { return EstablishedTo(c.rest_port()) == 0; }, seconds(10)));
  const int fds_before = OpenDescriptors(pid);
  const long rss_before = RssKiB(pid);

  // 20,000 connect-and-close: what TCP health checks and port scans do.
  for (int i = 0; i < kConnectCloses; ++i) {
    int fd = ConnectLoopback(c.rest_port());
    ASSERT_GE(fd, 0) << "connection " << i;
    close(fd);
  }
  ASSERT_TRUE(WaitFor([&] { return OpenDescriptors(pid) <= fds_before; }, seconds(10)))
      << OpenDescriptors(pid) << " descriptors, " << fds_before << " before";
  const long rss_flood = RssKiB(pid);
  std::printf("%d connect-and-close: scheduler RSS %ld KiB before, %ld KiB after\n", kConnectCloses,
              rss_before, rss_flood);
  if (!kSanitized) {
    EXPECT_LT(rss_flood, rss_before + 16 * 1024);
  }
  // Connections the client closed at once can still wait in the listen
  // queue (not accepted yet, so not among the descriptors); the server drains
  // them before it reaches a new one: at once here, but 16 s under ASan
  // beside another test (4,000 accepts at ~4 ms). It must answer again within
  // 30 s (60 s under ASan); the time is printed.
  const auto drain_start = Clock::now();
  EXPECT_TRUE(WaitFor([&] { return Healthy(c); }, seconds(kSanitized ? 60 : 30)));
  std::printf("first /healthz after the flood answered after %.0f ms\n",
              std::chrono::duration<double, std::milli>(Clock::now() - drain_start).count());

  // 2,000 stalled TLS handshakes (TCP only, no ClientHello) and 2,000
  // half-sent requests after a completed handshake.
  std::vector<int> stalled;
  for (int i = 0; i < kStalled; ++i) {
    int fd = ConnectLoopback(c.rest_port());
    if (fd >= 0) stalled.push_back(fd);
  }
  std::vector<std::unique_ptr<TlsConn>> half;
  for (int i = 0; i < kStalled; ++i) {
    auto t = std::make_unique<TlsConn>(c.rest_port());
    if (!t->ok()) continue;
    t->Send("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"comm");
    half.push_back(std::move(t));
  }
  EXPECT_EQ(stalled.size(), static_cast<size_t>(kStalled));
  EXPECT_GT(half.size(), static_cast<size_t>(kStalled) * 95 / 100);
  // /healthz is served meanwhile.
  double worst_ms = 0;
  for (int i = 0; i < 10; ++i) {
    const auto t0 = Clock::now();
    EXPECT_TRUE(Healthy(c));
    worst_ms =
        std::max(worst_ms, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::printf(
      "/healthz over TLS beside %zu stalled handshakes and %zu half-sent requests: "
      "slowest of 10 %.1f ms\n",
      stalled.size(), half.size(), worst_ms);
  // Every one of them is closed by the server within its timeout (2 s, plus
  // the time it took to open them all).
  size_t closed = 0;
  for (int fd : stalled) closed += ClosedByServer(fd) ? 1 : 0;
  EXPECT_EQ(closed, stalled.size());
  size_t half_closed = 0;
  for (auto& t : half) half_closed += t->ReadAll().empty() ? 1 : 0;
  EXPECT_EQ(half_closed, half.size()) << "a half-sent request got an answer";
  for (int fd : stalled) close(fd);
  half.clear();
  ASSERT_TRUE(WaitFor([&] { return OpenDescriptors(pid) <= fds_before; }, seconds(10)))
      << OpenDescriptors(pid) << " descriptors, " << fds_before << " before";
  const long rss_after = RssKiB(pid);
  std::printf("scheduler RSS %ld KiB before, %ld KiB after; descriptors %d before, %d after\n",
              rss_before, rss_after, fds_before, OpenDescriptors(pid));
  // 4,000 TLS connections at once cost memory while they last (OpenSSL and
  // Asio buffers, about 100 KiB each); once they are gone it is given back.
  if (!kSanitized) {
    EXPECT_LT(rss_after, rss_before + 64 * 1024);
  }
  EXPECT_TRUE(Healthy(c));
}

TEST(HostileIT, ConnectionsOverThePerClientCapAreRefusedAndCounted) {
  RaiseDescriptorLimit();
  Cluster c;
  c.StartScheduler(0, {"--rest-max-connections-per-client", "50"});
  // The harness's client keeps one connection open; 60 more from the same
  // address: those past the cap are closed at once, the others stay open.
  std::vector<int> fds;
  for (int i = 0; i < 60; ++i) fds.push_back(ConnectLoopback(c.rest_port()));
  // Those past the cap are closed at once; wait until they are, then count.
  std::vector<bool> seen_closed(fds.size(), false);
  int closed = 0;
  auto count_closed = [&] {
    for (size_t i = 0; i < fds.size(); ++i) {
      pollfd p{fds[i], POLLIN, 0};
      char b;
      if (!seen_closed[i] && poll(&p, 1, 0) == 1 && read(fds[i], &b, 1) <= 0) {
        seen_closed[i] = true;
        ++closed;
      }
    }
    return closed >= 10;
  };
  EXPECT_TRUE(WaitFor(count_closed, seconds(5)));
  EXPECT_LE(closed, 11);
  for (int fd : fds) close(fd);
  // The server counted every connection it refused: 10, or 11 when the
  // harness's own connection was open too (a close may reach the client
  // after it stopped looking, so the count seen here is at most that).
  std::string metrics;
  int refused = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        if (!c.client().Raw("GET", "/metrics", "", &metrics).ok()) return false;
        const size_t at = metrics.find("\nportolan_http_connections_refused ");
        if (at == std::string::npos) return false;
        const size_t from = at + std::string("\nportolan_http_connections_refused ").size();
        return absl::SimpleAtoi(metrics.substr(from, metrics.find('\n', from) - from), &refused) &&
               refused >= 10;
      },
      seconds(10)))
      << metrics.substr(metrics.find("portolan_http_connections"), 400);
  EXPECT_LE(refused, 11);
  EXPECT_GE(refused, closed);
}

}  // namespace
}  // namespace portolan::testing
