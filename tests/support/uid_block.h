// SPDX-License-Identifier: Apache-2.0
#pragma once

// A block of job uids that no other test process on this machine uses at the
// same time (ctest runs test processes in parallel, and agents refuse a
// --job-uid-range another live agent holds). The block is claimed with a
// lock file under /tmp/portolan-test-uids held until the object goes.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace portolan::testing {

class UidBlock {
 public:
  static constexpr unsigned kSize = 100;
  static constexpr unsigned kBase = 300000;
  UidBlock() {
    std::filesystem::create_directories("/tmp/portolan-test-uids");
    const unsigned start = static_cast<unsigned>(getpid()) % kBlocks;
    for (unsigned i = 0; i < kBlocks; ++i) {
      const unsigned k = (start + i) % kBlocks;
      int fd = open(("/tmp/portolan-test-uids/" + std::to_string(k)).c_str(),
                    O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) continue;
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        fd_ = fd;
        first_ = kBase + k * kSize;
        return;
      }
      close(fd);
    }
  }
  ~UidBlock() {
    if (fd_ >= 0) close(fd_);
  }
  UidBlock(const UidBlock&) = delete;
  UidBlock& operator=(const UidBlock&) = delete;
  bool ok() const { return fd_ >= 0; }
  unsigned first() const { return first_; }
  unsigned last() const { return first_ + kSize - 1; }
  std::string range() const { return std::to_string(first()) + "-" + std::to_string(last()); }

 private:
  static constexpr unsigned kBlocks = 600;
  int fd_ = -1;
  unsigned first_ = 0;
};

}  // namespace portolan::testing
