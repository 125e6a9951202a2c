#include "hms/tls/session.h"

#include "hms/common/file_check.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/x509v3.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <climits>
#include <cstring>
#include <ctime>

namespace hms::tls {
namespace {

// AEAD suites with forward secrecy only, TLS 1.3's first (RFC 8446 §9.1;
// Mozilla's "intermediate" list for TLS 1.2).
constexpr const char* kCiphers =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kAlpn[] = "http/1.1";
// A listener that serves HTTP/2 prefers it (RFC 9113 §3.2).
constexpr char kAlpnH2[] = "h2,http/1.1";
constexpr char kAlpnH2Only[] = "h2";
// Ticket keys rotate with the hour; a ticket sealed in the previous hour is
// still accepted (and renewed), so a ticket lives at most two hours, and the
// lifetime hint says one.
constexpr int64_t kTicketPeriodS = 3600;
// Plaintext room wolfSSL leaves after its own ticket for the callback's use
// (WOLFSSL_TICKET_EXTRA_PADDING_SZ, internal.h; 32 unless the build says
// more, as tools/bootstrap's does). The peer's identity goes there, then one
// byte: its length, kNoIdentity (none was verified) or kIdentityTooLong.
#ifdef WOLFSSL_TICKET_EXTRA_PADDING_SZ
constexpr size_t kTicketRoom = WOLFSSL_TICKET_EXTRA_PADDING_SZ;
#else
constexpr size_t kTicketRoom = 32;
#endif
constexpr uint8_t kNoIdentity = 0;
constexpr uint8_t kIdentityTooLong = 0xff;
constexpr size_t kMaxTicketIdentity = std::min<size_t>(kTicketRoom - 1, kIdentityTooLong - 1);
static_assert(kTicketRoom >= 1, "room for the identity's length byte");

// The identity is taken from the chain while it is verified, which wolfSSL
// reports to the callback only on failure unless built with this.
#ifndef WOLFSSL_ALWAYS_VERIFY_CB
#error "src/tls/session.cc needs wolfSSL built with WOLFSSL_ALWAYS_VERIFY_CB (OPENSSL_EXTRA sets it)"
#endif

void InitLibrary() {
  static const bool done = [] {
    wolfSSL_Init();
    return true;
  }();
  (void)done;
}

std::string Reason(int err) {
  char buf[WOLFSSL_MAX_ERROR_SZ];
  wolfSSL_ERR_error_string_n(static_cast<unsigned long>(err), buf, sizeof buf);
  return buf;
}

// --- Ticket keys ---------------------------------------------------------

// The secrets tickets are sealed with: the first seals, every one opens.
// `serial` tells the cores' key caches that the set changed.
struct TicketSecrets {
  std::vector<std::array<uint8_t, 32>> keys;
  uint64_t serial = 0;
};

// The process's own secret: random, made once (no ticket_keys file).
const TicketSecrets& ProcessSecrets() {
  static const TicketSecrets secrets = [] {
    TicketSecrets t;
    t.keys.emplace_back();
    WC_RNG rng;
    if (wc_InitRng(&rng) != 0 || wc_RNG_GenerateBlock(&rng, t.keys[0].data(), 32) != 0) {
      std::abort();  // no randomness: nothing here can be secret
    }
    wc_FreeRng(&rng);
    return t;
  }();
  return secrets;
}

// A fleet's shared secrets (tls.ticket_keys), or null for the process's own.
// Published by the control thread, read by the cores during handshakes
// without a lock. A replaced set is never freed: a core may still be
// reading it, and a set changes only when its file does (hours apart).
std::atomic<const TicketSecrets*> g_file_secrets{nullptr};
// Every set ever published, kept reachable (and never destroyed, not even at
// exit, while a core may still read one): the control thread only.
std::vector<std::unique_ptr<TicketSecrets>>& PublishedSecrets() {
  static auto* all = new std::vector<std::unique_ptr<TicketSecrets>>();
  return *all;
}
std::atomic<uint64_t> g_secrets_serial{0};

const TicketSecrets& Secrets() {
  const TicketSecrets* f = g_file_secrets.load(std::memory_order_acquire);
  return f != nullptr ? *f : ProcessSecrets();
}

struct EpochKey {
  uint64_t serial = UINT64_MAX;
  size_t which = 0;
  int64_t epoch = -1;
  uint8_t key[CHACHA20_POLY1305_AEAD_KEYSIZE];
  uint8_t tag[8];  // names the secret in the ticket's key_name
};

// HMAC-SHA256(secret, label || epoch): each core derives the hour's key on
// its own, with no shared state.
void Derive(const std::array<uint8_t, 32>& secret, int64_t epoch, const char* label,
            uint8_t out[WC_SHA256_DIGEST_SIZE]) {
  Hmac h;
  uint8_t e[8];
  for (int i = 0; i < 8; ++i) e[i] = static_cast<uint8_t>(static_cast<uint64_t>(epoch) >> (56 - 8 * i));
  wc_HmacInit(&h, nullptr, INVALID_DEVID);
  wc_HmacSetKey(&h, WC_SHA256, secret.data(), static_cast<word32>(secret.size()));
  wc_HmacUpdate(&h, reinterpret_cast<const byte*>(label), static_cast<word32>(std::strlen(label)));
  wc_HmacUpdate(&h, e, sizeof e);
  wc_HmacFinal(&h, out);
  wc_HmacFree(&h);
}

// The hour's key of secret `which` of `t`, from this thread's small cache.
const EpochKey& KeyFor(const TicketSecrets& t, size_t which, int64_t epoch) {
  thread_local EpochKey cache[8];
  EpochKey& k = cache[((epoch & 1) | (which << 1)) & 7];
  if (k.serial != t.serial || k.which != which || k.epoch != epoch) {
    uint8_t d[WC_SHA256_DIGEST_SIZE];
    Derive(t.keys[which], epoch, "hms ticket key", d);
    std::memcpy(k.key, d, sizeof k.key);
    Derive(t.keys[which], epoch, "hms ticket name", d);
    std::memcpy(k.tag, d, sizeof k.tag);
    k.serial = t.serial;
    k.which = which;
    k.epoch = epoch;
  }
  return k;
}

WC_RNG* ThreadRng() {
  thread_local struct Rng {
    WC_RNG rng;
    bool ok = wc_InitRng(&rng) == 0;
    ~Rng() {
      if (ok) wc_FreeRng(&rng);
    }
  } r;
  return r.ok ? &r.rng : nullptr;
}

// key_name = epoch (8 bytes, big-endian) || the hour's tag of the sealing
// secret; iv = 12 random bytes; ChaCha20-Poly1305 over the ticket with
// key_name || iv as AAD. Opening tries each secret whose tag matches.
int SealTicket(unsigned char* name, unsigned char* iv, unsigned char* mac, int enc,
               unsigned char* ticket, int in_len, int* out_len) {
  int64_t now_epoch = static_cast<int64_t>(std::time(nullptr)) / kTicketPeriodS;
  uint8_t aad[WOLFSSL_TICKET_NAME_SZ + CHACHA20_POLY1305_AEAD_IV_SIZE];
  const TicketSecrets& secrets = Secrets();
  if (enc) {
    const EpochKey& k = KeyFor(secrets, 0, now_epoch);
    for (int i = 0; i < 8; ++i) name[i] = static_cast<uint8_t>(static_cast<uint64_t>(now_epoch) >> (56 - 8 * i));
    std::memcpy(name + 8, k.tag, 8);
    WC_RNG* rng = ThreadRng();
    if (rng == nullptr || wc_RNG_GenerateBlock(rng, iv, WOLFSSL_TICKET_IV_SZ) != 0) {
      return WOLFSSL_TICKET_RET_FATAL;
    }
    std::memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
    std::memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, CHACHA20_POLY1305_AEAD_IV_SIZE);
    std::memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
    if (wc_ChaCha20Poly1305_Encrypt(k.key, iv, aad, sizeof aad, ticket, static_cast<word32>(in_len),
                                    ticket, mac) != 0) {
      return WOLFSSL_TICKET_RET_FATAL;
    }
    *out_len = in_len;
    return WOLFSSL_TICKET_RET_OK;
  }
  uint64_t e = 0;
  for (int i = 0; i < 8; ++i) e = (e << 8) | name[i];
  int64_t epoch = static_cast<int64_t>(e);
  if (epoch != now_epoch && epoch != now_epoch - 1) return WOLFSSL_TICKET_RET_REJECT;
  std::memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
  std::memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, CHACHA20_POLY1305_AEAD_IV_SIZE);
  for (size_t which = 0; which < secrets.keys.size(); ++which) {
    const EpochKey& k = KeyFor(secrets, which, epoch);
    if (std::memcmp(name + 8, k.tag, 8) != 0) continue;  // another secret's
    if (wc_ChaCha20Poly1305_Decrypt(k.key, iv, aad, sizeof aad, ticket, static_cast<word32>(in_len),
                                    mac, ticket) != 0) {
      return WOLFSSL_TICKET_RET_REJECT;
    }
    *out_len = in_len;
    // Opened with an older hour or an older secret: the client gets a
    // ticket sealed with the current one.
    return epoch == now_epoch && which == 0 ? WOLFSSL_TICKET_RET_OK : WOLFSSL_TICKET_RET_CREATE;
  }
  return WOLFSSL_TICKET_RET_REJECT;  // another process's, or a secret rotated out
}

// --- Certificates --------------------------------------------------------

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string AsnText(WOLFSSL_ASN1_STRING* s) {
  if (s == nullptr) return {};
  const char* d = reinterpret_cast<const char*>(wolfSSL_ASN1_STRING_data(s));
  int n = wolfSSL_ASN1_STRING_length(s);
  return d != nullptr && n > 0 ? std::string(d, static_cast<size_t>(n)) : std::string();
}

// The subjectAltName entries of one type (GEN_DNS, GEN_URI: both IA5Strings).
std::vector<std::string> SanEntries(WOLFSSL_X509* x, int type) {
  std::vector<std::string> out;
  auto* sans = static_cast<WOLF_STACK_OF(WOLFSSL_GENERAL_NAME)*>(
      wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr) return out;
  int n = wolfSSL_sk_GENERAL_NAME_num(sans);
  for (int i = 0; i < n; ++i) {
    WOLFSSL_GENERAL_NAME* g = wolfSSL_sk_GENERAL_NAME_value(sans, i);
    if (g != nullptr && g->type == type) out.push_back(AsnText(g->d.ia5));
  }
  wolfSSL_sk_GENERAL_NAME_pop_free(sans, wolfSSL_GENERAL_NAME_free);
  return out;
}

// The DNS names a certificate serves: its subjectAltName DNS entries, else
// its subject's CN (RFC 6125 §6.4.4).
std::vector<std::string> DnsNames(WOLFSSL_X509* x) {
  std::vector<std::string> names = SanEntries(x, GEN_DNS);
  for (std::string& n : names) n = Lower(std::move(n));
  if (names.empty()) {
    char cn[256];
    WOLFSSL_X509_NAME* subject = wolfSSL_X509_get_subject_name(x);
    int n = subject != nullptr ? wolfSSL_X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof cn) : -1;
    if (n > 0) names.push_back(Lower(std::string(cn, static_cast<size_t>(n))));
  }
  return names;
}

bool NameMatches(const std::string& pattern, std::string_view host) {
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    size_t dot = host.find('.');
    return dot != std::string_view::npos && dot > 0 && host.substr(dot) == std::string_view(pattern).substr(1);
  }
  return host == pattern;
}

Error TlsError(const std::string& file, const std::string& what, int err) {
  std::string m = file + ": " + what;
  if (err != 0) m += " (" + Reason(err) + ")";
  return ConfigError(m);
}

// Settings every context shares: TLS 1.2 and 1.3 only, AEAD suites, our
// in-memory I/O (set again on each session: wolfSSL_set_SSL_CTX keeps it).
Result<WOLFSSL_CTX*> NewCtx(bool server) {
  InitLibrary();
  WOLFSSL_CTX* ctx = wolfSSL_CTX_new(server ? wolfSSLv23_server_method() : wolfSSLv23_client_method());
  if (ctx == nullptr) return ConfigError("tls: cannot make a wolfSSL context (out of memory)");
  if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
      wolfSSL_CTX_set_cipher_list(ctx, kCiphers) != WOLFSSL_SUCCESS) {
    wolfSSL_CTX_free(ctx);
    return ConfigError("tls: the wolfSSL library lacks TLS 1.2/1.3 or the AEAD cipher suites");
  }
  return ctx;
}


// Two sessions of this process talking through strings (the key self-test).
struct StringPipe {
  std::string data;
  size_t off = 0;
};
int PipeRecv(WOLFSSL*, char* buf, int sz, void* ctx) {
  auto* p = static_cast<StringPipe*>(ctx);
  size_t n = std::min(static_cast<size_t>(sz), p->data.size() - p->off);
  if (n == 0) return WOLFSSL_CBIO_ERR_WANT_READ;
  std::memcpy(buf, p->data.data() + p->off, n);
  p->off += n;
  return static_cast<int>(n);
}
int PipeSend(WOLFSSL*, char* buf, int sz, void* ctx) {
  static_cast<StringPipe*>(ctx)->data.append(buf, static_cast<size_t>(sz));
  return sz;
}
bool SelfHandshake(WOLFSSL* c, WOLFSSL* s) {
  StringPipe to_s, to_c;
  wolfSSL_SSLSetIORecv(c, PipeRecv);
  wolfSSL_SSLSetIOSend(c, PipeSend);
  wolfSSL_SetIOReadCtx(c, &to_c);
  wolfSSL_SetIOWriteCtx(c, &to_s);
  wolfSSL_SSLSetIORecv(s, PipeRecv);
  wolfSSL_SSLSetIOSend(s, PipeSend);
  wolfSSL_SetIOReadCtx(s, &to_s);
  wolfSSL_SetIOWriteCtx(s, &to_c);
  bool c_done = false, s_done = false;
  for (int round = 0; round < 10 && !(c_done && s_done); ++round) {
    if (!c_done) {
      int rc = wolfSSL_connect(c);
      if (rc == WOLFSSL_SUCCESS) c_done = true;
      else if (wolfSSL_get_error(c, rc) != WOLFSSL_ERROR_WANT_READ) return false;
    }
    if (!s_done) {
      int rc = wolfSSL_accept(s);
      if (rc == WOLFSSL_SUCCESS) s_done = true;
      else if (wolfSSL_get_error(s, rc) != WOLFSSL_ERROR_WANT_READ) return false;
    }
  }
  return c_done && s_done;
}

Result<bool> LoadIdentity(WOLFSSL_CTX* ctx, const std::string& cert, const std::string& key) {
  // wolfSSL says "cannot load" for a missing file too: name the real reason.
  for (const std::string* f : {&cert, &key}) {
    if (std::string why = UnreadableFile(*f); !why.empty()) return ConfigError(why);
  }
  int rc = wolfSSL_CTX_use_certificate_chain_file(ctx, cert.c_str());
  if (rc != WOLFSSL_SUCCESS) return TlsError(cert, "cannot load the certificate chain (PEM)", rc);
  rc = wolfSSL_CTX_use_PrivateKey_file(ctx, key.c_str(), WOLFSSL_FILETYPE_PEM);
  if (rc != WOLFSSL_SUCCESS) return TlsError(key, "cannot load the private key (PEM)", rc);
  if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
    return TlsError(key, "the key does not match the certificate " + cert, 0);
  }
  return true;
}

// wolfSSL_CTX_check_private_key only compares key types for ECC here, so a
// server identity is proven the way a client would: a handshake in memory,
// whose CertificateVerify fails when the key is not the certificate's.
bool KeyMatches(const std::string& cert, const std::string& key) {
  auto server_ctx = NewCtx(true);
  auto client_ctx = NewCtx(false);
  bool ok = false;
  if (server_ctx && client_ctx && LoadIdentity(*server_ctx, cert, key)) {
    wolfSSL_CTX_set_verify(*client_ctx, WOLFSSL_VERIFY_NONE, nullptr);
    WOLFSSL* s = wolfSSL_new(*server_ctx);
    WOLFSSL* c = wolfSSL_new(*client_ctx);
    if (s != nullptr && c != nullptr) ok = SelfHandshake(c, s);
    if (s != nullptr) wolfSSL_free(s);
    if (c != nullptr) wolfSSL_free(c);
  }
  if (server_ctx) wolfSSL_CTX_free(*server_ctx);
  if (client_ctx) wolfSSL_CTX_free(*client_ctx);
  return ok;
}

Result<bool> LoadCa(WOLFSSL_CTX* ctx, const std::string& ca, VerifyCallback on_verify) {
  if (std::string why = UnreadableFile(ca); !why.empty()) return ConfigError(why);
  int rc = wolfSSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
  if (rc != WOLFSSL_SUCCESS) return TlsError(ca, "cannot load the CA certificate (PEM)", rc);
  wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, on_verify);
  return true;
}

#ifdef SESSION_CERTS
// The leaf's identity from the certificates a session kept: with Debian's
// packaged library (HMS_WOLFSSL=system) a resumed server session gets them
// back from wolfSSL's session cache when its ticket could not hold the
// identity (docs/building.md).
std::string ChainIdentity(WOLFSSL* ssl) {
  WOLFSSL_X509_CHAIN* chain = wolfSSL_get_peer_chain(ssl);
  if (chain == nullptr || wolfSSL_get_chain_count(chain) <= 0) return {};
  return UriSan(wolfSSL_get_chain_cert(chain, 0),
                static_cast<size_t>(wolfSSL_get_chain_length(chain, 0)));
}
#endif

}  // namespace

// --- Contexts ------------------------------------------------------------

Result<std::shared_ptr<const ServerContext>> ServerContext::Make(const ServerOptions& o) {
  if (o.certs.empty()) return ConfigError("tls: no certificate");
  std::shared_ptr<ServerContext> sc(new ServerContext());
  sc->client_auth_ = o.client_auth;
  for (const CertFiles& f : o.certs) {
    auto ctx = NewCtx(true);
    if (!ctx) return ctx.error();
    sc->ctx_.push_back(*ctx);  // freed by ~ServerContext from here on
    if (auto ok = LoadIdentity(*ctx, f.cert, f.key); !ok) return ok.error();
    if (!KeyMatches(f.cert, f.key)) {
      return TlsError(f.key, "the key does not match the certificate " + f.cert, 0);
    }
    if (o.client_auth) {
      if (auto ok = LoadCa(*ctx, o.ca, &Session::OnVerify); !ok) return ok.error();
    }
    wolfSSL_CTX_set_TicketEncCb(*ctx, &Session::OnTicket);
#ifndef SESSION_CERTS
    // Tickets are the only resumption: they carry all a session needs (the
    // peer's identity too), so no server-side cache entry per handshake.
    wolfSSL_CTX_set_session_cache_mode(*ctx, WOLFSSL_SESS_CACHE_OFF);
#endif
    wolfSSL_CTX_set_TicketHint(*ctx, static_cast<int>(kTicketPeriodS));
    wolfSSL_CTX_set_timeout(*ctx, static_cast<unsigned>(kTicketPeriodS));
    wolfSSL_CTX_SetIORecv(*ctx, &Session::OnRecv);
    wolfSSL_CTX_SetIOSend(*ctx, &Session::OnSend);
    WOLFSSL_X509* x = wolfSSL_X509_load_certificate_file(f.cert.c_str(), WOLFSSL_FILETYPE_PEM);
    if (x == nullptr) return TlsError(f.cert, "cannot read the certificate", 0);
    sc->names_.push_back(DnsNames(x));
    wolfSSL_X509_free(x);
  }
  if (sc->ctx_.size() > 1) {
    wolfSSL_CTX_set_servername_callback(sc->ctx_[0], &ServerContext::OnServerName);
    wolfSSL_CTX_set_servername_arg(sc->ctx_[0], sc.get());
  }
  return std::shared_ptr<const ServerContext>(std::move(sc));
}

ServerContext::~ServerContext() {
  for (WOLFSSL_CTX* c : ctx_) wolfSSL_CTX_free(c);
}

// Chooses the certificate by SNI: exact names first, then wildcards; the
// default one when none matches (what nginx and HAProxy do).
int ServerContext::OnServerName(WOLFSSL* ssl, int*, void* arg) {
  const auto* sc = static_cast<const ServerContext*>(arg);
  const char* name = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
  if (name == nullptr || *name == '\0') return 0;
  char lower[256];
  size_t n = std::min(std::strlen(name), sizeof lower);
  for (size_t i = 0; i < n; ++i) lower[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
  std::string_view host(lower, n);
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < sc->names_.size(); ++i) {
      for (const std::string& p : sc->names_[i]) {
        bool wildcard = p.size() > 1 && p[0] == '*';
        if (wildcard != (pass == 1) || !NameMatches(p, host)) continue;
        if (i > 0) wolfSSL_set_SSL_CTX(ssl, sc->ctx_[i]);
        return 0;
      }
    }
  }
  return 0;
}

Result<std::shared_ptr<const ClientContext>> ClientContext::Make(const ClientOptions& o) {
  auto ctx = NewCtx(false);
  if (!ctx) return ctx.error();
  std::shared_ptr<ClientContext> cc(new ClientContext());
  cc->ctx_ = *ctx;
  if (!o.cert.empty()) {
    if (auto ok = LoadIdentity(cc->ctx_, o.cert, o.key); !ok) return ok.error();
  }
  if (auto ok = LoadCa(cc->ctx_, o.ca, &Session::OnVerify); !ok) return ok.error();
  wolfSSL_CTX_SetIORecv(cc->ctx_, &Session::OnRecv);
  wolfSSL_CTX_SetIOSend(cc->ctx_, &Session::OnSend);
  return std::shared_ptr<const ClientContext>(std::move(cc));
}

ClientContext::~ClientContext() {
  if (ctx_ != nullptr) wolfSSL_CTX_free(ctx_);
}

SavedSession::~SavedSession() {
  if (s_ != nullptr) wolfSSL_SESSION_free(s_);
}

// --- Sessions ------------------------------------------------------------

std::unique_ptr<Session> Session::NewServer(std::shared_ptr<const ServerContext> ctx,
                                            bool offer_h2) {
  std::unique_ptr<Session> s(new Session());
  s->ssl_ = wolfSSL_new(ctx->ctx_[0]);
  if (s->ssl_ == nullptr) return nullptr;
  s->server_ctx_ = std::move(ctx);
  s->server_ = true;
  wolfSSL_SetIOReadCtx(s->ssl_, s.get());
  wolfSSL_SetIOWriteCtx(s->ssl_, s.get());
  wolfSSL_SetCertCbCtx(s->ssl_, s.get());
  // Offer h2 (where the listener serves it) and http/1.1; a client that
  // asks only for others goes on without ALPN rather than failing (RFC 7301
  // §3.2 allows either).
  if (offer_h2) {
    wolfSSL_UseALPN(s->ssl_, const_cast<char*>(kAlpnH2), sizeof kAlpnH2 - 1,
                    WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
  } else {
    wolfSSL_UseALPN(s->ssl_, const_cast<char*>(kAlpn), sizeof kAlpn - 1,
                    WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
  }
  return s;
}

std::unique_ptr<Session> Session::NewClient(const ClientContext& ctx, const SavedSession* resume,
                                            std::string_view server_name, bool h2) {
  std::unique_ptr<Session> s(new Session());
  s->ssl_ = wolfSSL_new(ctx.ctx_);
  if (s->ssl_ == nullptr) return nullptr;
  wolfSSL_SetIOReadCtx(s->ssl_, s.get());
  wolfSSL_SetIOWriteCtx(s->ssl_, s.get());
  wolfSSL_SetCertCbCtx(s->ssl_, s.get());
  if (h2) {
    wolfSSL_UseALPN(s->ssl_, const_cast<char*>(kAlpnH2Only), sizeof kAlpnH2Only - 1,
                    WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
  } else {
    wolfSSL_UseALPN(s->ssl_, const_cast<char*>(kAlpn), sizeof kAlpn - 1,
                    WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
  }
  wolfSSL_UseSessionTicket(s->ssl_);
  if (!server_name.empty()) {
    wolfSSL_UseSNI(s->ssl_, WOLFSSL_SNI_HOST_NAME, server_name.data(),
                   static_cast<unsigned short>(server_name.size()));
  }
  if (resume != nullptr && resume->s_ != nullptr) {
    wolfSSL_set_session(s->ssl_, resume->s_);
    s->resumed_id_ = resume->peer_id_;
  }
  return s;
}

Session::~Session() {
  if (ssl_ != nullptr) wolfSSL_free(ssl_);
}

int Session::OnRecv(WOLFSSL*, char* buf, int sz, void* ctx) {
  Wire* w = static_cast<Session*>(ctx)->wire_;
  if (w == nullptr || w->in_len == 0) return WOLFSSL_CBIO_ERR_WANT_READ;
  size_t n = std::min(static_cast<size_t>(sz), w->in_len);
  std::memcpy(buf, w->in, n);
  w->in += n;
  w->in_len -= n;
  return static_cast<int>(n);
}

int Session::OnSend(WOLFSSL*, char* buf, int sz, void* ctx) {
  Wire* w = static_cast<Session*>(ctx)->wire_;
  if (w == nullptr || w->out == nullptr) return WOLFSSL_CBIO_ERR_WANT_WRITE;
  w->out->Append(w->pool, buf, static_cast<size_t>(sz));
  return sz;
}

void Session::Fail(int err, const char* where) {
  failure_ = std::string(where) + ": " + Reason(err);
}

Step Session::Handshake(Wire& w) {
  if (done_) return Step::kDone;
  wire_ = &w;
  int rc = server_ ? wolfSSL_accept(ssl_) : wolfSSL_connect(ssl_);
  int err = rc == WOLFSSL_SUCCESS ? 0 : wolfSSL_get_error(ssl_, rc);
  wire_ = nullptr;
  if (rc != WOLFSSL_SUCCESS) {
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) return Step::kWant;
    Fail(err, "handshake");
    return Step::kFailed;
  }
  done_ = true;
  // A full handshake verified the peer's chain just now; a resumed one
  // knows the identity from the ticket (server) or the saved session
  // (client), both made when that chain was verified.
  if (resumed()) {
    peer_id_ = std::move(resumed_id_);
#ifdef SESSION_CERTS
    if (peer_id_.empty()) peer_id_ = ChainIdentity(ssl_);
#endif
  } else {
    peer_id_ = std::move(verified_id_);
  }
  std::string().swap(verified_id_);
  std::string().swap(resumed_id_);
  return Step::kDone;
}

int Session::OnVerify(int ok, WOLFSSL_X509_STORE_CTX* store) {
  if (ok == 0 || store == nullptr) return ok;
  auto* s = static_cast<Session*>(store->userCtx);  // wolfSSL_SetCertCbCtx
  if (s != nullptr && store->error_depth == 0 && store->certs != nullptr && store->totalCerts > 0) {
    s->verified_id_ = UriSan(store->certs[0].buffer, store->certs[0].length);
  }
  return ok;
}

// The sealed plaintext is wolfSSL's ticket, the identity, and the byte that
// says its length (above). A listener that requires a client certificate
// resumes only a ticket that carries the identity verified when it was
// issued: one issued where no certificate was asked for (the keys are the
// process's, shared by every listener) makes the client prove itself again.
int Session::OnTicket(WOLFSSL* ssl, unsigned char* name, unsigned char* iv, unsigned char* mac,
                      int enc, unsigned char* ticket, int in_len, int* out_len, void*) {
  auto* s = static_cast<Session*>(wolfSSL_GetIOReadCtx(ssl));
  if (enc) {
    std::string_view id;
    bool reused = wolfSSL_session_reused(ssl) == 1;
    if (s != nullptr) id = reused ? s->resumed_id_ : s->verified_id_;
    uint8_t mark = static_cast<uint8_t>(id.size());
    if (id.empty()) {
      // A renewed ticket says what the one it replaces said.
      mark = reused && s != nullptr && s->resumed_too_long_ ? kIdentityTooLong : kNoIdentity;
    } else if (id.size() > kMaxTicketIdentity) {
      mark = kIdentityTooLong;
      id = {};
    }
    if (!id.empty()) std::memcpy(ticket + in_len, id.data(), id.size());
    ticket[in_len + static_cast<int>(id.size())] = mark;
    return SealTicket(name, iv, mac, 1, ticket, in_len + static_cast<int>(id.size()) + 1,
                      out_len);
  }
  int rc = SealTicket(name, iv, mac, 0, ticket, in_len, out_len);
  if (rc != WOLFSSL_TICKET_RET_OK && rc != WOLFSSL_TICKET_RET_CREATE) return rc;
  // Authentic from here: only this process seals with these keys.
  uint8_t mark = ticket[in_len - 1];
  size_t n = mark == kIdentityTooLong ? 0 : mark;
  if (n + 1 > static_cast<size_t>(in_len)) return WOLFSSL_TICKET_RET_REJECT;
  if (s == nullptr) return rc;
  s->resumed_id_.assign(reinterpret_cast<const char*>(ticket) + in_len - 1 - n, n);
  s->resumed_too_long_ = mark == kIdentityTooLong;
  if (s->server_ctx_ != nullptr && s->server_ctx_->client_auth()) {
    if (mark == kNoIdentity) return WOLFSSL_TICKET_RET_REJECT;
#ifndef SESSION_CERTS
    if (mark == kIdentityTooLong) return WOLFSSL_TICKET_RET_REJECT;
#endif
    // With SESSION_CERTS (Debian's packaged library) an identity too long
    // for its 32 bytes of room comes back from wolfSSL's session cache, as
    // before tickets carried it (Handshake).
  }
  return rc;
}

size_t MaxTicketIdentity() { return kMaxTicketIdentity; }

int Session::Read(Wire& w, char* dst, size_t cap) {
  wire_ = &w;
  int rc = wolfSSL_read(ssl_, dst, static_cast<int>(std::min<size_t>(cap, INT_MAX)));
  int err = rc > 0 ? 0 : wolfSSL_get_error(ssl_, rc);
  wire_ = nullptr;
  if (rc > 0) return rc;
  if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) return 0;
  if (err == WOLFSSL_ERROR_ZERO_RETURN) return kEof;
  Fail(err, "read");
  return kError;
}

bool Session::Write(Wire& w, const char* p, size_t n) {
  wire_ = &w;
  bool ok = true;
  while (n > 0) {
    int chunk = static_cast<int>(std::min<size_t>(n, 1 << 20));
    int rc = wolfSSL_write(ssl_, p, chunk);
    if (rc <= 0) {
      Fail(wolfSSL_get_error(ssl_, rc), "write");
      ok = false;
      break;
    }
    p += rc;
    n -= static_cast<size_t>(rc);
  }
  wire_ = nullptr;
  return ok;
}

void Session::Shutdown(Wire& w) {
  if (!done_) return;
  wire_ = &w;
  wolfSSL_shutdown(ssl_);  // sends close_notify; the peer's answer is not awaited
  wire_ = nullptr;
}

bool Session::resumed() const { return wolfSSL_session_reused(ssl_) == 1; }

std::string_view Session::version() const { return wolfSSL_get_version(ssl_); }

std::string_view Session::alpn() const {
  char* name = nullptr;
  unsigned short size = 0;
  if (wolfSSL_ALPN_GetProtocol(ssl_, &name, &size) != WOLFSSL_SUCCESS || name == nullptr) return {};
  return std::string_view(name, size);
}

void Session::Save(SavedSession* into) const {
  WOLFSSL_SESSION* s = wolfSSL_get1_session(ssl_);
  if (s == nullptr) return;
  if (into->s_ != nullptr) wolfSSL_SESSION_free(into->s_);
  into->s_ = s;
  into->peer_id_ = peer_id_;
}

void ReleaseThreadCaches() {
#ifdef FP_ECC
  wc_ecc_fp_free();
#endif
}

std::string UriSan(const unsigned char* der, size_t len) {
  if (der == nullptr || len == 0) return {};
  const unsigned char* p = der;
  WOLFSSL_X509* x = wolfSSL_d2i_X509(nullptr, &p, static_cast<int>(len));
  if (x == nullptr) return {};
  std::vector<std::string> uris = SanEntries(x, GEN_URI);
  wolfSSL_X509_free(x);
  return uris.size() == 1 ? uris[0] : std::string();
}

Result<bool> UseTicketKeys(std::string_view text, const std::string& file) {
  auto t = std::make_unique<TicketSecrets>();
  int line = 0;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(at, end - at);
    at = end + 1;
    ++line;
    while (!l.empty() && (l.back() == '\r' || l.back() == ' ')) l.remove_suffix(1);
    if (l.empty() || l.front() == '#') continue;
    std::array<uint8_t, 48> raw{};
    word32 n = raw.size();
    if (Base64_Decode(reinterpret_cast<const byte*>(l.data()), static_cast<word32>(l.size()),
                      raw.data(), &n) != 0 || n != 32) {
      return ConfigError(file + ":" + std::to_string(line) +
                         ": not a ticket key: want 32 random bytes in base64 "
                         "(openssl rand -base64 32)");
    }
    std::memcpy(t->keys.emplace_back().data(), raw.data(), 32);
  }
  if (t->keys.empty()) {
    return ConfigError(file + ": no ticket key (openssl rand -base64 32 makes one)");
  }
  if (t->keys.size() > kMaxTicketKeys) {
    return ConfigError(file + ": " + std::to_string(t->keys.size()) + " ticket keys, at most " +
                       std::to_string(kMaxTicketKeys) + " (the first seals, the others open)");
  }
  const TicketSecrets* now = g_file_secrets.load(std::memory_order_acquire);
  if (now != nullptr && now->keys == t->keys) return true;
  t->serial = g_secrets_serial.fetch_add(1) + 1;
  const TicketSecrets* published = t.get();
  PublishedSecrets().push_back(std::move(t));  // never freed: see g_file_secrets
  g_file_secrets.store(published, std::memory_order_release);
  return true;
}

void UseProcessTicketKeys() { g_file_secrets.store(nullptr, std::memory_order_release); }

}  // namespace hms::tls
