// What is wrong with a file the config names, before a library is asked to
// read it: libraries answer a missing file or a directory with "cannot parse"
// (wolfSSL: "cannot load the certificate chain (PEM)"; an ifstream on a
// directory reads as an empty file), which sends a person looking in the
// wrong place. And reading such a small file (a key, a password) whole.
// Header-only; any thread; blocks on the file system (boot and control only).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "hms/common/result.h"

namespace hms {

// "" when `path` is a regular file this process can open for reading, else
// "PATH: cannot open: No such file or directory" or "PATH: is a directory".
inline std::string UnreadableFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return path + ": cannot open: " + std::strerror(errno);
  if (S_ISDIR(st.st_mode)) return path + ": is a directory";
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return path + ": cannot open: " + std::strerror(errno);
  close(fd);
  return "";
}

// The whole content of a small file the config names (a key set, a password),
// or a config error naming it: unreadable, a directory, over `max_bytes`.
inline Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes = 1u << 20) {
  if (std::string why = UnreadableFile(path); !why.empty()) return ConfigError(why);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return ConfigError(path + ": cannot open: " + std::strerror(errno));
  std::string data;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    data.append(buf, n);
    if (data.size() > max_bytes) {
      std::fclose(f);
      return ConfigError(path + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return ConfigError(path + ": read error");
  return data;
}

}  // namespace hms
