// The access-log file (docs/observability.md): the control thread drains
// every core's LogRing into it. Never on the data path: a slow disk delays
// this thread only, and the cores drop lines (counted) when their rings fill.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hms/common/result.h"
#include "hms/obs/log_ring.h"

namespace hms::obs {

class AccessLogFile {
 public:
  AccessLogFile() = default;
  AccessLogFile(const AccessLogFile&) = delete;
  AccessLogFile& operator=(const AccessLogFile&) = delete;
  ~AccessLogFile();

  // Opens (creating, appending to) `path`; again after a rotation (SIGHUP).
  Result<bool> Open(const std::string& path);
  // Moves every ring's lines to the file; returns the bytes written. A write
  // error drops what it could not write (the error is kept for the log).
  size_t Flush(const std::vector<LogRing*>& rings);
  const std::string& last_error() const { return last_error_; }

 private:
  int fd_ = -1;
  std::string path_;
  std::string buffer_;
  std::string last_error_;
};

}  // namespace hms::obs
