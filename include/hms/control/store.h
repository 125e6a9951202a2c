// The store: where hms-api writes services and every data plane reads them
// (DESIGN §2). Two implementations: the embedded file store (file:DIR) and etcd
// (etcd://HOST:PORT[,HOST:PORT...], control/etcd_store.h). Used by hms-api and by the gateway's
// control thread only; calls block and may allocate.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hms/common/result.h"
#include "hms/config/config.h"

namespace hms::control {

// The wall clock a store judges leases by (the file store: a lease file's
// mtime plus its TTL against "now"). Real stores read CLOCK_REALTIME, since
// the processes sharing a store directory share no other clock; tests hand
// a store a clock they advance, so a lease expires without sleeping. Any
// thread may call NowMs(); the clock outlives every store given it.
class StoreClock {
 public:
  virtual ~StoreClock() = default;
  virtual int64_t NowMs() const = 0;  // milliseconds since the Unix epoch
};

// CLOCK_REALTIME; what every store uses unless told otherwise.
const StoreClock& SystemStoreClock();

struct StoredService {
  std::string name;
  std::string text;    // the route file as registered (YAML or JSON)
  std::string source;  // the file name it was registered from, for file:line messages
  std::vector<std::string> endpoints;  // "host:port": `hms-api endpoints add` and leased ones
  // Changes whenever `text` or `source` does, so a reader may keep what it
  // made of the text while the stamp stays (a gateway's reload re-parses
  // only the services whose stamp moved): the file store's
  // "inode:mtime_ns:size" of NAME.yaml (every write is a rename of a new
  // file), etcd's mod_revision of the service's key. "" when unknown.
  std::string stamp = {};
  bool operator==(const StoredService&) const = default;
};

class Store {
 public:
  // Judges a registration against the store's contents at the moment of the
  // write (hms-api's trial compile: no route may clash with another
  // service's). An error stops the registration.
  using Check = std::function<Result<bool>(const std::vector<StoredService>& current)>;

  virtual ~Store() = default;
  // Writes every service or none. Each entry: name, text, source. With a
  // `check`, it runs on the store's contents and the write happens only if
  // nothing changed in between (file store: both under the exclusive lock;
  // etcd: a txn that compares the revision that was read, retried when
  // another writer came first), so concurrent registrations of clashing
  // routes cannot both land.
  virtual Result<bool> Register(const std::vector<StoredService>& services,
                                const Check& check = nullptr) = 0;
  virtual Result<bool> Deregister(const std::string& name) = 0;  // error if absent
  virtual Result<std::vector<StoredService>> List() = 0;         // sorted by name
  // AddEndpoint: an error if the service is not registered; false (no change)
  // if it already had the endpoint. RemoveEndpoint: an error if absent.
  virtual Result<bool> AddEndpoint(const std::string& service, const std::string& address) = 0;
  virtual Result<bool> RemoveEndpoint(const std::string& service, const std::string& address) = 0;
  // Endpoints held by a lease (sidecars register themselves this way):
  // AddEndpointWithLease puts `address` under a new lease of `ttl_s` seconds
  // and returns its id; the holder renews it with KeepAlive at least every
  // ttl_s / 3. A lease not renewed within its TTL expires and its endpoint
  // leaves the service (a SIGKILLed sidecar disappears on its own).
  // AddEndpointWithLease: an error if the service is not registered.
  // KeepAlive returns the TTL in seconds; an error when the lease has expired
  // or is unknown (its endpoint is gone: add it again). RevokeLease removes
  // the endpoint at once. Lease ids belong to the Store object that made them.
  virtual Result<int64_t> AddEndpointWithLease(const std::string& service,
                                               const std::string& address, int64_t ttl_s) = 0;
  virtual Result<int64_t> KeepAlive(int64_t lease) = 0;
  virtual Result<bool> RevokeLease(int64_t lease) = 0;
  // Fleet membership (docs/config.md, "The fleet"): each running gateway and
  // sidecar keeps a record of itself, one JSON object, under a lease.
  // PutMember writes the record of `id` under a new lease of `ttl_s`
  // seconds (replacing an earlier record of that id, whoever wrote it) and
  // returns the lease, which KeepAlive renews and RevokeLease ends, as an
  // endpoint's. ListMembers returns the live records, sorted by id. Member
  // records are kept apart from services: no gateway reloads for them.
  virtual Result<int64_t> PutMember(const std::string& id, const std::string& record,
                                    int64_t ttl_s);
  virtual Result<std::vector<std::string>> ListMembers();
  // Milliseconds from now until the first leased endpoint that the last
  // List() saw alive expires (0 once past), when nothing tells a watcher about it (the file store:
  // an expiry is the absence of a write); the watcher lists again then. -1
  // when there is none, or when the store reports expiries through WatchFd.
  virtual int64_t NextExpiryMs() const { return -1; }
  // A descriptor that becomes readable when the store changes (inotify for the
  // file store); the caller then calls DrainWatch() and, when it says the
  // store changed, List(). -1 if none.
  virtual int WatchFd() = 0;
  // Consumes what made WatchFd readable; false when none of it changes what
  // List() returns (the file store's writers' temp files).
  virtual bool DrainWatch() = 0;
  // Watches what WatchFd could not watch when it was last set up (the file
  // store's directory, removed and not yet back); true when that changed, so
  // the caller reads the store again. The caller calls it about once a
  // second: the fallback for when no event can announce the return (the
  // store's parent directory went too).
  virtual bool Rewatch() { return false; }
  virtual std::string Uri() const = 0;
  // Whether the store answers now, and why it last failed ("" when it never
  // did). The file store is always healthy; etcd's goes false while etcd is
  // unreachable. Any thread may call these.
  virtual bool healthy() const { return true; }
  virtual std::string last_error() const { return {}; }
};

// What a gateway compiled from, in a form every member of a fleet computes
// alike from the same store contents (a hash of the services' names, texts
// and endpoints, 16 hex digits): `hms-api fleet` compares each member's with
// the store's own to flag a member that lags.
std::string StoreFingerprint(const std::vector<StoredService>& services);

// The checks every store makes before writing a registration: valid and
// distinct service names, non-empty route files, at least one service.
Result<bool> CheckRegistration(const std::vector<StoredService>& services);

// A stored service as every reader of the store loads it (the gateway's
// reloads and each hms-api command that reads services): its text parsed
// (errors name source:line), and its `service:` the name it is stored under
// (published under another name it would be a service `hms-api list` does
// not show, and the file's own name would serve nothing). The endpoints added
// through the store are left to the caller (WithStoredEndpoints): a gateway
// keeps a service's last good file and adds today's endpoints to it.
Result<config::ServiceConfig> LoadStoredService(const StoredService& s);

// What LoadStoredService makes of `parsed`, the text of `s` parsed (under
// StoredSource(s)): an error when its `service:` is not the name it is
// stored under.
Result<config::ServiceConfig> CheckStoredName(const StoredService& s,
                                              Result<config::ServiceConfig> parsed);
// The name a stored service's errors go by: the file it was registered
// from, else its name.
std::string StoredSource(const StoredService& s);
// LoadStoredService of each, in order, parsed on several threads when there
// are many (config::ParseServiceConfigs).
std::vector<Result<config::ServiceConfig>> LoadStoredServicesEach(
    const std::vector<const StoredService*>& stored);

// `c` with the endpoints added through the store after the file's own.
config::ServiceConfig WithStoredEndpoints(config::ServiceConfig c, const StoredService& s);

// Every stored service that loads, with its stored endpoints, in the store's
// order: what a gateway that has no earlier version of them serves.
// `problems` gets "NAME: why" for each one that does not load.
std::vector<config::ServiceConfig> LoadStoredServices(const std::vector<StoredService>& stored,
                                                      std::vector<std::string>* problems);

// The default store URI: $HMS_STORE if set, else "file:/var/lib/hms" when
// that is writable (root), else "file:$HOME/.local/state/hms".
std::string DefaultStoreUri();

// "file:DIR" (created if missing) or "etcd://HOST:PORT[,HOST:PORT...]" (not
// contacted until the first call). Other schemes: an error naming the scheme.
Result<std::unique_ptr<Store>> OpenStore(const std::string& uri);

// The file store on DIR (created if missing). Layout: services/NAME.yaml (the
// registered text verbatim), services/NAME.source (the file it came from),
// endpoints/NAME (one host:port per line), leases/NAME@HOST:PORT (a leased
// endpoint: the file holds its TTL in seconds, its mtime is the last renewal;
// expired files are ignored by readers and removed by the next lease write),
// members/ID (a fleet member's record: its TTL on the first line, the JSON
// record on the second; leased like an endpoint, and not watched),
// .lock (flock: exclusive around
// every read-modify-write, shared around List). Every file is replaced
// atomically (temp file, fsync, rename, fsync of the directory), so a reader
// never sees half a file and a crash leaves the old or the new version.
// Leases are written and judged by `clock` (a lease file's mtime is set from
// it), which must outlive the store. etcd leases expire on etcd's own clock:
// the etcd store has none to take.
Result<std::unique_ptr<Store>> OpenFileStore(const std::string& dir,
                                             const StoreClock& clock = SystemStoreClock());

}  // namespace hms::control
