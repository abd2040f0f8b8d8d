// SPDX-License-Identifier: Apache-2.0
// rest::Server: the HTTP parser's refusals through ServeBytes (the same code
// a connection runs), and the connection-level limits over real loopback
// sockets with short timeouts.
#include "portolan/rest/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/api.pb.h"

namespace portolan::rest {
namespace {

using boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// A server with a public GET /healthz, an authenticated-looking POST
// /v1/jobs that echoes its body, GET /v1/jobs/{id}, and a slow route
// (counting its calls in slow_started).
std::atomic<int> slow_started{0};
std::unique_ptr<Server> MakeServer(ServerOptions o = {}) {
  auto s = std::make_unique<Server>(o);
  s->Route(
      "GET", "/healthz", [](const Request&) { return Json(R"({"status":"ok"})"); }, true);
  s->Route("POST", "/v1/jobs", [](const Request& r) { return Json(r.body, 201); });
  s->Route("GET", "/v1/jobs/{id}", [](const Request& r) {
    return Json(absl::StrCat(R"({"id":")", r.params.at("id"), "\"}"));
  });
  s->Route("GET", "/v1/query", [](const Request& r) {
    std::string out;
    for (const auto& [k, v] : r.query) absl::StrAppend(&out, k, "=", v, ";");
    return Json(absl::StrCat("{\"q\":\"", out, "\"}"));
  });
  s->Route("GET", "/slow", [](const Request&) {
    slow_started.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    return Json("{}");
  });
  return s;
}

struct Parsed {
  int status = 0;
  std::string head;
  std::string body;
  std::string code;
  std::string message;
};

Parsed ParseAnswer(const std::string& raw) {
  Parsed p;
  if (raw.size() < 12) return p;
  p.status = std::stoi(raw.substr(9, 3));
  const size_t end = raw.find("\r\n\r\n");
  p.head = raw.substr(0, end);
  p.body = end == std::string::npos ? "" : raw.substr(end + 4);
  v1::ErrorResponse e;
  if (p.status >= 400 && codec::ParseJson(p.body, &e).ok()) {
    p.code = e.error().code();
    p.message = e.error().message();
  }
  return p;
}

// Every refusal is a JSON error with a code and a message.
void ExpectRefused(const Server& s, const std::string& raw, int status, const std::string& code) {
  Parsed p = ParseAnswer(s.ServeBytes(raw));
  EXPECT_EQ(p.status, status) << raw.substr(0, 120) << "\n" << p.head << "\n" << p.body;
  EXPECT_EQ(p.code, code) << raw.substr(0, 120) << "\n" << p.body;
  EXPECT_FALSE(p.message.empty()) << p.body;
}

const char kJson[] = "Content-Type: application/json\r\n";

TEST(RestServer, ServesAWellFormedRequestAndKeepsAlive) {
  auto s = MakeServer();
  Parsed p = ParseAnswer(s->ServeBytes("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(p.status, 200);
  EXPECT_EQ(p.body, R"({"status":"ok"})");
  EXPECT_TRUE(absl::StrContains(p.head, "Content-Type: application/json")) << p.head;
  EXPECT_FALSE(absl::StrContains(p.head, "Connection: close")) << p.head;
  p = ParseAnswer(s->ServeBytes(absl::StrCat("POST /v1/jobs HTTP/1.1\r\nHost: x\r\n", kJson,
                                             "Transfer-Encoding: chunked\r\n\r\n",
                                             "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")));
  EXPECT_EQ(p.status, 201);
  EXPECT_EQ(p.body, R"({"a":1})");
}

TEST(RestServer, MalformedChunkSizesAre400NotACrash) {
  auto s = MakeServer();
  for (const char* size : {"-1", "-2", "+10", "0x10", "zz", "1 1", ""}) {
    SCOPED_TRACE(size);
    ExpectRefused(
        *s,
        absl::StrCat("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", size,
                     "\r\nabc\r\n0\r\n\r\n"),
        400, "bad_request");
  }
  // A malformed last-chunk line is refused at once, not after the request
  // timeout (Beast parses the last chunk only with its trailers).
  ExpectRefused(*s, "GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n", 400,
                "bad_request");
  ExpectRefused(*s, "POST /v1/jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0x1",
                400, "bad_request");
  // A chunk size past the body limit (or past 64 bits) is refused as too large.
  ExpectRefused(*s,
                "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n7FFFFFFFFFFFFFFF\r\nabc",
                413, "payload_too_large");
  Parsed p = ParseAnswer(
      s->ServeBytes("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "FFFFFFFFFFFFFFFFFFFF\r\nabc"));
  EXPECT_TRUE(p.status == 400 || p.status == 413) << p.status;
  ExpectRefused(*s, "GET /healthz HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
                "not_implemented");
  ExpectRefused(*s,
                "POST /v1/jobs HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n0\r\n\r\n",
                400, "bad_request");
}

TEST(RestServer, ContentLengthIsCheckedBeforeTheBodyIsRead) {
  auto s = MakeServer();
  // No body follows: the answer comes from the declared length alone.
  ExpectRefused(*s, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n", 413,
                "payload_too_large");
  ExpectRefused(*s, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400,
                "bad_request");
  ExpectRefused(*s, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n", 400,
                "bad_request");
  ExpectRefused(*s, "POST /v1/jobs HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
                400, "bad_request");
}

TEST(RestServer, HeaderSizeCountAndTargetAreCapped) {
  auto s = MakeServer();
  ExpectRefused(
      *s, absl::StrCat("GET /healthz HTTP/1.1\r\nX-Big: ", std::string(1 << 20, 'a'), "\r\n\r\n"),
      431, "header_too_large");
  std::string many = "GET /healthz HTTP/1.1\r\n";
  for (int i = 0; i < 10000; ++i) absl::StrAppend(&many, "X-", i, ": 1\r\n");
  ExpectRefused(*s, many + "\r\n", 431, "header_too_large");
  std::string hundred_and_one = "GET /healthz HTTP/1.1\r\n";
  for (int i = 0; i < 101; ++i) absl::StrAppend(&hundred_and_one, "X-", i, ": 1\r\n");
  ExpectRefused(*s, hundred_and_one + "\r\n", 431, "header_too_large");
  ExpectRefused(*s, absl::StrCat("GET /v1/jobs/", std::string(9000, 'a'), " HTTP/1.1\r\n\r\n"), 414,
                "uri_too_long");
}

TEST(RestServer, OnlyTheRoutesMethodsAreServedAndTraceEchoesNothing) {
  auto s = MakeServer();
  const std::string trace =
      s->ServeBytes("TRACE /healthz HTTP/1.1\r\nAuthorization: Bearer sekrit\r\n\r\n");
  Parsed p = ParseAnswer(trace);
  EXPECT_EQ(p.status, 405);
  EXPECT_EQ(p.code, "method_not_allowed");
  EXPECT_TRUE(absl::StrContains(p.head, "Allow: GET")) << p.head;
  EXPECT_FALSE(absl::StrContains(trace, "sekrit")) << trace;
  ExpectRefused(*s, "OPTIONS /v1/jobs HTTP/1.1\r\n\r\n", 405, "method_not_allowed");
  ExpectRefused(*s, "DELETE /healthz HTTP/1.1\r\n\r\n", 405, "method_not_allowed");
  ExpectRefused(*s, "GET /nowhere HTTP/1.1\r\n\r\n", 404, "not_found");
}

TEST(RestServer, BadRequestLinesTargetsAndEscapesGetJsonErrors) {
  auto s = MakeServer();
  ExpectRefused(*s, "GARBAGE\r\n\r\n", 400, "bad_request");
  ExpectRefused(*s, "GET /healthz HTTP/9.9\r\n\r\n", 400, "bad_request");
  ExpectRefused(*s, "GET /healthz HTTP/2.0\r\n\r\n", 400, "bad_request");
  ExpectRefused(*s, "GET http://evil/healthz HTTP/1.1\r\n\r\n", 400, "bad_request");
  ExpectRefused(*s, "GET /v1/jobs/%zz HTTP/1.1\r\n\r\n", 400, "bad_request");
  ExpectRefused(*s, "GET /v1/jobs/abc% HTTP/1.1\r\n\r\n", 400, "bad_request");
  ExpectRefused(*s, "GET /v1/jobs/a%0Ab HTTP/1.1\r\n\r\n", 400, "bad_request");
  ExpectRefused(*s, "GET /v1/query?a=1&a=2 HTTP/1.1\r\n\r\n", 400, "bad_request");
  // Route parameters are ids; the answer does not echo a long one.
  const std::string long_id(5000, 'x');
  Parsed p =
      ParseAnswer(s->ServeBytes(absl::StrCat("GET /v1/jobs/", long_id, " HTTP/1.1\r\n\r\n")));
  EXPECT_EQ(p.status, 400);
  EXPECT_EQ(p.code, "invalid_argument");
  EXPECT_LT(p.body.size(), 400u) << p.body;
  ExpectRefused(*s, "GET /v1/jobs/a%1Bb HTTP/1.1\r\n\r\n", 400, "bad_request");
  ExpectRefused(*s, "GET /v1/jobs/a%20b HTTP/1.1\r\n\r\n", 400, "invalid_argument");
  // Invalid UTF-8 is refused, and no error body quoting client input is
  // ever invalid JSON (found by fuzz_http).
  ExpectRefused(*s, "GET /v1/query?\xff\xfe=1 HTTP/1.1\r\n\r\n", 400, "bad_request");
  ExpectRefused(*s, "GET /v1/jobs/%FF HTTP/1.1\r\n\r\n", 400, "bad_request");
  Parsed bad =
      ParseAnswer(s->ServeBytes("GET /nowhere\xff HTTP/1.1\r\n\r\n"));  // raw byte in the path
  EXPECT_EQ(bad.status, 400);
  Response r = ErrorResponse(400, "x", "quoted \xff\xfe input", "field\xff");
  v1::ErrorResponse e;
  EXPECT_TRUE(codec::ParseJson(r.body, &e).ok()) << r.body;
  p = ParseAnswer(s->ServeBytes("GET /v1/query?x=a%20b&y=c+d HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(p.status, 200);
  EXPECT_EQ(p.body, R"({"q":"x=a b;y=c d;"})");
}

TEST(RestServer, BodiesMustBeDeclaredJson) {
  auto s = MakeServer();
  ExpectRefused(*s, "POST /v1/jobs HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 415,
                "unsupported_media_type");
  ExpectRefused(*s,
                "POST /v1/jobs HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
                415, "unsupported_media_type");
  ExpectRefused(*s,
                "POST /v1/jobs HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                "Content-Length: 3\r\n\r\na=1",
                415, "unsupported_media_type");
  Parsed p = ParseAnswer(
      s->ServeBytes("POST /v1/jobs HTTP/1.1\r\nContent-Type: Application/JSON; charset=utf-8\r\n"
                    "Content-Length: 2\r\n\r\n{}"));
  EXPECT_EQ(p.status, 201);
  // An incomplete request gets no answer (a connection would wait for the rest).
  EXPECT_EQ(s->ServeBytes("POST /v1/jobs HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}"), "");
  EXPECT_EQ(s->ServeBytes("GET /healthz HTTP/1.1\r\nHost"), "");
}

// ---- over sockets ----

class Conn {
 public:
  explicit Conn(uint16_t port, const char* from = "127.0.0.1") : socket_(io_) {
    socket_.open(tcp::v4());
    socket_.bind(tcp::endpoint(boost::asio::ip::make_address(from), 0));
    socket_.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  }
  void Send(const std::string& s) { boost::asio::write(socket_, boost::asio::buffer(s)); }
  // Everything until the server closes (or `limit` passes); sets closed().
  std::string ReadUntilClosed(std::chrono::seconds limit = std::chrono::seconds(10)) {
    std::string out;
    const auto deadline = Clock::now() + limit;
    socket_.non_blocking(true);
    char buf[4096];
    while (Clock::now() < deadline) {
      boost::system::error_code ec;
      size_t n = socket_.read_some(boost::asio::buffer(buf), ec);
      if (ec == boost::asio::error::would_block) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      if (ec) {
        closed_ = true;
        break;
      }
      out.append(buf, n);
    }
    return out;
  }
  // One answer with a Content-Length body.
  std::string ReadAnswer() {
    std::string out;
    char buf[4096];
    for (;;) {
      size_t end = out.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t cl = out.find("Content-Length: ");
        size_t len = cl == std::string::npos ? 0 : std::stoul(out.substr(cl + 16));
        if (out.size() >= end + 4 + len) return out;
      }
      boost::system::error_code ec;
      size_t n = socket_.read_some(boost::asio::buffer(buf), ec);
      if (ec) return out;
      out.append(buf, n);
    }
  }
  bool closed() const { return closed_; }

 private:
  boost::asio::io_context io_;
  tcp::socket socket_;
  bool closed_ = false;
};

TEST(RestServerSockets, KeepAliveServesSeveralRequestsAndHonoursExpectContinue) {
  auto s = MakeServer();
  ASSERT_TRUE(s->Start({"127.0.0.1", 0}).ok());
  Conn c(s->bound().port);
  c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ParseAnswer(c.ReadAnswer()).status, 200);
  c.Send(absl::StrCat("POST /v1/jobs HTTP/1.1\r\nHost: x\r\n", kJson,
                      "Content-Length: 7\r\nExpect: 100-continue\r\n\r\n"));
  std::string cont = c.ReadAnswer();
  EXPECT_TRUE(absl::StartsWith(cont, "HTTP/1.1 100 Continue")) << cont;
  c.Send(R"({"a":1})");
  Parsed p = ParseAnswer(c.ReadAnswer());
  EXPECT_EQ(p.status, 201);
  EXPECT_EQ(p.body, R"({"a":1})");
  EXPECT_EQ(s->connections(), 1u);
}

TEST(RestServerSockets, HalfSentRequestsAndIdleConnectionsAreClosedOnTime) {
  ServerOptions o;
  o.request_timeout_s = 1;
  o.idle_timeout_s = 2;
  auto s = MakeServer(o);
  ASSERT_TRUE(s->Start({"127.0.0.1", 0}).ok());
  Conn half(s->bound().port);
  half.Send("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Le");
  Conn body(s->bound().port);
  body.Send(absl::StrCat("POST /v1/jobs HTTP/1.1\r\n", kJson, "Content-Length: 10\r\n\r\n{\""));
  Conn idle(s->bound().port);
  auto t0 = Clock::now();
  half.ReadUntilClosed();
  body.ReadUntilClosed();
  EXPECT_TRUE(half.closed());
  EXPECT_TRUE(body.closed());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(4));
  idle.ReadUntilClosed();
  EXPECT_TRUE(idle.closed());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  for (int i = 0; i < 100 && s->connections() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(s->connections(), 0u);
}

TEST(RestServerSockets, ConnectAndCloseLeavesNothingBehind) {
  auto s = MakeServer();
  ASSERT_TRUE(s->Start({"127.0.0.1", 0}).ok());
  for (int i = 0; i < 2000; ++i) {
    Conn c(s->bound().port, i % 2 ? "127.0.0.2" : "127.0.0.3");
  }
  for (int i = 0; i < 200 && s->connections() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(s->connections(), 0u);
  Conn c(s->bound().port);
  c.Send("GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(ParseAnswer(c.ReadAnswer()).status, 200);
}

TEST(RestServerSockets, ConnectionsOverTheCapsAreClosedAtOnce) {
  ServerOptions o;
  o.max_connections = 6;
  o.max_connections_per_client = 3;
  auto s = MakeServer(o);
  ASSERT_TRUE(s->Start({"127.0.0.1", 0}).ok());
  std::vector<std::unique_ptr<Conn>> mine;
  for (int i = 0; i < 3; ++i) mine.push_back(std::make_unique<Conn>(s->bound().port, "127.0.0.5"));
  for (int i = 0; i < 100 && s->connections() < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Conn fourth(s->bound().port, "127.0.0.5");
  fourth.ReadUntilClosed(std::chrono::seconds(3));
  EXPECT_TRUE(fourth.closed());
  EXPECT_EQ(s->refused_connections(), 1u);
  // Another address still gets in, up to the total cap.
  Conn other(s->bound().port, "127.0.0.6");
  other.Send("GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(ParseAnswer(other.ReadAnswer()).status, 200);
}

TEST(RestServerSockets, ASlowHandlerDoesNotHoldUpOthers) {
  ServerOptions o;
  o.handler_threads = 2;
  auto s = MakeServer(o);
  ASSERT_TRUE(s->Start({"127.0.0.1", 0}).ok());
  Conn slow(s->bound().port);
  const int before = slow_started.load();
  slow.Send("GET /slow HTTP/1.1\r\n\r\n");
  // Until the slow handler holds its thread.
  for (int i = 0; i < 500 && slow_started.load() == before; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_GT(slow_started.load(), before);
  auto t0 = Clock::now();
  Conn quick(s->bound().port);
  quick.Send("GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(ParseAnswer(quick.ReadAnswer()).status, 200);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1500));
  EXPECT_EQ(ParseAnswer(slow.ReadAnswer()).status, 200);
}

TEST(RestServerSockets, ARefusedRequestIsAnsweredThenClosed) {
  auto s = MakeServer();
  ASSERT_TRUE(s->Start({"127.0.0.1", 0}).ok());
  Conn c(s->bound().port);
  c.Send("POST /v1/jobs HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n");
  std::string all = c.ReadUntilClosed();
  EXPECT_TRUE(c.closed());
  Parsed p = ParseAnswer(all);
  EXPECT_EQ(p.status, 413);
  EXPECT_EQ(p.code, "payload_too_large");
  Conn d(s->bound().port);
  d.Send("GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n");
  p = ParseAnswer(d.ReadUntilClosed());
  EXPECT_EQ(p.status, 400);
  EXPECT_TRUE(d.closed());
  Conn e(s->bound().port);
  e.Send("GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n");
  p = ParseAnswer(e.ReadUntilClosed(std::chrono::seconds(5)));
  EXPECT_EQ(p.status, 400);
  EXPECT_TRUE(e.closed());
}

TEST(RestServerSockets, StopClosesConnectionsAndCanBeCalledTwice) {
  auto s = MakeServer();
  ASSERT_TRUE(s->Start({"127.0.0.1", 0}).ok());
  Conn c(s->bound().port);
  c.Send("GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(ParseAnswer(c.ReadAnswer()).status, 200);
  s->Stop();
  c.ReadUntilClosed(std::chrono::seconds(3));
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(s->connections(), 0u);
  s->Stop();
}

bool WaitUntil(const std::function<bool()>& pred) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// An async route answers from a thread of its own, later: the one handler
// thread meanwhile serves other requests; a second answer is ignored; a
// route that throws before answering gets a 500; Stop waits for an answer
// still to come.
TEST(RestServerSockets, AsyncRoutesAnswerFromAnotherThreadWithoutHoldingAHandlerThread) {
  ServerOptions o;
  o.handler_threads = 1;
  auto s = MakeServer(o);
  std::mutex mu;
  std::map<std::string, Server::Reply> pending;  // by id; answered by the test, below
  s->RouteAsync("POST", "/v1/later/{id}", [&](const Request& r, Server::Reply reply) {
    std::lock_guard<std::mutex> l(mu);
    pending[r.params.at("id")] = std::move(reply);  // the request is read during the call only
  });
  s->RouteAsync("GET", "/v1/throws",
                [](const Request&, Server::Reply) -> void { throw std::runtime_error("boom"); });
  ASSERT_TRUE(s->Start({"127.0.0.1", 0}).ok());
  const auto waiting = [&] {
    std::lock_guard<std::mutex> l(mu);
    return pending.size();
  };
  Conn a(s->bound().port), b(s->bound().port);
  a.Send("POST /v1/later/one HTTP/1.1\r\n\r\n");
  b.Send("POST /v1/later/two HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(WaitUntil([&] { return waiting() == 2; })) << "both handled by the one thread";
  Conn quick(s->bound().port);
  quick.Send("GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(ParseAnswer(quick.ReadAnswer()).status, 200);
  quick.Send("GET /v1/throws HTTP/1.1\r\n\r\n");
  Parsed thrown = ParseAnswer(quick.ReadAnswer());
  EXPECT_EQ(thrown.status, 500);
  EXPECT_EQ(thrown.code, "internal");
  std::thread answerer([&] {
    std::lock_guard<std::mutex> l(mu);
    pending["two"](Json(R"({"n":2})", 201));
    pending["two"](Json(R"({"n":3})", 200));  // ignored
  });
  answerer.join();
  Parsed two = ParseAnswer(b.ReadAnswer());
  EXPECT_EQ(two.status, 201);
  EXPECT_EQ(two.body, R"({"n":2})");
  EXPECT_EQ(pending.count("one"), 1u);
  // Stop waits for the answer still owed to `a`, then closes.
  std::thread stopper([&] { s->Stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  {
    std::lock_guard<std::mutex> l(mu);
    pending["one"](Json("{}", 201));
  }
  stopper.join();
  EXPECT_EQ(s->connections(), 0u);
}

// A ResponseStream fed by the test: what Push adds is sent at the next wake.
class TestStream : public ResponseStream {
 public:
  void Start(std::function<void()> wake) override {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = std::move(wake);
  }
  std::string Pull() override {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(pending_, "");
  }
  std::string Keepalive() override { return ":\n\n"; }
  void Push(const std::string& data) {
    std::function<void()> wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_ += data;
      wake = wake_;
    }
    if (wake) wake();
  }
  bool started() {
    std::lock_guard<std::mutex> lock(mu_);
    return wake_ != nullptr;
  }

 private:
  std::mutex mu_;
  std::function<void()> wake_;
  std::string pending_;
};

// Reads until `want` has arrived (or 10 s).
std::string ReadUntil(tcp::socket& sock, const std::string& want, std::string* got) {
  sock.non_blocking(true);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  char buf[4096];
  while (!absl::StrContains(*got, want) && Clock::now() < deadline) {
    boost::system::error_code ec;
    size_t n = sock.read_some(boost::asio::buffer(buf), ec);
    if (ec == boost::asio::error::would_block) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (ec) break;
    got->append(buf, n);
  }
  return *got;
}

TEST(RestServerSockets, AStreamIsSentInChunksAsItIsWokenAndEndsWithTheClient) {
  ServerOptions o;
  o.stream_keepalive_s = 1;
  auto s = MakeServer(o);
  std::weak_ptr<TestStream> last;
  std::mutex last_mu;
  s->Route("GET", "/stream", [&](const Request&) {
    Response r;
    r.content_type = "text/event-stream";
    auto st = std::make_shared<TestStream>();
    {
      std::lock_guard<std::mutex> lock(last_mu);
      last = st;
    }
    st->Push("data: first\n\n");  // before Start: sent once the head is out
    r.stream = st;
    return r;
  });
  ASSERT_TRUE(s->Start({"127.0.0.1", 0}).ok());
  boost::asio::io_context io;
  tcp::socket sock(io);
  sock.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), s->bound().port));
  boost::asio::write(sock,
                     boost::asio::buffer(std::string("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")));
  std::string got;
  ReadUntil(sock, "data: first", &got);
  EXPECT_TRUE(absl::StrContains(got, "Transfer-Encoding: chunked")) << got;
  EXPECT_TRUE(absl::StrContains(got, "Content-Type: text/event-stream")) << got;
  // The chunk: its size in hex, the data.
  EXPECT_TRUE(absl::StrContains(got, "d\r\ndata: first\n\n\r\n")) << got;
  std::shared_ptr<TestStream> st;
  {
    std::lock_guard<std::mutex> lock(last_mu);
    st = last.lock();
  }
  ASSERT_NE(st, nullptr);
  ASSERT_TRUE(st->started());
  st->Push("data: second\n\n");
  ReadUntil(sock, "data: second", &got);
  EXPECT_TRUE(absl::StrContains(got, "data: second")) << got;
  // Nothing to send for a second: a keepalive chunk.
  ReadUntil(sock, "3\r\n:\n\n\r\n", &got);
  EXPECT_TRUE(absl::StrContains(got, "3\r\n:\n\n\r\n")) << got;
  // The client leaves: the stream is dropped (no more wakes go anywhere).
  st.reset();
  sock.close();
  EXPECT_TRUE(WaitUntil([&] {
    std::lock_guard<std::mutex> lock(last_mu);
    return last.expired();
  }));
  EXPECT_TRUE(WaitUntil([&] { return s->connections() == 0; }));
}

TEST(RestServerSockets, StopEndsOpenStreamsAndTheirWakesGoNowhere) {
  auto s = MakeServer();
  auto st = std::make_shared<TestStream>();
  s->Route("GET", "/stream", [st](const Request&) {
    Response r;
    r.stream = st;
    return r;
  });
  ASSERT_TRUE(s->Start({"127.0.0.1", 0}).ok());
  Conn c(s->bound().port);
  c.Send("GET /stream HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(WaitUntil([&] { return st->started(); }));
  std::atomic<bool> stop{false};
  std::thread pusher([&] {
    while (!stop) st->Push("x");  // wakes racing with Stop
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  s->Stop();
  stop = true;
  pusher.join();
  c.ReadUntilClosed(std::chrono::seconds(3));
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(s->connections(), 0u);
  st->Push("after");  // the wake of a stopped server: nothing happens
}

}  // namespace
}  // namespace portolan::rest
