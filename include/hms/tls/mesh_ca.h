// The mesh CA (DESIGN §5 zero trust): `hms-api certs init` and `certs issue`.
//
// The CA is an ECDSA P-256 key and a self-signed certificate (10 years,
// basicConstraints CA, keyCertSign|cRLSign). An identity is a P-256 key and a
// certificate signed by the CA whose only subjectAltName is the URI
// spiffe://TRUST_DOMAIN/svc/NAME (1 year, digitalSignature|keyEncipherment,
// serverAuth and clientAuth), which is what an mTLS peer is checked against.
// Everything is made with wolfCrypt. Files are PEM; keys are written 0600.
//
// Layout of the directory: ca.pem, ca.key, and NAME.pem, NAME.key per identity.
// Control-plane code (hms-api): allocates, blocks on files.
#pragma once

#include <string>
#include <string_view>

#include "hms/common/result.h"

namespace hms::tls {

struct IssuedFiles {
  std::string cert, key;  // paths written
  std::string identity;   // spiffe://... (empty for the CA)
};

// Creates DIR (0700) if needed and the CA in it. Refuses to overwrite an
// existing CA unless `force` (a new CA invalidates every identity issued).
Result<IssuedFiles> InitMeshCa(const std::string& dir, const std::string& trust_domain,
                               bool force = false);

// Issues NAME's key and certificate, signed by the CA in DIR. NAME is a
// service name (the identity's last segment); an existing identity is
// replaced (rotation).
Result<IssuedFiles> IssueIdentity(const std::string& dir, const std::string& name,
                                  const std::string& trust_domain);

// Issues an edge server certificate for `dns_name` (its only subjectAltName,
// a dNSName; "*.example.org" for a wildcard), signed by the CA in DIR:
// DIR/DNS_NAME.pem and .key, 1 year, extended key usage serverAuth only. For
// a TLS listener that clients reach by name (https://gateway.local) and
// that trust the mesh CA: a development or internal edge, not a public one.
Result<IssuedFiles> IssueServerCert(const std::string& dir, const std::string& dns_name,
                                    const std::string& trust_domain);

// Whether `name` is a DNS host name a certificate may carry: lower-case
// LDH labels of 1-63, at most 253 in all, optionally led by one "*.".
bool IsDnsName(std::string_view name);

// "spiffe://TRUST_DOMAIN/svc/NAME".
std::string SpiffeId(const std::string& trust_domain, const std::string& name);

}  // namespace hms::tls
