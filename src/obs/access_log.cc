#include "hms/obs/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hms::obs {

AccessLogFile::~AccessLogFile() {
  if (fd_ >= 0) close(fd_);
}

Result<bool> AccessLogFile::Open(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Error{"access_log: cannot open " + path + ": " + std::strerror(errno), Side::kConfig, false};
  }
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
  path_ = path;
  return true;
}

size_t AccessLogFile::Flush(const std::vector<LogRing*>& rings) {
  buffer_.clear();
  for (LogRing* r : rings)
    if (r != nullptr) r->Drain(&buffer_);
  size_t off = 0;
  while (off < buffer_.size() && fd_ >= 0) {
    ssize_t n = write(fd_, buffer_.data() + off, buffer_.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      last_error_ = "access_log: cannot write " + path_ + ": " + std::strerror(errno);
      break;
    }
    off += static_cast<size_t>(n);
  }
  return off;
}

}  // namespace hms::obs
