// SPDX-License-Identifier: Apache-2.0
#pragma once

// A minimal HTTP/1.1 listener that serves one Registry at GET /metrics, for
// daemons without a REST server (the agent). Each connection gets one
// answer and is closed; a request must arrive within 5 s and fit in 8 KiB.
// Runs on the given io_context; create, Listen and destroy it on that
// context's thread (or before it runs).
#include <memory>
#include <utility>  // Boost 1.74 asio/awaitable.hpp needs std::exchange under C++20

#include <boost/asio.hpp>

#include "absl/status/status.h"
#include "portolan/base/strings.h"
#include "portolan/metrics/metrics.h"

namespace portolan::metrics {

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, Registry* registry);
  ~HttpServer();
  absl::Status Listen(const base::HostPort& addr);  // port 0: any free port
  base::HostPort bound() const { return bound_; }

 private:
  void Accept();
  Registry* registry_;
  boost::asio::ip::tcp::acceptor acceptor_;
  base::HostPort bound_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace portolan::metrics
