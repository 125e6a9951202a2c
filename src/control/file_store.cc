// The embedded file store (DESIGN §2): one directory, atomic file
// replacement, flock around read-modify-write, inotify for watchers.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "hms/config/config.h"
#include "hms/control/store.h"

namespace hms::control {
namespace {

Error IoError(const std::string& what, int err) {
  return Error{what + ": " + std::strerror(err), Side::kInternal, false};
}

Error UserError(std::string message) { return Error{std::move(message), Side::kConfig, false}; }

Result<bool> MkdirAll(const std::string& path) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
      return IoError("cannot create " + cur, errno);
    }
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return IoError("cannot open " + path, errno);
  if (!S_ISDIR(st.st_mode)) return UserError(path + " is not a directory");
  return true;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Whole-file read; ENOENT reads as "absent" (false) rather than an error.
Result<bool> ReadWhole(const std::string& path, std::string* out) {
  out->clear();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    return IoError("cannot read " + path, errno);
  }
  char buf[16384];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return IoError("cannot read " + path, err);
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

Result<bool> FsyncDir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open " + dir, errno);
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return IoError("cannot fsync " + dir, err);
  return true;
}

// Writes `content` to a fresh temp file beside `target` and fsyncs it; the
// caller renames it into place. Temp names start with '.' so List skips them.
Result<std::string> WriteTemp(const std::string& dir, const std::string& base,
                              const std::string& content) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = dir + "/." + base + ".tmp-" + std::to_string(getpid()) + "-" +
                          std::to_string(counter.fetch_add(1));
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot create " + tmp, errno);
  size_t off = 0;
  while (off < content.size()) {
    const ssize_t n = write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return IoError("cannot write " + tmp, err);
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    const int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return IoError("cannot fsync " + tmp, err);
  }
  if (close(fd) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return IoError("cannot write " + tmp, err);
  }
  return tmp;
}

// Holds flock on DIR/.lock for its lifetime. flock locks belong to the open
// file description, so each holder opens its own: two threads or two
// processes exclude each other alike.
class DirLock {
 public:
  DirLock() = default;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock() {
    if (fd_ >= 0) close(fd_);  // closing releases the lock
  }

  Result<bool> Take(const std::string& path, bool exclusive) {
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return IoError("cannot open " + path, errno);
    while (flock(fd_, exclusive ? LOCK_EX : LOCK_SH) != 0) {
      if (errno != EINTR) return IoError("cannot lock " + path, errno);
    }
    return true;
  }

 private:
  int fd_ = -1;
};

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.push_back(std::move(line));
    start = end + 1;
  }
  return out;
}

class FileStore final : public Store {
 public:
  explicit FileStore(std::string dir)
      : dir_(std::move(dir)), services_(dir_ + "/services"), endpoints_(dir_ + "/endpoints") {}
  ~FileStore() override {
    if (watch_fd_ >= 0) close(watch_fd_);
  }

  Result<bool> Init() {
    for (const std::string& d : {dir_, services_, endpoints_}) {
      Result<bool> ok = MkdirAll(d);
      if (!ok) return ok;
    }
    const int fd = open(LockPath().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return IoError("cannot open " + LockPath(), errno);
    close(fd);
    return true;
  }

  Result<bool> Register(const std::vector<StoredService>& services) override {
    // Everything is checked before anything is written.
    if (Result<bool> ok = CheckRegistration(services); !ok.ok()) return ok.error();
    DirLock lock;
    Result<bool> locked = lock.Take(LockPath(), true);
    if (!locked) return locked;

    // Phase 1: every new file as a synced temp file. A failure here leaves
    // the store untouched.
    struct Pending {
      std::string tmp, target, backup;
      bool renamed = false;
    };
    std::vector<Pending> pending;
    auto discard = [&pending] {
      for (const Pending& p : pending) {
        if (!p.renamed) unlink(p.tmp.c_str());
        if (!p.backup.empty()) unlink(p.backup.c_str());
      }
    };
    for (const StoredService& s : services) {
      // .source before .yaml: List keys off the .yaml file.
      const std::pair<std::string, const std::string*> files[] = {{s.name + ".source", &s.source},
                                                                  {s.name + ".yaml", &s.text}};
      for (const auto& [base, content] : files) {
        Result<std::string> tmp = WriteTemp(services_, base, *content);
        if (!tmp) {
          discard();
          return tmp.error();
        }
        pending.push_back(Pending{tmp.value(), services_ + "/" + base, "", false});
      }
    }
    // Phase 2: keep a hard link to each file about to be replaced, so a
    // failed rename half-way can put the old versions back.
    for (Pending& p : pending) {
      if (!IsRegularFile(p.target)) continue;
      p.backup = p.tmp + ".old";
      if (link(p.target.c_str(), p.backup.c_str()) != 0) {
        const int err = errno;
        p.backup.clear();
        discard();
        return IoError("cannot back up " + p.target, err);
      }
    }
    // Phase 3: rename into place; undo on failure.
    for (Pending& p : pending) {
      if (rename(p.tmp.c_str(), p.target.c_str()) != 0) {
        const int err = errno;
        for (Pending& q : pending) {
          if (!q.renamed) continue;
          if (!q.backup.empty()) {
            rename(q.backup.c_str(), q.target.c_str());
            q.backup.clear();
          } else {
            unlink(q.target.c_str());
          }
        }
        discard();
        return IoError("cannot rename into " + p.target, err);
      }
      p.renamed = true;
    }
    discard();  // drops the backups
    return FsyncDir(services_);
  }

  Result<bool> Deregister(const std::string& name) override {
    if (!config::IsValidServiceName(name)) {
      return UserError("'" + name + "' is not a valid service name");
    }
    DirLock lock;
    Result<bool> locked = lock.Take(LockPath(), true);
    if (!locked) return locked;
    const std::string yaml = services_ + "/" + name + ".yaml";
    if (!Exists(yaml)) return UserError("service '" + name + "' is not registered");
    // The .yaml goes first: without it the service is gone for readers.
    if (unlink(yaml.c_str()) != 0) return IoError("cannot remove " + yaml, errno);
    unlink((services_ + "/" + name + ".source").c_str());
    unlink((endpoints_ + "/" + name).c_str());
    Result<bool> ok = FsyncDir(services_);
    if (!ok) return ok;
    return FsyncDir(endpoints_);
  }

  Result<std::vector<StoredService>> List() override {
    DirLock lock;
    Result<bool> locked = lock.Take(LockPath(), false);
    if (!locked) return locked.error();
    DIR* d = opendir(services_.c_str());
    if (d == nullptr) return IoError("cannot list " + services_, errno);
    std::vector<std::string> names;
    while (const dirent* e = readdir(d)) {
      const std::string file = e->d_name;
      if (file.empty() || file[0] == '.' || !file.ends_with(".yaml")) continue;
      names.push_back(file.substr(0, file.size() - 5));
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    std::vector<StoredService> out;
    for (const std::string& name : names) {
      StoredService s;
      s.name = name;
      Result<bool> got = ReadWhole(services_ + "/" + name + ".yaml", &s.text);
      if (!got) return got.error();
      if (!got.value()) continue;  // removed by a writer that ignored the lock
      got = ReadWhole(services_ + "/" + name + ".source", &s.source);
      if (!got) return got.error();
      while (!s.source.empty() && s.source.back() == '\n') s.source.pop_back();
      Result<std::vector<std::string>> eps = ReadEndpoints(name);
      if (!eps) return eps.error();
      s.endpoints = std::move(eps.value());
      out.push_back(std::move(s));
    }
    return out;
  }

  Result<bool> AddEndpoint(const std::string& service, const std::string& address) override {
    return EditEndpoints(service, address, true);
  }

  Result<bool> RemoveEndpoint(const std::string& service, const std::string& address) override {
    return EditEndpoints(service, address, false);
  }

  int WatchFd() override {
    if (watch_fd_ >= 0) return watch_fd_;
    const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return -1;
    const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM;
    if (inotify_add_watch(fd, services_.c_str(), mask) < 0 ||
        inotify_add_watch(fd, endpoints_.c_str(), mask) < 0) {
      close(fd);
      return -1;
    }
    watch_fd_ = fd;
    return watch_fd_;
  }

  void DrainWatch() override {
    if (watch_fd_ < 0) return;
    alignas(inotify_event) char buf[8192];
    for (;;) {
      const ssize_t n = read(watch_fd_, buf, sizeof(buf));
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      break;  // EAGAIN: drained
    }
  }

  std::string Uri() const override { return "file:" + dir_; }

 private:
  std::string LockPath() const { return dir_ + "/.lock"; }

  Result<std::vector<std::string>> ReadEndpoints(const std::string& name) {
    std::string text;
    Result<bool> got = ReadWhole(endpoints_ + "/" + name, &text);
    if (!got) return got.error();
    return SplitLines(text);
  }

  Result<bool> EditEndpoints(const std::string& service, const std::string& address, bool add) {
    if (!config::IsValidServiceName(service)) {
      return UserError("'" + service + "' is not a valid service name");
    }
    if (!config::ParseHostPort(address)) {
      return UserError("'" + address + "' is not host:port with a port 1..65535");
    }
    DirLock lock;
    Result<bool> locked = lock.Take(LockPath(), true);
    if (!locked) return locked;
    if (!Exists(services_ + "/" + service + ".yaml")) {
      return UserError("service '" + service + "' is not registered");
    }
    Result<std::vector<std::string>> eps = ReadEndpoints(service);
    if (!eps) return eps.error();
    std::vector<std::string>& list = eps.value();
    const auto it = std::find(list.begin(), list.end(), address);
    if (add) {
      if (it != list.end()) return false;
      list.push_back(address);
    } else {
      if (it == list.end()) {
        return UserError("service '" + service + "' has no endpoint " + address);
      }
      list.erase(it);
    }
    const std::string target = endpoints_ + "/" + service;
    if (list.empty()) {
      if (unlink(target.c_str()) != 0) return IoError("cannot remove " + target, errno);
    } else {
      std::string text;
      for (const std::string& e : list) text += e + "\n";
      Result<std::string> tmp = WriteTemp(endpoints_, service, text);
      if (!tmp) return tmp.error();
      if (rename(tmp.value().c_str(), target.c_str()) != 0) {
        const int err = errno;
        unlink(tmp.value().c_str());
        return IoError("cannot rename into " + target, err);
      }
    }
    Result<bool> synced = FsyncDir(endpoints_);
    if (!synced) return synced;
    return true;
  }

  std::string dir_, services_, endpoints_;
  int watch_fd_ = -1;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenFileStore(const std::string& dir) {
  if (dir.empty()) return UserError("file store needs a directory (file:DIR)");
  std::string clean = dir;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  auto store = std::make_unique<FileStore>(clean);
  Result<bool> ok = store->Init();
  if (!ok) return ok.error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace hms::control
