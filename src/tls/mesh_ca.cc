#include "hms/tls/mesh_ca.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "hms/config/config.h"

namespace hms::tls {
namespace {

constexpr int kCaDays = 3650;
constexpr int kIdentityDays = 365;
constexpr size_t kDerMax = 4096;

Error CryptoError(const std::string& what, int rc) {
  return Error{what + ": " + wc_GetErrorString(rc), Side::kInternal, false};
}

Error FileError(const std::string& what, const std::string& path) {
  return Error{what + " " + path + ": " + std::strerror(errno), Side::kConfig, false};
}

// Writes `text` to `path` atomically (temp file, rename) with `mode`.
Result<bool> WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return FileError("cannot create", tmp);
  fchmod(fd, mode);  // whatever the umask
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = fsync(fd) == 0 && ok;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return FileError("cannot write", path);
  }
  return true;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read " + path + " (run `hms-api certs init` first?)", Side::kConfig, false};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::string> ToPem(const byte* der, int der_sz, int type) {
  std::vector<byte> pem(static_cast<size_t>(der_sz) * 2 + 256);
  int n = wc_DerToPem(der, static_cast<word32>(der_sz), pem.data(), static_cast<word32>(pem.size()), type);
  if (n < 0) return CryptoError("PEM encoding", n);
  return std::string(reinterpret_cast<const char*>(pem.data()), static_cast<size_t>(n));
}

// RAII for wolfCrypt's key and generator.
struct Rng {
  WC_RNG rng;
  int rc;
  Rng() { rc = wc_InitRng(&rng); }
  ~Rng() {
    if (rc == 0) wc_FreeRng(&rng);
  }
};
struct EccKey {
  ecc_key key;
  EccKey() { wc_ecc_init(&key); }
  ~EccKey() { wc_ecc_free(&key); }
};

// The key as "EC PRIVATE KEY" PEM.
Result<std::string> KeyPem(ecc_key* key) {
  byte der[kDerMax];
  int n = wc_EccKeyToDer(key, der, sizeof der);
  if (n < 0) return CryptoError("encoding the key", n);
  return ToPem(der, n, ECC_PRIVATEKEY_TYPE);
}

// The subjectAltName value: GeneralNames with one name of context tag `tag`
// (0x86 uniformResourceIdentifier, 0x82 dNSName; both IA5String, IMPLICIT).
std::vector<byte> AltNames(byte tag, const std::string& value) {
  std::vector<byte> name = {tag};
  auto put_len = [](std::vector<byte>* out, size_t n) {
    if (n < 128) {
      out->push_back(static_cast<byte>(n));
    } else {
      out->push_back(0x82);
      out->push_back(static_cast<byte>(n >> 8));
      out->push_back(static_cast<byte>(n));
    }
  };
  put_len(&name, value.size());
  for (char c : value) name.push_back(static_cast<byte>(c));
  std::vector<byte> seq = {0x30};
  put_len(&seq, name.size());
  // Appended byte by byte: GCC 12's range insert here draws a false
  // -Wstringop-overflow once inlined under LTO.
  for (byte b : name) seq.push_back(b);
  return seq;
}

void SetName(CertName* n, const std::string& common_name, const std::string& trust_domain) {
  std::strncpy(n->commonName, common_name.c_str(), CTC_NAME_SIZE - 1);
  std::strncpy(n->org, "HMS-API mesh", CTC_NAME_SIZE - 1);
  std::strncpy(n->unit, trust_domain.c_str(), CTC_NAME_SIZE - 1);
}

Result<bool> CheckTrustDomain(const std::string& td) {
  bool ok = !td.empty() && td.size() <= 255;
  for (char c : td) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_');
  }
  if (!ok) {
    return Error{"trust domain '" + td + "' must be lower-case letters, digits, '.', '-', '_'",
                 Side::kConfig, false};
  }
  return true;
}

// Makes `cert` for `key`, signs it with `signer` (the key itself for the
// self-signed CA) and writes the key (0600) and the certificate as PEM.
Result<bool> SignAndWrite(Cert* cert, ecc_key* key, ecc_key* signer, WC_RNG* rng,
                          const IssuedFiles& out) {
  byte der[kDerMax];
  int rc = wc_MakeCert(cert, der, sizeof der, nullptr, key, rng);
  if (rc < 0) return CryptoError("making " + out.cert, rc);
  rc = wc_SignCert(cert->bodySz, cert->sigType, der, sizeof der, nullptr, signer, rng);
  if (rc < 0) return CryptoError("signing " + out.cert, rc);
  Result<std::string> cert_pem = ToPem(der, rc, CERT_TYPE);
  if (!cert_pem) return cert_pem.error();
  Result<std::string> key_pem = KeyPem(key);
  if (!key_pem) return key_pem.error();
  if (Result<bool> w = WriteFile(out.key, *key_pem, 0600); !w) return w.error();
  return WriteFile(out.cert, *cert_pem, 0644);
}

}  // namespace

std::string SpiffeId(const std::string& trust_domain, const std::string& name) {
  return "spiffe://" + trust_domain + "/svc/" + name;
}

Result<IssuedFiles> InitMeshCa(const std::string& dir, const std::string& trust_domain, bool force) {
  if (Result<bool> ok = CheckTrustDomain(trust_domain); !ok.ok()) return ok.error();
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return FileError("cannot create", dir);
  IssuedFiles out{dir + "/ca.pem", dir + "/ca.key", ""};
  struct stat st;
  if (!force && stat(out.cert.c_str(), &st) == 0) {
    return Error{out.cert + " exists: a new CA invalidates every identity it issued (--force to replace it)",
                 Side::kConfig, false};
  }
  Rng rng;
  if (rng.rc != 0) return CryptoError("random generator", rng.rc);
  EccKey key;
  int rc = wc_ecc_make_key_ex(&rng.rng, 32, &key.key, ECC_SECP256R1);
  if (rc != 0) return CryptoError("making the CA key", rc);
  Cert cert;
  wc_InitCert(&cert);
  SetName(&cert.subject, "HMS-API mesh CA " + trust_domain, trust_domain);
  cert.isCA = 1;
  cert.selfSigned = 1;
  cert.sigType = CTC_SHA256wECDSA;
  cert.daysValid = kCaDays;
  if ((rc = wc_SetKeyUsage(&cert, "keyCertSign,cRLSign")) != 0) return CryptoError("key usage", rc);
  if ((rc = wc_SetSubjectKeyIdFromPublicKey_ex(&cert, ECC_TYPE, &key.key)) != 0) {
    return CryptoError("subject key id", rc);
  }
  if (Result<bool> w = SignAndWrite(&cert, &key.key, &key.key, &rng.rng, out); !w) return w.error();
  return out;
}

namespace {

// The CA of DIR: its certificate as DER (issuer and authority key id of what
// it signs) and its key.
struct LoadedCa {
  byte der[kDerMax];
  int der_sz = 0;
  EccKey key;
};

Result<bool> LoadCa(const std::string& dir, LoadedCa* ca) {
  Result<std::string> ca_pem = ReadFile(dir + "/ca.pem");
  if (!ca_pem) return ca_pem.error();
  Result<std::string> ca_key_pem = ReadFile(dir + "/ca.key");
  if (!ca_key_pem) return ca_key_pem.error();
  ca->der_sz = wc_CertPemToDer(reinterpret_cast<const byte*>(ca_pem->data()),
                               static_cast<int>(ca_pem->size()), ca->der, sizeof ca->der, CERT_TYPE);
  if (ca->der_sz < 0) return CryptoError(dir + "/ca.pem", ca->der_sz);
  byte key_der[kDerMax];
  int key_der_sz = wc_KeyPemToDer(reinterpret_cast<const byte*>(ca_key_pem->data()),
                                  static_cast<int>(ca_key_pem->size()), key_der, sizeof key_der, nullptr);
  if (key_der_sz < 0) return CryptoError(dir + "/ca.key", key_der_sz);
  word32 idx = 0;
  int rc = wc_EccPrivateKeyDecode(key_der, &idx, &ca->key.key, static_cast<word32>(key_der_sz));
  if (rc != 0) return CryptoError(dir + "/ca.key", rc);
  return true;
}

// A leaf signed by DIR's CA: a new P-256 key, `common_name`, the one
// subjectAltName `alt`, extended key usage `eku`; written to `out`.
Result<bool> IssueLeaf(const std::string& dir, const std::string& common_name,
                       const std::string& trust_domain, const std::vector<byte>& alt,
                       const char* eku, const IssuedFiles& out) {
  LoadedCa ca;
  if (Result<bool> ok = LoadCa(dir, &ca); !ok) return ok.error();
  Rng rng;
  if (rng.rc != 0) return CryptoError("random generator", rng.rc);
  EccKey key;
  int rc = wc_ecc_make_key_ex(&rng.rng, 32, &key.key, ECC_SECP256R1);
  if (rc != 0) return CryptoError("making the key", rc);
  Cert cert;
  wc_InitCert(&cert);
  SetName(&cert.subject, common_name, trust_domain);
  cert.isCA = 0;
  cert.sigType = CTC_SHA256wECDSA;
  cert.daysValid = kIdentityDays;
  if ((rc = wc_SetIssuerBuffer(&cert, ca.der, ca.der_sz)) != 0) return CryptoError("issuer", rc);
  if (alt.size() > sizeof cert.altNames) return Error{"subjectAltName too long", Side::kConfig, false};
  std::memcpy(cert.altNames, alt.data(), alt.size());
  cert.altNamesSz = static_cast<int>(alt.size());
  if ((rc = wc_SetKeyUsage(&cert, "digitalSignature,keyEncipherment")) != 0) return CryptoError("key usage", rc);
  if ((rc = wc_SetExtKeyUsage(&cert, eku)) != 0) return CryptoError("extended key usage", rc);
  if ((rc = wc_SetSubjectKeyIdFromPublicKey_ex(&cert, ECC_TYPE, &key.key)) != 0) {
    return CryptoError("subject key id", rc);
  }
  if ((rc = wc_SetAuthKeyIdFromCert(&cert, ca.der, ca.der_sz)) != 0) return CryptoError("authority key id", rc);
  return SignAndWrite(&cert, &key.key, &ca.key.key, &rng.rng, out);
}

}  // namespace

Result<IssuedFiles> IssueIdentity(const std::string& dir, const std::string& name,
                                  const std::string& trust_domain) {
  if (Result<bool> ok = CheckTrustDomain(trust_domain); !ok.ok()) return ok.error();
  if (!config::IsValidServiceName(name)) {
    return Error{"'" + name + "' is not a service name (1-63 of a-z, 0-9 and '-')", Side::kConfig, false};
  }
  const std::string id = SpiffeId(trust_domain, name);
  IssuedFiles out{dir + "/" + name + ".pem", dir + "/" + name + ".key", id};
  Result<bool> ok = IssueLeaf(dir, name, trust_domain, AltNames(0x86, id), "serverAuth,clientAuth", out);
  if (!ok) return ok.error();
  return out;
}

bool IsDnsName(std::string_view name) {
  if (name.starts_with("*.")) name.remove_prefix(2);  // one wildcard label, leftmost (RFC 6125 §6.4.3)
  if (name.empty() || name.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '.') {
      if (label == 0 || name[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && label > 0);
    if (!ok || ++label > 63) return false;
  }
  return label > 0 && name.back() != '-';
}

Result<IssuedFiles> IssueServerCert(const std::string& dir, const std::string& dns_name,
                                    const std::string& trust_domain) {
  if (Result<bool> ok = CheckTrustDomain(trust_domain); !ok.ok()) return ok.error();
  if (!IsDnsName(dns_name)) {
    return Error{"'" + dns_name +
                     "' is not a DNS name (lower-case labels of a-z, 0-9 and '-', dot-separated; "
                     "'*.' may lead)",
                 Side::kConfig, false};
  }
  // The files are named after the host; a wildcard's '*' becomes "_wildcard".
  const std::string file = dns_name.starts_with("*.") ? "_wildcard" + dns_name.substr(1) : dns_name;
  IssuedFiles out{dir + "/" + file + ".pem", dir + "/" + file + ".key", "DNS:" + dns_name};
  Result<bool> ok = IssueLeaf(dir, dns_name, trust_domain, AltNames(0x82, dns_name), "serverAuth", out);
  if (!ok) return ok.error();
  return out;
}

}  // namespace hms::tls
