// SPDX-License-Identifier: Apache-2.0
// Mutual TLS on the agent RPC and HTTPS on REST, with the real daemons and
// certificates made by deploy/dev-ca.sh (plus one expired certificate signed
// here with the same CA key, which the OpenSSL CLI of Debian 12 cannot make).
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "../support/prometheus_text.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "harness.h"
#include "portolan/tls/tls.h"
#include "portolan/v1/wire.pb.h"
#include "portolan/wire/frame.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Signs a certificate for CN=id, OU=site with the CA in `pki`, valid from
// `from_days` to `to_days` relative to now; writes PREFIX.pem and PREFIX.key.
void IssueWithValidity(const std::string& pki, const std::string& prefix, const std::string& id,
                       const std::string& site, long from_days, long to_days) {
  FILE* f = fopen((pki + "/ca.key").c_str(), "r");
  ASSERT_NE(f, nullptr);
  EVP_PKEY* ca_key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  fclose(f);
  f = fopen((pki + "/ca.pem").c_str(), "r");
  ASSERT_NE(f, nullptr);
  X509* ca = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  ASSERT_TRUE(ca_key && ca);
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 4242);
  X509_gmtime_adj(X509_getm_notBefore(cert), from_days * 86400);
  X509_gmtime_adj(X509_getm_notAfter(cert), to_days * 86400);
  X509_NAME* name = X509_get_subject_name(cert);
  auto add = [name](const char* field, const std::string& v) {
    X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(v.c_str()), -1, -1, 0);
  };
  add("O", "Portolan");
  add("OU", site);
  add("CN", id);
  X509_set_issuer_name(cert, X509_get_subject_name(ca));
  X509_set_pubkey(cert, key);
  ASSERT_GT(X509_sign(cert, ca_key, EVP_sha256()), 0);
  f = fopen((prefix + ".pem").c_str(), "w");
  PEM_write_X509(f, cert);
  fclose(f);
  f = fopen((prefix + ".key").c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  fclose(f);
  chmod((prefix + ".key").c_str(), 0600);  // the daemons refuse keys others can read
  X509_free(cert);
  X509_free(ca);
  EVP_PKEY_free(key);
  EVP_PKEY_free(ca_key);
}

// A TLS client presenting CERT_PREFIX.{pem,key} that sends a Register and
// reads the answer; true only if the scheduler accepted the registration.
bool RegisterWithCertificate(uint16_t port, const std::string& cert_prefix, const std::string& ca,
                             const std::string& id, const std::string& site) {
  namespace asio = boost::asio;
  asio::io_context io;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.use_certificate_chain_file(cert_prefix + ".pem");
  ctx.use_private_key_file(cert_prefix + ".key", asio::ssl::context::pem);
  ctx.load_verify_file(ca);
  ctx.set_verify_mode(asio::ssl::verify_peer);
  asio::ssl::stream<asio::ip::tcp::socket> s(io, ctx);
  boost::system::error_code ec;
  s.lowest_layer().connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  if (ec) return false;
  s.handshake(asio::ssl::stream_base::client, ec);
  if (ec) return false;  // TLS 1.2: refused in the handshake
  v1::Envelope reg;
  reg.mutable_register_()->set_agent_id(id);
  reg.mutable_register_()->set_site(site);
  asio::write(s, asio::buffer(wire::EncodeFrame(reg)), ec);
  if (ec) return false;
  // TLS 1.3: the refusal arrives as an alert on the first read.
  wire::FrameDecoder decoder(wire::kDefaultMaxFrameBytes);
  char buf[4096];
  v1::Envelope answer;
  while (true) {
    size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) return false;
    decoder.Append(buf, n);
    auto next = decoder.Next(&answer);
    if (!next.ok()) return false;
    if (*next) return answer.has_register_ack() && answer.register_ack().accepted();
  }
}

std::vector<std::string> AgentArgv(Cluster& c, const std::string& id, const std::string& site,
                                   const std::string& cert_prefix, const std::string& ca) {
  return {PORTOLAN_AGENT_BIN,
          "--job-uid-range",
          c.JobUidRange(id),
          "--id",
          id,
          "--site",
          site,
          "--scheduler",
          "127.0.0.1:" + std::to_string(c.rpc_port()),
          "--state-dir",
          c.dir() + "/agent-" + id,
          "--topology-synthetic",
          "pack:1 numa:1(memory=4GiB) core:2 pu:1",
          "--reconnect-max-ms",
          "300",
          "--tls-cert",
          cert_prefix + ".pem",
          "--tls-key",
          cert_prefix + ".key",
          "--tls-ca",
          ca};
}

TEST(TlsIT, JobsRunOverMutualTlsAndRestOverHttps) {
  Cluster c;
  c.EnableTls();
  c.StartScheduler();
  EXPECT_NE(c.SchedulerLog().find("agent RPC: mutual TLS"), std::string::npos);
  EXPECT_NE(c.SchedulerLog().find("REST https://"), std::string::npos);
  c.StartAgent("lg-tls", "lingang-idc-1");
  auto job = c.client().Submit(JobSpec({"/bin/echo", "over tls"}, 1, "acme"));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(WaitForState(c.client(), job->id(), v1::Job::succeeded));
  auto logs = c.client().Logs(job->id());
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ(logs->stdout(), "over tls\n");
  EXPECT_NE(ReadAll(c.dir() + "/agent-lg-tls.log").find("over TLS; registering as lg-tls"),
            std::string::npos);

  // Plain HTTP to the HTTPS port gets nothing; HTTPS without our CA fails
  // verification; the server keeps answering HTTPS.
  std::string body;
  client::Client plain("http://127.0.0.1:" + std::to_string(c.rest_port()), Cluster::kAdminToken);
  auto r = plain.Raw("GET", "/v1/agents", "", &body);
  EXPECT_FALSE(r.ok() && *r == 200);
  client::Client untrusted(c.base_url(), Cluster::kAdminToken);  // system CAs only
  EXPECT_FALSE(untrusted.Raw("GET", "/v1/agents", "", &body).ok());
  auto again = c.client().ListAgents();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->agents_size(), 1);

  // The certificates the scheduler presents, with the days they have left
  // (dev-ca.sh issues them for 365 days), for the expiry alert.
  ASSERT_EQ(*c.client().Raw("GET", "/metrics", "", &body), 200);
  auto ex = test_support::ParsePrometheusText(body);
  ASSERT_TRUE(ex.ok()) << ex.error;
  for (const char* use : {"agent_rpc", "https"}) {
    const double left = ex.Value("portolan_tls_certificate_expiry_seconds",
                                 {{"use", use}, {"file", c.pki() + "/scheduler.pem"}});
    EXPECT_GT(left, 364 * 86400.0) << use << "\n" << body;
    EXPECT_LE(left, 366 * 86400.0) << use;
  }

  // A newcomer's wrong scheme, or no --ca, gets a hint naming what to set.
  const std::string authority = "127.0.0.1:" + std::to_string(c.rest_port());
  auto [rc, out] = Cli(c, "--server http://" + authority + " jobs", true);
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("hint: " + authority + " speaks HTTPS, not plain HTTP: use --server https://" +
                     authority),
            std::string::npos)
      << out;
  std::tie(rc, out) = Cli(c, "jobs", true);
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("set --ca FILE (or PORTOLAN_CA)"), std::string::npos) << out;
  std::tie(rc, out) = Cli(c, "--ca " + c.pki() + "/ca.pem version", true);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("server: portolan-scheduler " PORTOLAN_VERSION), std::string::npos) << out;
}

TEST(TlsIT, ForeignExpiredAndOtherSiteCertificatesAreRefusedAndLogged) {
  Cluster c;
  c.EnableTls();
  c.StartScheduler();
  c.StartAgent("lg-good", "lingang-idc-1");
  const std::string ca = c.pki() + "/ca.pem";

  // 1. A certificate from another CA (the agent trusts our scheduler).
  const std::string other = c.dir() + "/other-ca";
  ASSERT_EQ(std::system((std::string(PORTOLAN_SOURCE_DIR "/deploy/dev-ca.sh ") + other +
                         " init >/dev/null && " PORTOLAN_SOURCE_DIR "/deploy/dev-ca.sh " + other +
                         " agent lg-foreign lingang-idc-1 >/dev/null")
                            .c_str()),
            0);
  Process foreign(AgentArgv(c, "lg-foreign", "lingang-idc-1", other + "/agent-lg-foreign", ca),
                  c.dir() + "/agent-lg-foreign.log");
  // 2. An expired certificate from our own CA. The agent itself refuses to
  // start with it; a peer that presents it anyway is refused by the scheduler.
  IssueWithValidity(c.pki(), c.pki() + "/expired", "lg-expired", "lingang-idc-1", -30, -1);
  Process expired(AgentArgv(c, "lg-expired", "lingang-idc-1", c.pki() + "/expired", ca),
                  c.dir() + "/agent-lg-expired.log");
  EXPECT_NE(expired.Wait(seconds(20)), -1);
  EXPECT_NE(ReadAll(c.dir() + "/agent-lg-expired.log").find("expired.pem (CN=lg-expired"),
            std::string::npos);
  EXPECT_FALSE(RegisterWithCertificate(c.rpc_port(), c.pki() + "/expired", ca, "lg-expired",
                                       "lingang-idc-1"));
  // 3. A valid certificate for hongkong-1 used to register at lingang-idc-1.
  const std::string hk = c.AgentCert("hk-1", "hongkong-1");
  Process wrong_site(AgentArgv(c, "lg-2", "lingang-idc-1", hk, ca), c.dir() + "/agent-lg-2.log");
  // 4. The right site but another agent's id.
  Process wrong_id(AgentArgv(c, "hk-2", "hongkong-1", hk, ca), c.dir() + "/agent-hk-2.log");

  auto logged = [&](const std::string& text) {
    return WaitFor([&] { return c.SchedulerLog().find(text) != std::string::npos; }, seconds(20));
  };
  EXPECT_TRUE(
      logged("client certificate: unable to get local issuer certificate "
             "(CN=lg-foreign,OU=lingang-idc-1,O=Portolan)"))
      << c.SchedulerLog();
  EXPECT_TRUE(
      logged("client certificate: certificate has expired "
             "(CN=lg-expired,OU=lingang-idc-1,O=Portolan)"))
      << c.SchedulerLog();
  EXPECT_TRUE(
      logged("allows agent 'hk-1' at site 'hongkong-1' only, not agent 'lg-2' at site "
             "'lingang-idc-1'"))
      << c.SchedulerLog();
  EXPECT_TRUE(
      logged("allows agent 'hk-1' at site 'hongkong-1' only, not agent 'hk-2' at site "
             "'hongkong-1'"))
      << c.SchedulerLog();
  // A certificate mismatch is final: the agent is told why and exits 3.
  for (Process* p : {&wrong_site, &wrong_id}) {
    int status = p->Wait(seconds(20));
    ASSERT_NE(status, -1);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3);
  }
  EXPECT_NE(ReadAll(c.dir() + "/agent-lg-2.log").find("scheduler refused registration"),
            std::string::npos);
  EXPECT_NE(ReadAll(c.dir() + "/agent-lg-foreign.log").find("refused this agent's certificate"),
            std::string::npos)
      << ReadAll(c.dir() + "/agent-lg-foreign.log");

  // 5. No certificate at all: a plain TCP peer sending a Register frame.
  int fd = ConnectLoopback(c.rpc_port());
  ASSERT_GE(fd, 0);
  v1::Envelope reg;
  reg.mutable_register_()->set_agent_id("lg-plain");
  reg.mutable_register_()->set_site("lingang-idc-1");
  const std::string frame = wire::EncodeFrame(reg);
  ASSERT_EQ(write(fd, frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
  EXPECT_TRUE(ClosedByServer(fd));
  close(fd);

  // None of them registered; the good agent still runs jobs.
  auto agents = c.client().ListAgents();
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->agents_size(), 1);
  EXPECT_EQ(agents->agents(0).id(), "lg-good");
  auto job = c.client().Submit(JobSpec({"/bin/true"}, 1, "acme"));
  ASSERT_TRUE(job.ok());
  EXPECT_TRUE(WaitForState(c.client(), job->id(), v1::Job::succeeded));
}

TEST(TlsIT, AgentRefusesASchedulerItCannotVerify) {
  Cluster c;
  c.EnableTls();
  c.StartScheduler();
  const std::string other = c.dir() + "/other-ca";
  ASSERT_EQ(std::system(
                (std::string(PORTOLAN_SOURCE_DIR "/deploy/dev-ca.sh ") + other + " init >/dev/null")
                    .c_str()),
            0);
  const std::string cert = c.AgentCert("lg-x", "lingang-idc-1");
  Process agent(AgentArgv(c, "lg-x", "lingang-idc-1", cert, other + "/ca.pem"),
                c.dir() + "/agent-lg-x.log");
  EXPECT_TRUE(WaitFor(
      [&] {
        return ReadAll(c.dir() + "/agent-lg-x.log").find("scheduler certificate refused: ") !=
               std::string::npos;
      },
      seconds(20)))
      << ReadAll(c.dir() + "/agent-lg-x.log");
  EXPECT_FALSE(c.client().GetAgent("lg-x").ok());
}

TEST(TlsIT, DaemonsRefuseToStartWithoutCertificatesOrExplicitInsecure) {
  Cluster c;
  const std::string slog = c.dir() + "/sched.log";
  Process s({PORTOLAN_SCHEDULER_BIN, "--rest-addr", "127.0.0.1:0", "--rpc-addr", "127.0.0.1:0",
             "--state-dir", c.dir() + "/s", "--tokens", c.tokens_path(), "--policy",
             PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml"},
            slog);
  int status = s.Wait(seconds(20));
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  EXPECT_NE(ReadAll(slog).find("the agent RPC needs --tls-cert, --tls-key and --tls-ca"),
            std::string::npos)
      << ReadAll(slog);

  const std::string alog = c.dir() + "/agent.log";
  Process a({PORTOLAN_AGENT_BIN, "--site", "lingang-idc-1", "--topology-synthetic",
             "pack:1 core:1 pu:1", "--state-dir", c.dir() + "/a"},
            alog);
  status = a.Wait(seconds(20));
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  EXPECT_NE(ReadAll(alog).find("the agent RPC needs --tls-cert"), std::string::npos)
      << ReadAll(alog);

  // A key that does not belong to the certificate is named at start.
  c.RunDevCa("init");
  c.RunDevCa("scheduler");
  const std::string agent = c.AgentCert("a1", "lingang-idc-1");
  const std::string klog = c.dir() + "/badkey.log";
  Process k(
      {PORTOLAN_SCHEDULER_BIN, "--rest-addr", "127.0.0.1:0", "--rpc-addr", "127.0.0.1:0",
       "--state-dir", c.dir() + "/s2", "--tokens", c.tokens_path(), "--policy",
       PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml", "--tls-cert", c.pki() + "/scheduler.pem",
       "--tls-key", agent + ".key", "--tls-ca", c.pki() + "/ca.pem"},
      klog);
  status = k.Wait(seconds(20));
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  EXPECT_NE(ReadAll(klog).find("does not match certificate"), std::string::npos) << ReadAll(klog);
}

}  // namespace
}  // namespace portolan::testing
