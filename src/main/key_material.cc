#include "src/main/key_material.h"

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <iterator>

#include "hms/tls/session.h"

namespace hms::main {

KeyMaterial::Stamp KeyMaterial::StampOf(const std::string& path) {
  Stamp s;
  s.path = path;
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  }
  return s;
}

// Everything the material depends on besides the files' contents.
std::string KeyMaterial::Describe(const config::GatewayConfig& c) {
  std::string d = c.role + "\n";
  for (const config::ListenerConfig& l : c.listeners) {
    d += "listener";
    if (l.tls) {
      d += " " + l.tls->cert + " " + l.tls->key + " " + l.tls->ca + (l.tls->client_auth ? " auth" : "");
      for (const config::CertPair& p : l.tls->sni_certs) d += " sni " + p.cert + " " + p.key;
    }
    d += "\n";
  }
  if (c.mtls) d += "mtls " + c.mtls->cert + " " + c.mtls->key + " " + c.mtls->ca + "\n";
  if (c.jwt) d += "jwt " + c.jwt->jwks + " " + c.jwt->hs256_secret_file + "\n";
  d += "tickets " + c.tls_ticket_keys + "\n";
  return d;
}

bool KeyMaterial::Changed() const {
  for (const Stamp& s : stamps_)
    if (!(StampOf(s.path) == s)) return true;
  return false;
}

bool KeyMaterial::WantsKeyReload(int64_t now_s) {
  if (!unknown_kid_.load(std::memory_order_relaxed)) return false;
  if (now_s - keys_read_s_ < kUnknownKidIntervalS) return false;
  unknown_kid_.store(false, std::memory_order_relaxed);
  force_ = true;
  return true;
}

// The fleet's ticket secrets from tls.ticket_keys, or the process's own.
Result<bool> KeyMaterial::UseTicketKeys(const config::GatewayConfig& c,
                                        const std::function<void(const std::string&)>& read) {
  if (c.tls_ticket_keys.empty()) {
    tls::UseProcessTicketKeys();
    return true;
  }
  read(c.tls_ticket_keys);
  std::ifstream in(c.tls_ticket_keys, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (auto t = tls::UseTicketKeys(text, c.tls_ticket_keys); !t.ok()) {
    return ConfigError(config::WhereIs(c, "tls.ticket_keys") + ": tls.ticket_keys: " +
                       t.error().message);
  }
  return true;
}

Result<bool> KeyMaterial::Attach(const config::GatewayConfig& c, config::Snapshot* s) {
  const std::string described = Describe(c);
  if (described != described_ || force_ || Changed()) {
    force_ = false;
    keys_read_s_ = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
    std::vector<Stamp> stamps;
    // A file that fails to load is not tried again until a file changes
    // (the snapshot in use keeps the material it has).
    auto fail = [&](Error e) -> Result<bool> {
      if (described == described_) stamps_ = stamps;
      return e;
    };
    auto read = [&stamps](const std::string& path) {
      if (!path.empty()) stamps.push_back(StampOf(path));
    };
    std::vector<std::shared_ptr<const tls::ServerContext>> listener_tls(c.listeners.size());
    for (size_t i = 0; i < c.listeners.size(); ++i) {
      const config::ListenerConfig& l = c.listeners[i];
      tls::ServerOptions o;
      if (l.tls) {
        o.certs.push_back({l.tls->cert, l.tls->key});
        for (const config::CertPair& p : l.tls->sni_certs) o.certs.push_back({p.cert, p.key});
        o.ca = l.tls->ca;
        o.client_auth = l.tls->client_auth;
      } else if (c.role == "sidecar" && c.mtls) {
        // A sidecar with a mesh identity takes only mTLS callers inbound
        // (the egress listener, its own service's, stays plain loopback).
        o.certs.push_back({c.mtls->cert, c.mtls->key});
        o.ca = c.mtls->ca;
        o.client_auth = true;
      } else {
        continue;
      }
      for (const tls::CertFiles& f : o.certs) {
        read(f.cert);
        read(f.key);
      }
      if (o.client_auth) read(o.ca);
      auto ctx = tls::ServerContext::Make(o);
      if (!ctx) {
        const std::string key = "listeners[" + std::to_string(i) + "].tls";
        return fail(ConfigError(config::WhereIs(c, key) + ": " + key + ": " + ctx.error().message));
      }
      listener_tls[i] = *ctx;
    }
    std::shared_ptr<const tls::ClientContext> mesh_client;
    if (c.mtls) {
      read(c.mtls->cert);
      read(c.mtls->key);
      read(c.mtls->ca);
      auto ctx = tls::ClientContext::Make({c.mtls->cert, c.mtls->key, c.mtls->ca});
      if (!ctx) {
        return fail(ConfigError(config::WhereIs(c, "mtls") + ": mtls: " + ctx.error().message));
      }
      mesh_client = *ctx;
    }
    std::shared_ptr<const auth::KeySet> jwt_keys;
    if (c.jwt) {
      const std::string& file = !c.jwt->jwks.empty() ? c.jwt->jwks : c.jwt->hs256_secret_file;
      read(file);
      auto keys = !c.jwt->jwks.empty() ? auth::KeySet::FromJwksFile(file)
                                       : auth::KeySet::FromHs256SecretFile(file);
      if (!keys.ok()) {
        const std::string key = !c.jwt->jwks.empty() ? "jwt.jwks" : "jwt.hs256_secret_file";
        return fail(ConfigError(config::WhereIs(c, key) + ": " + key + ": " + keys.error().message));
      }
      if (log_) {
        for (const std::string& note : keys->skipped()) log_(note);
      }
      jwt_keys = std::make_shared<const auth::KeySet>(std::move(*keys));
    }
    if (auto t = UseTicketKeys(c, read); !t.ok()) return fail(t.error());
    described_ = described;
    stamps_ = std::move(stamps);
    listener_tls_ = std::move(listener_tls);
    mesh_client_ = std::move(mesh_client);
    jwt_keys_ = std::move(jwt_keys);
  }
  s->listener_tls = listener_tls_;
  s->mesh_client = mesh_client_;
  s->jwt_keys = jwt_keys_;
  s->jwt_unknown_kid = &unknown_kid_;
  if (c.jwt) {
    s->jwt_policy.issuer = c.jwt->issuer;
    s->jwt_policy.audience = c.jwt->audience;
    s->jwt_policy.leeway_s = c.jwt->leeway_ms / 1000;
  }
  return true;
}

}  // namespace hms::main
