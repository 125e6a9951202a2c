// The embedded file store (DESIGN §2): one directory, atomic file
// replacement, flock around read-modify-write, inotify for watchers.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hms/config/config.h"
#include "hms/control/store.h"
#include "hms/core/clock.h"

namespace hms::control {
namespace {

// A lease file is named SERVICE@ADDRESS; "mtls://" cannot be in a file
// name, so an mTLS endpoint's file says "mtls+" instead.
constexpr std::string_view kMtlsFilePrefix = "mtls+";
std::string LeaseFileAddress(const std::string& address) {
  if (!address.starts_with(config::kMtlsScheme)) return address;
  return std::string(kMtlsFilePrefix) + address.substr(config::kMtlsScheme.size());
}

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

// Services a registration writes with one fsync each; more share one syncfs.
constexpr size_t kSyncEachUpTo = 16;

// fsync of the directory `dir` (its entries: renames, unlinks), or with
// `whole_fs` syncfs of the file system that holds it (every temp file just
// written there).
Result<bool> SyncDirectory(const std::string& dir, bool whole_fs) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open " + dir, errno);
  const int rc = whole_fs ? syncfs(fd) : fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) {
    return IoError((whole_fs ? "cannot sync the file system of " : "cannot fsync ") + dir, err);
  }
  return true;
}

Result<bool> FsyncDir(const std::string& dir) { return SyncDirectory(dir, false); }

// Writes `content` to a fresh temp file beside `target` and fsyncs it
// (unless `sync` is false: the caller then syncs the file system once for
// many files); the caller renames it into place. Temp names start with '.'
// so List skips them.
Result<std::string> WriteTemp(const std::string& dir, const std::string& base,
                              const std::string& content, bool sync = true) {
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
  if (sync && fsync(fd) != 0) {
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
  FileStore(std::string dir, const StoreClock& clock)
      : clock_(&clock),
        dir_(std::move(dir)),
        services_(dir_ + "/services"),
        endpoints_(dir_ + "/endpoints"),
        leases_(dir_ + "/leases"),
        members_(dir_ + "/members") {
    const size_t slash = dir_.rfind('/');
    parent_ = slash == std::string::npos ? "." : slash == 0 ? "/" : dir_.substr(0, slash);
    dir_base_ = slash == std::string::npos ? dir_ : dir_.substr(slash + 1);
  }
  ~FileStore() override {
    if (watch_fd_ >= 0) close(watch_fd_);
  }

  Result<bool> Init() {
    for (const std::string& d : {dir_, services_, endpoints_, leases_, members_}) {
      Result<bool> ok = MkdirAll(d);
      if (!ok) return ok;
    }
    const int fd = open(LockPath().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return IoError("cannot open " + LockPath(), errno);
    close(fd);
    return true;
  }

  Result<bool> Register(const std::vector<StoredService>& services, const Check& check) override {
    // Everything is checked before anything is written.
    if (Result<bool> ok = CheckRegistration(services); !ok.ok()) return ok.error();
    DirLock lock;
    Result<bool> locked = lock.Take(LockPath(), true);
    if (!locked) return locked;
    if (check) {
      // Judged on what the store holds under this same lock.
      Result<std::vector<StoredService>> current = ListLocked();
      if (!current) return current.error();
      if (Result<bool> ok = check(current.value()); !ok.ok()) return ok.error();
    }

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
    // A few files are fsynced one by one; many (a registration of thousands
    // of services) are made durable by one syncfs: 20,000 fsyncs took most
    // of a million-route registration's minute.
    const bool one_sync = services.size() > kSyncEachUpTo;
    for (const StoredService& s : services) {
      // .source before .yaml: List keys off the .yaml file.
      const std::pair<std::string, const std::string*> files[] = {{s.name + ".source", &s.source},
                                                                  {s.name + ".yaml", &s.text}};
      for (const auto& [base, content] : files) {
        Result<std::string> tmp = WriteTemp(services_, base, *content, !one_sync);
        if (!tmp) {
          discard();
          return tmp.error();
        }
        pending.push_back(Pending{tmp.value(), services_ + "/" + base, "", false});
      }
    }
    if (one_sync) {
      if (Result<bool> ok = SyncDirectory(services_, true); !ok) {
        discard();
        return ok;
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
    for (const LeaseFile& l : ReadLeases())
      if (l.service == name) unlink(l.path.c_str());
    Result<bool> ok = FsyncDir(services_);
    if (!ok) return ok;
    ok = FsyncDir(leases_);
    if (!ok) return ok;
    return FsyncDir(endpoints_);
  }

  Result<std::vector<StoredService>> List() override {
    DirLock lock;
    Result<bool> locked = lock.Take(LockPath(), false);
    if (!locked) return locked.error();
    return ListLocked();
  }

  // List's work; the caller holds the lock (shared or exclusive).
  Result<std::vector<StoredService>> ListLocked() {
    next_expiry_at_ms_ = -1;
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
    // Leased endpoints alive now; the first to expire sets NextExpiryMs.
    const int64_t now = NowMs();
    std::map<std::string, std::vector<std::string>> leased;
    for (const LeaseFile& l : ReadLeases()) {
      if (l.expires_ms <= now) continue;
      leased[l.service].push_back(l.address);
      if (next_expiry_at_ms_ < 0 || l.expires_ms < next_expiry_at_ms_) {
        next_expiry_at_ms_ = l.expires_ms;
      }
    }
    std::vector<StoredService> out;
    std::map<std::string, StoredService> texts;  // this List's, for the next one
    for (const std::string& name : names) {
      StoredService s;
      s.name = name;
      Result<bool> got = ReadService(name, &s);
      if (!got) return got.error();
      if (!got.value()) continue;  // removed by a writer that ignored the lock
      texts[name] = StoredService{name, s.text, s.source, {}, s.stamp};
      Result<std::vector<std::string>> eps = ReadEndpoints(name);
      if (!eps) return eps.error();
      s.endpoints = std::move(eps.value());
      for (const std::string& a : leased[name])
        if (std::find(s.endpoints.begin(), s.endpoints.end(), a) == s.endpoints.end()) {
          s.endpoints.push_back(a);
        }
      out.push_back(std::move(s));
    }
    texts_ = std::move(texts);  // deregistered services are forgotten
    return out;
  }

  // A service's text and source, read again only when its NAME.yaml is
  // another file than the last List read (a rename put a new one in place)
  // or was written since: a reload of 10,000 services reads the few that
  // changed. False when the file is gone.
  Result<bool> ReadService(const std::string& name, StoredService* s) {
    const std::string yaml = services_ + "/" + name + ".yaml";
    struct stat st;
    if (stat(yaml.c_str(), &st) != 0) {
      if (errno == ENOENT) return false;
      return IoError("cannot read " + yaml, errno);
    }
    s->stamp = std::to_string(st.st_ino) + ":" +
               std::to_string(static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                              st.st_mtim.tv_nsec) +
               ":" + std::to_string(st.st_size);
    if (const auto it = texts_.find(name); it != texts_.end() && it->second.stamp == s->stamp) {
      s->text = it->second.text;
      s->source = it->second.source;
      return true;
    }
    Result<bool> got = ReadWhole(yaml, &s->text);
    if (!got || !got.value()) return got;
    got = ReadWhole(services_ + "/" + name + ".source", &s->source);
    if (!got) return got.error();
    while (!s->source.empty() && s->source.back() == '\n') s->source.pop_back();
    // A file written by hand into the store has no .source: messages name
    // the store's own file.
    if (s->source.empty()) s->source = yaml;
    return true;
  }

  Result<bool> AddEndpoint(const std::string& service, const std::string& address) override {
    return EditEndpoints(service, address, true);
  }

  Result<bool> RemoveEndpoint(const std::string& service, const std::string& address) override {
    return EditEndpoints(service, address, false);
  }

  Result<int64_t> AddEndpointWithLease(const std::string& service, const std::string& address,
                                       int64_t ttl_s) override {
    if (!config::IsValidServiceName(service)) {
      return UserError("'" + service + "' is not a valid service name");
    }
    if (!config::ParseEndpoint(address)) {
      return UserError("'" + address + "' is not [mtls://]host:port with a port 1..65535");
    }
    if (ttl_s < 1) return UserError("a lease TTL must be at least 1 s");
    DirLock lock;
    Result<bool> locked = lock.Take(LockPath(), true);
    if (!locked) return locked.error();
    if (!Exists(services_ + "/" + service + ".yaml")) {
      return UserError("service '" + service + "' is not registered");
    }
    // Expired leases of any holder go now, under the lock.
    const int64_t now = NowMs();
    for (const LeaseFile& l : ReadLeases())
      if (l.expires_ms <= now) unlink(l.path.c_str());
    // A sidecar that restarts takes its entry over with its new lease.
    const std::string base = service + "@" + LeaseFileAddress(address);
    Result<std::string> tmp = WriteTemp(leases_, base, std::to_string(ttl_s) + "\n");
    if (!tmp) return tmp.error();
    const std::string target = leases_ + "/" + base;
    if (!Touch(tmp.value())) {
      const int err = errno;
      unlink(tmp.value().c_str());
      return IoError("cannot set the renewal time of " + tmp.value(), err);
    }
    if (rename(tmp.value().c_str(), target.c_str()) != 0) {
      const int err = errno;
      unlink(tmp.value().c_str());
      return IoError("cannot rename into " + target, err);
    }
    Result<bool> synced = FsyncDir(leases_);
    if (!synced) return synced.error();
    const int64_t id = ++last_lease_;
    held_[id] = target;
    return id;
  }

  Result<int64_t> KeepAlive(int64_t lease) override {
    const auto it = held_.find(lease);
    if (it == held_.end()) return UnknownLease(lease);
    std::optional<LeaseFile> l = ReadLeaseTimes(it->second);
    // Renewing touches the mtime only: watchers see no change (inotify's
    // IN_ATTRIB is not in their mask), so a heartbeat costs them nothing.
    if (!l || l->expires_ms <= NowMs() || !Touch(it->second)) {
      held_.erase(it);
      return UnknownLease(lease);
    }
    return l->ttl_s;
  }

  Result<bool> RevokeLease(int64_t lease) override {
    const auto it = held_.find(lease);
    if (it == held_.end()) return UnknownLease(lease).error();
    const std::string path = it->second;
    held_.erase(it);
    DirLock lock;
    Result<bool> locked = lock.Take(LockPath(), true);
    if (!locked) return locked;
    if (unlink(path.c_str()) != 0) {
      if (errno == ENOENT) return UnknownLease(lease).error();
      return IoError("cannot remove " + path, errno);
    }
    return FsyncDir(path.substr(0, path.rfind('/')));
  }

  Result<int64_t> PutMember(const std::string& id, const std::string& record,
                            int64_t ttl_s) override {
    if (id.empty() || id.find_first_of("/\n") != std::string::npos || id[0] == '.') {
      return UserError("'" + id + "' is not a member id");
    }
    if (ttl_s < 1) return UserError("a lease TTL must be at least 1 s");
    if (record.find('\n') != std::string::npos) return UserError("a member record is one line");
    Result<std::string> tmp = WriteTemp(members_, id, std::to_string(ttl_s) + "\n" + record + "\n");
    if (!tmp) return tmp.error();
    const std::string target = members_ + "/" + id;
    if (!Touch(tmp.value()) || rename(tmp.value().c_str(), target.c_str()) != 0) {
      const int err = errno;
      unlink(tmp.value().c_str());
      return IoError("cannot write " + target, err);
    }
    const int64_t lease = ++last_lease_;
    held_[lease] = target;
    return lease;
  }

  Result<std::vector<std::string>> ListMembers() override {
    std::vector<std::string> out;
    DIR* d = opendir(members_.c_str());
    if (d == nullptr) return out;
    std::vector<std::string> names;
    while (const dirent* e = readdir(d))
      if (e->d_name[0] != '.') names.push_back(e->d_name);
    closedir(d);
    std::sort(names.begin(), names.end());
    const int64_t now = NowMs();
    for (const std::string& n : names) {
      const std::string path = members_ + "/" + n;
      std::optional<LeaseFile> l = ReadLeaseTimes(path);
      std::string text;
      Result<bool> got = ReadWhole(path, &text);
      if (!l || l->expires_ms <= now || !got.ok() || !got.value()) {
        // Expired records go here: no other writer sweeps this directory.
        if (l && l->expires_ms <= now) unlink(path.c_str());
        continue;
      }
      const size_t nl = text.find('\n');
      std::string record = nl == std::string::npos ? "" : text.substr(nl + 1);
      while (!record.empty() && record.back() == '\n') record.pop_back();
      if (!record.empty()) out.push_back(std::move(record));
    }
    return out;
  }

  int64_t NextExpiryMs() const override {
    return next_expiry_at_ms_ < 0 ? -1 : std::max<int64_t>(0, next_expiry_at_ms_ - NowMs());
  }

  int WatchFd() override {
    if (watch_fd_ >= 0) return watch_fd_;
    const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return -1;
    watch_fd_ = fd;
    AddWatches();
    return watch_fd_;
  }

  bool DrainWatch() override {
    if (watch_fd_ < 0) return false;
    alignas(inotify_event) char buf[8192];
    bool changed = false;
    bool rewatch = false;
    for (;;) {
      const ssize_t n = read(watch_fd_, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EAGAIN: drained
      for (ssize_t off = 0; off < n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
        off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
        if (e->mask & IN_Q_OVERFLOW) {
          changed = rewatch = true;
          continue;
        }
        if (e->mask & IN_IGNORED) {
          // The kernel dropped a watch: its directory was removed (or the
          // file system unmounted). Forget it; AddWatches makes it again
          // once the directory is back.
          for (int& wd : sub_wds_)
            if (wd == e->wd) wd = -1;
          if (dir_wd_ == e->wd) dir_wd_ = -1;
          if (parent_wd_ == e->wd) parent_wd_ = -1;
          changed = rewatch = true;
          continue;
        }
        if (e->wd == parent_wd_ || e->wd == dir_wd_) {
          // The store's directory, or one of its subdirectories, appeared
          // (hms-api recreating a removed store), or went: watch what is
          // there now, and read the store again.
          if (e->wd == parent_wd_ && (e->len == 0 || dir_base_ != e->name)) continue;
          changed = rewatch = true;
          continue;
        }
        // Writers' temp files start with '.': their close and their rename
        // away change nothing a reader sees; the rename into place does.
        if (e->len == 0 || e->name[0] != '.') changed = true;
      }
    }
    if (rewatch) AddWatches();
    return changed;
  }

  bool Rewatch() override {
    if (watch_fd_ < 0 || Watching()) return false;
    AddWatches();
    return Watching();
  }

  std::string Uri() const override { return "file:" + dir_; }

 private:
  std::string LockPath() const { return dir_ + "/.lock"; }

  struct LeaseFile {
    std::string path, service, address;
    int64_t ttl_s = 0;
    int64_t expires_ms = 0;  // wall clock: last renewal (mtime) + TTL
  };

  int64_t NowMs() const { return clock_->NowMs(); }

  // Sets a lease file's mtime, its last renewal, to the store clock's now
  // rather than the kernel's, so expiry and renewal read one clock.
  bool Touch(const std::string& path) const {
    const int64_t now = NowMs();
    const timespec t{static_cast<time_t>(now / 1000), static_cast<long>(now % 1000) * 1'000'000};
    const timespec times[2] = {t, t};
    return utimensat(AT_FDCWD, path.c_str(), times, 0) == 0;
  }

  static Result<int64_t> UnknownLease(int64_t lease) {
    return UserError("lease " + std::to_string(lease) + " has expired or is unknown");
  }

  // A leased file's TTL (its first line) and expiry (mtime + TTL); nullopt
  // when it is gone or holds no TTL.
  std::optional<LeaseFile> ReadLeaseTimes(const std::string& path) const {
    std::string text;
    struct stat st;
    Result<bool> got = ReadWhole(path, &text);
    if (!got.ok() || !got.value() || stat(path.c_str(), &st) != 0) return std::nullopt;
    LeaseFile l;
    l.path = path;
    l.ttl_s = std::atoll(text.c_str());
    if (l.ttl_s < 1) return std::nullopt;
    l.expires_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000 +
                   l.ttl_s * 1000;
    return l;
  }

  // A lease file as written by AddEndpointWithLease; nullopt when it is gone
  // or not one of ours.
  static std::optional<LeaseFile> ReadLease(const std::string& path) {
    const size_t slash = path.rfind('/');
    const std::string base = path.substr(slash + 1);
    const size_t at = base.find('@');
    if (at == std::string::npos) return std::nullopt;
    LeaseFile l;
    l.path = path;
    l.service = base.substr(0, at);
    l.address = base.substr(at + 1);
    if (l.address.starts_with(kMtlsFilePrefix)) {  // see LeaseFileAddress
      l.address = std::string(config::kMtlsScheme) + l.address.substr(kMtlsFilePrefix.size());
    }
    std::string text;
    struct stat st;
    Result<bool> got = ReadWhole(path, &text);
    if (!got.ok() || !got.value() || stat(path.c_str(), &st) != 0) return std::nullopt;
    l.ttl_s = std::atoll(text.c_str());
    if (l.ttl_s < 1 || !config::IsValidServiceName(l.service) || !config::ParseEndpoint(l.address)) {
      return std::nullopt;
    }
    l.expires_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000 +
                   l.ttl_s * 1000;
    return l;
  }

  std::vector<LeaseFile> ReadLeases() const {
    std::vector<LeaseFile> out;
    DIR* d = opendir(leases_.c_str());
    if (d == nullptr) return out;
    while (const dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      if (std::optional<LeaseFile> l = ReadLease(leases_ + "/" + e->d_name)) out.push_back(*l);
    }
    closedir(d);
    std::sort(out.begin(), out.end(),
              [](const LeaseFile& a, const LeaseFile& b) { return a.path < b.path; });
    return out;
  }

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
    if (!config::ParseEndpoint(address)) {
      return UserError("'" + address + "' is not [mtls://]host:port with a port 1..65535");
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

  // Whether every directory a reader depends on is watched.
  bool Watching() const {
    return dir_wd_ >= 0 && std::all_of(std::begin(sub_wds_), std::end(sub_wds_),
                                       [](int wd) { return wd >= 0; });
  }

  // Watches whatever of the store's directories exist now. The parent's
  // watch sees the store's directory come back after `rm -rf` (a removed
  // directory's watches are gone for good, and a new directory of the same
  // name is another inode); the store's own sees its subdirectories come
  // back. Adding a watch that exists only returns its descriptor again.
  void AddWatches() {
    const uint32_t files = IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM;
    const uint32_t dirs = IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR;
    if (parent_wd_ < 0) parent_wd_ = inotify_add_watch(watch_fd_, parent_.c_str(), dirs);
    dir_wd_ = inotify_add_watch(watch_fd_, dir_.c_str(), dirs);
    const std::string* subs[] = {&services_, &endpoints_, &leases_};
    for (size_t i = 0; i < 3; ++i) {
      sub_wds_[i] = inotify_add_watch(watch_fd_, subs[i]->c_str(), files | IN_ONLYDIR);
    }
  }

  const StoreClock* clock_;
  std::string dir_, services_, endpoints_, leases_, members_;
  std::string parent_, dir_base_;  // the directory that holds the store, and the store's name in it
  int watch_fd_ = -1;
  int parent_wd_ = -1, dir_wd_ = -1;
  int sub_wds_[3] = {-1, -1, -1};  // services, endpoints, leases
  int64_t last_lease_ = 0;
  std::map<int64_t, std::string> held_;  // lease id → its file, for this object's leases
  int64_t next_expiry_at_ms_ = -1;  // wall clock: the first live lease the last List saw expires
  // What the last List read of each service (no endpoints), by name, with
  // its stamp.
  std::map<std::string, StoredService> texts_;
};

}  // namespace

const StoreClock& SystemStoreClock() {
  struct Realtime final : StoreClock {
    int64_t NowMs() const override { return core::UnixMs(); }
  };
  static const Realtime clock;
  return clock;
}

Result<std::unique_ptr<Store>> OpenFileStore(const std::string& dir, const StoreClock& clock) {
  if (dir.empty()) return UserError("file store needs a directory (file:DIR)");
  std::string clean = dir;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  auto store = std::make_unique<FileStore>(clean, clock);
  Result<bool> ok = store->Init();
  if (!ok) return ok.error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace hms::control
