// What is wrong with a file the config names, before a library is asked to
// read it: libraries answer a missing file or a directory with "cannot parse"
// (wolfSSL: "cannot load the certificate chain (PEM)"; an ifstream on a
// directory reads as an empty file), which sends a person looking in the
// wrong place. Header-only; any thread; blocks on the file system.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

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

}  // namespace hms
