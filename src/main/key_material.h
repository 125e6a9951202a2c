// The key material a snapshot carries (docs/tls.md): each TLS listener's
// certificates, this proxy's mesh identity, the JWT keys and the session
// ticket secrets (tls.ticket_keys). Made by the
// control thread from files, reused while those files stay the same, and
// made again when one changes (size, mtime or inode), so certificates and
// JWKS rotate without a restart and without dropping a connection: sessions
// already made keep the context they started with.
// Control thread only.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hms/auth/key_set.h"
#include "hms/common/result.h"
#include "hms/config/config.h"
#include "hms/config/snapshot.h"

namespace hms::main {

class KeyMaterial {
 public:
  // Where notes go that are not errors (JWKS keys skipped, and why); each
  // is said once per read of its file.
  void set_log(std::function<void(const std::string&)> log) { log_ = std::move(log); }

  // Gives the snapshot its TLS contexts and JWT keys, made from the config's
  // files (or the last ones, when neither the files nor their names changed).
  // The error names the file and why; the snapshot is then not to be used.
  Result<bool> Attach(const config::GatewayConfig& c, config::Snapshot* s);
  // A file the last Attach read has changed since.
  bool Changed() const;
  // A core saw a JWT with an unknown kid, and the key file was last read
  // at least kUnknownKidIntervalS ago: the next Attach reads it again
  // (a JWKS may gain a key without its file's stamp changing, as when it is
  // rewritten within one mtime tick).
  static constexpr int64_t kUnknownKidIntervalS = 5;
  bool WantsKeyReload(int64_t now_s);

 private:
  struct Stamp {
    std::string path;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    int64_t mtime_ns = -1;
    bool operator==(const Stamp&) const = default;
  };
  static Stamp StampOf(const std::string& path);
  static Result<bool> UseTicketKeys(const config::GatewayConfig& c,
                                    const std::function<void(const std::string&)>& read);
  static std::string Describe(const config::GatewayConfig& c);

  std::function<void(const std::string&)> log_;
  std::atomic<bool> unknown_kid_{false};  // cores write it through Snapshot::jwt_unknown_kid
  int64_t keys_read_s_ = 0;               // when the key file was last read (steady seconds)
  bool force_ = false;                    // read everything again at the next Attach
  std::string described_;     // the file names and options the material was made from
  std::vector<Stamp> stamps_;  // of every file read
  std::vector<std::shared_ptr<const tls::ServerContext>> listener_tls_;
  std::shared_ptr<const tls::ClientContext> mesh_client_;
  std::shared_ptr<const auth::KeySet> jwt_keys_;
};

}  // namespace hms::main
