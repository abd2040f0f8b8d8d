// SPDX-License-Identifier: Apache-2.0
// The agent RPC server on loopback with a real Core and SQLite store, the io
// loop driven by the test: what two agents' sessions send in one round of the
// loop is handled together, in one store commit, and answered after it.
#include "portolan/rpc/server.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "portolan/codec/codec.h"
#include "portolan/store/store.h"
#include "portolan/wire/frame.h"
#include "unit/scheduler/core_fixture.h"

namespace portolan::rpc {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

class RpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        (std::filesystem::temp_directory_path() / absl::StrCat("rpc-server-", getpid())).string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto opened = store::OpenSqliteStore(dir_, 0, [this](double, size_t) { ++commits_; });
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
    placement::RegisterBuiltins(registry_);
    core_ = std::make_unique<scheduler::Core>(scheduler::CoreOptions{}, store_.get(), &clock_,
                                              &registry_);
    ASSERT_TRUE(core_->Recover().ok());
    v1::Policy p;
    ASSERT_TRUE(codec::ParseYaml(scheduler::kPolicy, &p).ok());
    ASSERT_TRUE(core_->ApplyPolicy(p, "test").ok());
    server_ = std::make_unique<RpcServer>(io_, core_.get(), RpcOptions{});
    ASSERT_TRUE(server_->Listen({"127.0.0.1", 0}).ok());
  }
  void TearDown() override {
    socks_.clear();
    server_.reset();
    if (io_owner_) io_.poll();
    core_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Runs the io loop until `done` (at most 5 s).
  bool PumpUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 500; ++i) {
      io_.poll();
      io_.restart();
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  tcp::socket& Connect(const std::string& agent) {
    auto s = std::make_unique<tcp::socket>(client_io_);
    s->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->bound().port));
    tcp::socket& out = *s;
    socks_[agent] = std::move(s);
    return out;
  }
  // A job of 4 CPUs: one fills an agent of SimpleRegister(..., 4, ...).
  void SubmitWholeAgentJob() {
    v1::Job spec;
    spec.add_command("/bin/true");
    spec.mutable_resources()->set_cpus(4);
    spec.mutable_resources()->set_memory_mb(64);
    auto job = core_->Submit(spec);
    ASSERT_TRUE(job.ok()) << job.status();
  }
  static void SendFrame(tcp::socket& s, const v1::Envelope& env) {
    asio::write(s, asio::buffer(wire::EncodeFrame(env)));
  }
  // The envelopes that arrived on `s` so far (pumping the server meanwhile).
  std::vector<v1::Envelope> Received(const std::string& agent) {
    tcp::socket& s = *socks_.at(agent);
    wire::FrameDecoder& d = decoders_[agent];
    std::vector<v1::Envelope> out;
    s.non_blocking(true);
    char buf[65536];
    boost::system::error_code ec;
    for (size_t n; (n = s.read_some(asio::buffer(buf), ec)) > 0 && !ec;) d.Append(buf, n);
    v1::Envelope env;
    while (true) {
      auto next = d.Next(&env);
      if (!next.ok() || !*next) break;
      out.push_back(env);
    }
    return out;
  }

  std::string dir_;
  size_t commits_ = 0;
  std::unique_ptr<store::Store> store_;
  placement::Registry registry_;
  testing::FakeClock clock_;
  std::unique_ptr<scheduler::Core> core_;
  // Owned apart so that a test can destroy the loop as the scheduler's
  // shutdown does (stopped, then gone, with handlers still queued).
  std::unique_ptr<asio::io_context> io_owner_ = std::make_unique<asio::io_context>();
  asio::io_context& io_ = *io_owner_;
  asio::io_context client_io_;
  std::unique_ptr<RpcServer> server_;
  std::map<std::string, std::unique_ptr<tcp::socket>> socks_;
  std::map<std::string, wire::FrameDecoder> decoders_;
};

TEST_F(RpcServerTest, WhatTwoSessionsSendInOneRoundIsOneCommitAndAnsweredAfterIt) {
  // Two agents of 4 PUs each; two jobs of 4 CPUs, one on each.
  std::map<std::string, std::string> job_of;  // agent -> its job
  for (const char* a : {"a1", "a2"}) {
    v1::Envelope reg;
    *reg.mutable_register_() = testing::SimpleRegister(a, 4, "lingang-idc-1");
    SendFrame(Connect(a), reg);
  }
  ASSERT_TRUE(PumpUntil([&] { return core_->ListAgents().agents_size() == 2; }));
  for (int i = 0; i < 2; ++i) ASSERT_NO_FATAL_FAILURE(SubmitWholeAgentJob());
  ASSERT_TRUE(PumpUntil([&] {
    for (const char* a : {"a1", "a2"})
      for (const v1::Envelope& e : Received(a))
        if (e.has_assign()) job_of[a] = e.assign().job().id();
    return job_of.size() == 2;
  }));

  // Both agents report their job running; both frames wait in the kernel
  // when the loop next runs.
  const size_t before = commits_;
  std::map<std::string, uint64_t> seq_of;
  for (const char* a : {"a1", "a2"}) {
    v1::Envelope up;
    up.set_seq(seq_of[a] = 7);
    up.mutable_job_update()->set_job_id(job_of[a]);
    up.mutable_job_update()->set_attempt(1);
    up.mutable_job_update()->set_state(v1::Job::running);
    SendFrame(*socks_.at(a), up);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // loopback delivery
  io_.poll();
  io_.restart();
  for (const char* a : {"a1", "a2"})
    EXPECT_EQ(core_->GetJob(job_of[a])->state(), v1::Job::running) << a;
  EXPECT_EQ(commits_ - before, 1u) << "the two sessions' updates were committed apart";

  // Each agent gets its ack, once the commit is done.
  std::map<std::string, bool> acked;
  ASSERT_TRUE(PumpUntil([&] {
    for (const char* a : {"a1", "a2"})
      for (const v1::Envelope& e : Received(a))
        if (e.has_ack() && e.ack().seq() == seq_of[a]) acked[a] = true;
    return acked.size() == 2;
  }));
}

// The scheduler's shutdown stops the loop from a handler and destroys it with
// whatever is still queued. A session whose messages wait for the round's
// Flush must then go with the loop, closing its connection: were it and the
// queue holding each other, the session would leak (LeakSanitizer fails the
// daemon's exit) and its agent would never see the connection end.
TEST_F(RpcServerTest, ASessionWaitingForTheRoundsFlushGoesWithAStoppedLoop) {
  v1::Envelope reg;
  *reg.mutable_register_() = testing::SimpleRegister("a1", 4, "lingang-idc-1");
  SendFrame(Connect("a1"), reg);
  ASSERT_TRUE(PumpUntil([&] { return core_->ListAgents().agents_size() == 1; }));
  ASSERT_NO_FATAL_FAILURE(SubmitWholeAgentJob());
  std::string job_id;
  ASSERT_TRUE(PumpUntil([&] {
    for (const v1::Envelope& e : Received("a1"))
      if (e.has_assign()) job_id = e.assign().job().id();
    return !job_id.empty();
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // writes done
  io_.poll();
  io_.restart();

  v1::Envelope up;
  up.set_seq(3);
  up.mutable_job_update()->set_job_id(job_id);
  up.mutable_job_update()->set_attempt(1);
  up.mutable_job_update()->set_state(v1::Job::running);
  SendFrame(*socks_.at("a1"), up);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // loopback delivery
  // One handler: the session reads the update and queues it; the Flush that
  // would hand it to the core is posted, not run.
  ASSERT_EQ(io_.poll_one(), 1u);
  ASSERT_NE(core_->GetJob(job_id)->state(), v1::Job::running) << "the Flush ran already";
  io_.stop();  // then destroyed in the scheduler's order: server, core, loop
  server_.reset();
  core_.reset();
  io_owner_.reset();

  // The agent sees its connection end.
  tcp::socket& s = *socks_.at("a1");
  s.non_blocking(true);
  char buf[4096];
  boost::system::error_code ec;
  for (int i = 0; i < 200; ++i) {
    s.read_some(asio::buffer(buf), ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ec, asio::error::eof) << ec.message();
}

}  // namespace
}  // namespace portolan::rpc
