// SPDX-License-Identifier: Apache-2.0
#include "portolan/tls/tls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include "../../support/test_ca.h"

namespace portolan::tls {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Two tls::Streams over a loopback TCP connection, with the production
// contexts (MakeServerContext / MakeClientContext) and certificates issued
// by an in-memory CA. One io_context, run in bounded slices.
class TlsStreamTest : public ::testing::Test {
 protected:
  TlsStreamTest() {
    dir_ = std::filesystem::temp_directory_path() /
           ("portolan-tls-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    EXPECT_TRUE(ca_.ok());
    EXPECT_TRUE(ca_.WriteCa(Path("ca.pem")));
    EXPECT_TRUE(ca_.IssueServerFiles(Path("server.pem"), Path("server.key")));
    EXPECT_TRUE(ca_.IssueAgentFiles("a1", "hongkong-1", Path("a1.pem"), Path("a1.key")));
    auto server = MakeServerContext({Path("server.pem"), Path("server.key"), Path("ca.pem")});
    EXPECT_TRUE(server.ok()) << server.status();
    server_ctx_ = *server;
  }
  ~TlsStreamTest() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  std::shared_ptr<asio::ssl::context> ClientContext(const std::string& cert,
                                                    const std::string& key) {
    auto ctx = MakeClientContext({Path(cert), Path(key), Path("ca.pem")});
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    return ctx.ok() ? *ctx : nullptr;
  }

  void Connect(asio::ssl::context* client_ctx, const std::string& server_name = "127.0.0.1") {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket c(io_);
    c.connect(acceptor.local_endpoint());
    tcp::socket s = acceptor.accept();
    server_ = std::make_unique<Stream>(std::move(s), server_ctx_.get());
    client_ = std::make_unique<Stream>(std::move(c), client_ctx);
    client_->ExpectServerName(server_name);
  }

  // Runs the io_context until `done` holds, for at most 20 s.
  bool RunUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(std::chrono::milliseconds(10));
    }
    return done();
  }

  // Both handshakes; their outcomes in the two codes.
  void Handshake(boost::system::error_code* server_ec, boost::system::error_code* client_ec) {
    bool server_done = false, client_done = false;
    server_->AsyncHandshake(asio::ssl::stream_base::server,
                            [&](const boost::system::error_code& ec) {
                              *server_ec = ec;
                              server_done = true;
                            });
    client_->AsyncHandshake(asio::ssl::stream_base::client,
                            [&](const boost::system::error_code& ec) {
                              *client_ec = ec;
                              client_done = true;
                            });
    ASSERT_TRUE(RunUntil([&] { return server_done && client_done; }));
  }

  std::filesystem::path dir_;
  testing::TestCa ca_;
  std::shared_ptr<asio::ssl::context> server_ctx_;
  asio::io_context io_;
  std::unique_ptr<Stream> server_, client_;
};

std::string Pattern(size_t n, char seed) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(seed + (i * 131) % 251);
  return out;
}

TEST_F(TlsStreamTest, LargeWritesBothWaysAtOnceArriveWhole) {
  auto client_ctx = ClientContext("a1.pem", "a1.key");
  Connect(client_ctx.get());
  boost::system::error_code sec, cec;
  Handshake(&sec, &cec);
  ASSERT_FALSE(sec) << Describe(sec);
  ASSERT_FALSE(cec) << Describe(cec);
  auto id = PeerIdentity(server_->native());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->common_name, "a1");
  EXPECT_EQ(id->unit, "hongkong-1");

  // 4 MiB each way, both written before either side reads: the socket
  // buffers fill, so writes must wait for writability and resume.
  const std::string up = Pattern(4 << 20, 'u'), down = Pattern(4 << 20, 'd');
  std::string got_up, got_down;
  size_t wrote_up = 0, wrote_down = 0;
  boost::system::error_code wec_up, wec_down, rec_up, rec_down;
  client_->AsyncWrite(asio::buffer(up), [&](const boost::system::error_code& ec, size_t n) {
    wec_up = ec;
    wrote_up = n;
  });
  server_->AsyncWrite(asio::buffer(down), [&](const boost::system::error_code& ec, size_t n) {
    wec_down = ec;
    wrote_down = n;
  });
  // The server reads as the RPC server does (wait, then drain into a shared
  // buffer); the client with AsyncReadSome, as agents do.
  std::array<char, 64 * 1024> shared;
  std::function<void()> server_read = [&] {
    server_->AsyncWaitRead([&](const boost::system::error_code& ec) {
      if (ec) {
        rec_up = ec;
        return;
      }
      for (;;) {
        boost::system::error_code e;
        size_t n = server_->ReadSome(asio::buffer(shared), e);
        if (e == asio::error::would_block) break;
        if (e) {
          rec_up = e;
          return;
        }
        got_up.append(shared.data(), n);
      }
      if (got_up.size() < up.size()) server_read();
    });
  };
  std::array<char, 16 * 1024> buf;
  std::function<void()> client_read = [&] {
    client_->AsyncReadSome(asio::buffer(buf), [&](const boost::system::error_code& ec, size_t n) {
      if (ec) {
        rec_down = ec;
        return;
      }
      got_down.append(buf.data(), n);
      if (got_down.size() < down.size()) client_read();
    });
  };
  server_read();
  client_read();
  ASSERT_TRUE(RunUntil([&] {
    return (wrote_up == up.size() || wec_up) && (wrote_down == down.size() || wec_down) &&
           (got_up.size() >= up.size() || rec_up) && (got_down.size() >= down.size() || rec_down);
  }));
  EXPECT_FALSE(wec_up) << Describe(wec_up);
  EXPECT_FALSE(wec_down) << Describe(wec_down);
  EXPECT_FALSE(rec_up) << Describe(rec_up);
  EXPECT_FALSE(rec_down) << Describe(rec_down);
  EXPECT_TRUE(got_up == up) << got_up.size() << " bytes up";
  EXPECT_TRUE(got_down == down) << got_down.size() << " bytes down";
}

TEST_F(TlsStreamTest, APeerClosingIsReportedAsClosed) {
  auto client_ctx = ClientContext("a1.pem", "a1.key");
  Connect(client_ctx.get());
  boost::system::error_code sec, cec;
  Handshake(&sec, &cec);
  ASSERT_FALSE(sec || cec);
  client_->Close();
  boost::system::error_code rec;
  bool done = false;
  server_->AsyncWaitRead([&](const boost::system::error_code& ec) {
    if (!ec) {
      std::array<char, 256> b;
      server_->ReadSome(asio::buffer(b), rec);
    } else {
      rec = ec;
    }
    done = true;
  });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_TRUE(IsPeerClosed(rec)) << Describe(rec);
}

TEST_F(TlsStreamTest, AClientCertificateFromAnotherCaIsRefusedWithTheReason) {
  testing::TestCa other("someone-else");
  ASSERT_TRUE(other.IssueAgentFiles("a1", "hongkong-1", Path("x.pem"), Path("x.key")));
  auto client_ctx = ClientContext("x.pem", "x.key");
  Connect(client_ctx.get());
  boost::system::error_code sec, cec;
  Handshake(&sec, &cec);
  EXPECT_TRUE(sec);
  EXPECT_NE(server_->verify_error().find("CN=a1"), std::string::npos) << server_->verify_error();
  EXPECT_NE(Describe(sec).find("certificate verify failed"), std::string::npos) << Describe(sec);
  // With TLS 1.3 the client's side of the handshake completes before the
  // server has checked its certificate; the refusal arrives on its first read.
  if (!cec) {
    server_->Close();
    std::array<char, 256> b;
    bool done = false;
    client_->AsyncReadSome(asio::buffer(b), [&](const boost::system::error_code& ec, size_t) {
      cec = ec;
      done = true;
    });
    ASSERT_TRUE(RunUntil([&] { return done; }));
  }
  EXPECT_TRUE(cec);
}

TEST_F(TlsStreamTest, TheClientRefusesAServerWithoutTheExpectedAddress) {
  auto client_ctx = ClientContext("a1.pem", "a1.key");
  Connect(client_ctx.get(), "10.1.2.3");
  boost::system::error_code sec, cec;
  Handshake(&sec, &cec);
  EXPECT_TRUE(cec);
  EXPECT_NE(client_->verify_error().find("IP address mismatch"), std::string::npos)
      << client_->verify_error();
}

}  // namespace
}  // namespace portolan::tls
