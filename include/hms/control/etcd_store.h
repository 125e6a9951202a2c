// The etcd store (DESIGN §2): `etcd://HOST:PORT[,HOST:PORT...]`, a real etcd
// cluster through its v3 JSON API (the gRPC gateway), spoken with the
// project's own HTTP/1.1 code.
//
// Layout, every key under /hms/:
//   /hms/services/NAME              the route file text as registered
//   /hms/sources/NAME               the file name it was registered from
//   /hms/endpoints/NAME/HOST:PORT   "" (static: no lease; sidecars: a lease
//                                   they keep alive, so the key goes when they die)
//
// Register is one txn (all or nothing) when it fits etcd's default request
// limits (128 operations, 1.5 MiB: up to 64 services); a larger one is
// written as several txns in order, each service whole in one of them, each
// compared against the revision the previous one wrote (docs/config.md
// "Scale"). Deregister, AddEndpoint and
// RemoveEndpoint are txns whose compares carry the "not registered" / "already
// there" checks, so concurrent writers from many machines lose nothing. List
// is one range read (one revision, a consistent view).
//
// WatchFd() starts a background thread that holds an etcd watch on /hms/ and
// makes an eventfd readable on every change. The fd also becomes readable
// each time the watch is (re)established, so that changes made before it
// existed, or while etcd was away, reach a reader that re-lists. When etcd
// goes away the thread retries with backoff (100 ms doubling to 5 s) and
// resumes from the last revision seen; a silent stream is probed after 5 s.
// healthy() and last_error() report the state for /healthz ("etcd
// unreachable, serving last good config"). Members of the URI are tried in
// order on connect failure.
//
// Threads: the Store calls belong to one thread (hms-api, or the gateway's
// control thread); healthy() and last_error() may be called from any thread.
// Every socket operation is bounded (2 s by default), so a dead etcd gives
// errors, never hangs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "hms/common/result.h"
#include "hms/control/store.h"

namespace hms::control {

class EtcdStore : public Store {
 public:
  // Leases are etcd leases: an expired one deletes its key, and the watch
  // tells every reader. healthy() is false after a failed call or while the
  // watch is disconnected, true again after the next success (see Store).
};

struct EtcdOptions {
  int timeout_ms = 2000;  // each socket operation of one request
};

// `uri` is "etcd://HOST:PORT[,HOST:PORT...]" (also "etcd:HOST:PORT"). Does not
// contact etcd: the first call does.
Result<std::unique_ptr<EtcdStore>> OpenEtcdStore(const std::string& uri, EtcdOptions options = {});

}  // namespace hms::control
