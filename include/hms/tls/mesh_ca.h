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

// "spiffe://TRUST_DOMAIN/svc/NAME".
std::string SpiffeId(const std::string& trust_domain, const std::string& name);

}  // namespace hms::tls
