// `hms-api certs init|issue`: the mesh CA and service identities (DESIGN §2,
// include/hms/tls/mesh_ca.h).
#include "src/main/certs_command.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "hms/config/config.h"
#include "hms/tls/mesh_ca.h"

namespace hms {
namespace {

constexpr char kCertsHelp[] =
    "usage: hms-api certs init [--dir DIR] [--trust-domain DOMAIN] [--force]\n"
    "       hms-api certs issue NAME [--dir DIR] [--trust-domain DOMAIN]\n"
    "       hms-api certs issue --dns HOST [--dir DIR]\n"
    "\n"
    "init   creates the mesh CA: DIR/ca.pem (certificate, 10 years) and DIR/ca.key\n"
    "       (ECDSA P-256, mode 0600). It refuses to replace an existing CA without\n"
    "       --force: every identity issued by the old one would stop verifying.\n"
    "issue  creates NAME's identity, signed by the CA: DIR/NAME.pem and DIR/NAME.key\n"
    "       (1 year, ECDSA P-256, mode 0600), whose only subjectAltName is\n"
    "       spiffe://DOMAIN/svc/NAME, the identity allow_from lists name. Issuing\n"
    "       again replaces it (rotation).\n"
    "issue --dns HOST\n"
    "       creates an edge server certificate for HOST (e.g. gateway.local), signed\n"
    "       by the CA: DIR/HOST.pem and DIR/HOST.key (1 year, ECDSA P-256, mode\n"
    "       0600), whose only subjectAltName is DNS:HOST; for a TLS listener that\n"
    "       clients reach by that name and that trust DIR/ca.pem (curl --cacert).\n"
    "\n"
    "  --dir DIR             where the files live (default: $HMS_CERTS, else ./certs)\n"
    "  --trust-domain DOMAIN the mesh's trust domain (default: --mesh FILE's\n"
    "                        trust_domain, else hms.local)\n"
    "  --mesh FILE           mesh-config.yaml to take the trust domain from\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "hms-api certs: %s\n", message.c_str());
  return 1;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "hms-api certs: %s\n\n%s", message.c_str(), kCertsHelp);
  return 2;
}

}  // namespace

int CertsCommand(const std::vector<std::string>& args) {
  if (args.empty()) return Usage("init or issue?");
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(kCertsHelp, stdout);
      return 0;
    }
  }
  const std::string verb = args[0];
  std::string name, dir, trust_domain, mesh, dns;
  bool force = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--force") {
      force = true;
    } else if (a == "--dir" || a == "--trust-domain" || a == "--mesh" || a == "--dns") {
      if (i + 1 >= args.size()) return Usage(a + " needs a value");
      (a == "--dir" ? dir : a == "--mesh" ? mesh : a == "--dns" ? dns : trust_domain) = args[++i];
    } else if (!a.starts_with("-") && verb == "issue" && name.empty()) {
      name = a;
    } else {
      return Usage("unexpected '" + a + "'");
    }
  }
  if (dir.empty()) {
    const char* env = std::getenv("HMS_CERTS");
    dir = env != nullptr && *env != '\0' ? env : "certs";
  }
  if (trust_domain.empty()) {
    config::MeshConfig defaults;
    trust_domain = defaults.trust_domain;
    if (!mesh.empty()) {
      Result<config::MeshConfig> m = config::LoadMeshConfig(mesh);
      if (!m) return Fail(m.error().message);
      trust_domain = m->trust_domain;
    }
  }
  if (verb == "init") {
    if (force && !name.empty()) return Usage("init takes no NAME");
    if (!dns.empty()) return Usage("--dns is for issue");
    Result<tls::IssuedFiles> f = tls::InitMeshCa(dir, trust_domain, force);
    if (!f) return Fail(f.error().message);
    std::printf("✓ mesh CA for %s: %s, %s\n", trust_domain.c_str(), f->cert.c_str(), f->key.c_str());
    return 0;
  }
  if (verb == "issue") {
    if (force) return Usage("--force is for init");
    if (!dns.empty() && !name.empty()) return Usage("issue takes a NAME or --dns HOST, not both");
    if (!dns.empty()) {
      Result<tls::IssuedFiles> f = tls::IssueServerCert(dir, dns, trust_domain);
      if (!f) return Fail(f.error().message);
      std::printf("✓ %s: %s, %s\n", f->identity.c_str(), f->cert.c_str(), f->key.c_str());
      return 0;
    }
    if (name.empty()) return Usage("issue needs a NAME (the service's name) or --dns HOST");
    Result<tls::IssuedFiles> f = tls::IssueIdentity(dir, name, trust_domain);
    if (!f) return Fail(f.error().message);
    std::printf("✓ %s: %s, %s\n", f->identity.c_str(), f->cert.c_str(), f->key.c_str());
    return 0;
  }
  return Usage("unknown certs command '" + verb + "' (init or issue)");
}

}  // namespace hms
