// SPDX-License-Identifier: Apache-2.0
#pragma once

// A loopback TCP port free right now, for test peers that cannot be told to
// listen on port 0 and report the port (etcd, chromedriver). There is a
// window between release and reuse; callers retry or fail clearly.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace portolan::testing {

// The port (bound to port 0 on 127.0.0.1, then released), or 0 on failure.
inline int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(a.sin_port);
}

}  // namespace portolan::testing
