// SPDX-License-Identifier: Apache-2.0
#include "portolan/base/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"

namespace portolan::base {
namespace {

std::string Octal(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

}  // namespace

absl::Status CheckNotWorldReadable(const std::string& path, absl::string_view what) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
  }
  if (st.st_mode & S_IROTH) {
    return absl::PermissionDeniedError(absl::StrCat(what, " ", path, " is mode ", Octal(st.st_mode),
                                                    " (readable by every local user); chmod 600 ",
                                                    path, " (or 640 for a group)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> MakePrivateDir(const std::string& path, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat(path, ": ", ec.message()));
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", strerror(errno)));
  }
  if ((st.st_mode & 0777 & ~mode) == 0) return false;
  if (chmod(path.c_str(), st.st_mode & 0777 & mode) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot make ", path, " private (mode ",
                                                      Octal(st.st_mode & 0777 & mode),
                                                      "): ", strerror(errno)));
  }
  return true;
}

absl::StatusOr<bool> NarrowFileMode(const std::string& path, mode_t mode) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  if ((st.st_mode & 0777 & ~mode) == 0) return false;
  if (chmod(path.c_str(), st.st_mode & 0777 & mode) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot make ", path, " private: ", strerror(errno)));
  }
  return true;
}

std::string ReadSmallFile(const std::string& path) {
  return ReadSmallFileAt(AT_FDCWD, path.c_str());
}

std::string ReadSmallFileAt(int dirfd, const char* path) {
  // open/read/close rather than an ifstream: the agent reads several proc
  // and cgroup files per job, and a stream's locale and buffer setup cost
  // more than the reads (docs/performance.md).
  const int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // an error mid-way keeps what was read, as the stream did
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

namespace {

void RemoveTreeAt(int dirfd, const std::string& name, int depth) {
  if (unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT || depth > 64) return;
  const int fd = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  DIR* d = fdopendir(fd);  // owns fd
  if (d == nullptr) {
    close(fd);
    return;
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  }
  for (const std::string& n : names) RemoveTreeAt(::dirfd(d), n, depth + 1);
  closedir(d);
  unlinkat(dirfd, name.c_str(), AT_REMOVEDIR);
}

}  // namespace

void RemoveTreeAt(int dirfd, const std::string& name) { RemoveTreeAt(dirfd, name, 0); }

}  // namespace portolan::base
