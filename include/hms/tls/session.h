// TLS over the cores' buffers (DESIGN §5 zero trust, docs/tls.md).
//
// wolfSSL never touches a socket here. For the length of one call a Session
// reads the ciphertext the caller lends it (Wire::in, advanced past what it
// took: wolfSSL copies a record's bytes into its own input buffer) and
// appends what it wants sent to the caller's queue (Wire::out); the engine
// moves both with io_uring.
//
// Contexts (certificates, keys, the CA) are immutable once made, made by the
// control thread and shared by every core: wolfSSL's CTX hands out sessions
// on several threads at once. Session tickets are sealed with process-wide
// keys derived from one secret and the current hour, so a ticket issued on
// one core resumes on any other, and across certificate reloads; keys
// rotate hourly and the previous hour's key is still accepted (the ticket is
// then renewed). A ticket also carries the caller's verified identity, so a
// resumed connection knows who the peer is without a server-side session
// cache. A Session belongs to the core that made it.
//
// A fleet shares its ticket secrets through a file (tls.ticket_keys,
// UseTicketKeys): a ticket from one gateway then resumes on every other and
// on the same gateway after an upgrade or a restart.
//
// Memory: an idle session keeps only what records need (keys, sequence
// numbers, the negotiated SNI/ALPN) and the peer's identity as a short
// string; certificates are not kept after the handshake (docs/tls.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hms/common/result.h"
#include "hms/core/block_pool.h"

struct WOLFSSL;
struct WOLFSSL_CTX;
struct WOLFSSL_SESSION;
struct WOLFSSL_X509_STORE_CTX;

namespace hms::tls {

// The ciphertext side of one call into a Session.
struct Wire {
  const char* in = nullptr;  // ciphertext lent for this call; advanced past what was taken
  size_t in_len = 0;
  core::ByteQueue* out = nullptr;  // ciphertext to send is appended here
  core::BlockPool* pool = nullptr;
};

struct CertFiles {
  std::string cert, key;  // PEM: the certificate chain (leaf first) and its key
};

struct ServerOptions {
  // The first is the default: it answers a client that names no server
  // (SNI) or a name none of them carries. The others are chosen by the SNI
  // name against their subjectAltName DNS entries (or the subject's CN when
  // there are none); "*.example.com" matches exactly one label.
  std::vector<CertFiles> certs;
  std::string ca;            // PEM: client certificates must chain to it
  bool client_auth = false;  // require and verify a client certificate
};

class ServerContext {
 public:
  // Reads and checks every file; the error names the file and why.
  static Result<std::shared_ptr<const ServerContext>> Make(const ServerOptions& o);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // The names each certificate serves, in ServerOptions::certs order.
  const std::vector<std::vector<std::string>>& names() const { return names_; }
  bool client_auth() const { return client_auth_; }

 private:
  ServerContext() = default;
  friend class Session;
  static int OnServerName(WOLFSSL* ssl, int* alert, void* arg);
  std::vector<WOLFSSL_CTX*> ctx_;                 // [cert]
  std::vector<std::vector<std::string>> names_;  // [cert]
  bool client_auth_ = false;
};

struct ClientOptions {
  std::string cert, key;  // our identity (mTLS)
  std::string ca;         // the peer's certificate must chain to it
};

class ClientContext {
 public:
  static Result<std::shared_ptr<const ClientContext>> Make(const ClientOptions& o);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

 private:
  ClientContext() = default;
  friend class Session;
  WOLFSSL_CTX* ctx_ = nullptr;
};

// A client's saved session (ticket and secrets) for resuming the next
// connection to the same peer. Owned by one core.
class SavedSession {
 public:
  SavedSession() = default;
  ~SavedSession();
  SavedSession(const SavedSession&) = delete;
  SavedSession& operator=(const SavedSession&) = delete;
  bool empty() const { return s_ == nullptr; }

 private:
  friend class Session;
  WOLFSSL_SESSION* s_ = nullptr;
  std::string peer_id_;  // the server's identity, checked when the ticket was issued
};

enum class Step : uint8_t { kDone, kWant, kFailed };

class Session {
 public:
  // Null when wolfSSL cannot make the object (out of memory). A server
  // session keeps its context alive (a reload may replace it meanwhile):
  // the SNI callback reads it mid-handshake. `offer_h2`: ALPN offers h2
  // before http/1.1 (a listener that serves HTTP/2).
  static std::unique_ptr<Session> NewServer(std::shared_ptr<const ServerContext> ctx,
                                            bool offer_h2 = false);
  // `resume` (may be null or empty) offers a saved session's ticket;
  // `server_name` (may be empty) is sent as SNI. `h2`: ALPN offers h2 alone
  // (an upstream spoken to in HTTP/2; check alpn() once the handshake is done).
  static std::unique_ptr<Session> NewClient(const ClientContext& ctx, const SavedSession* resume,
                                            std::string_view server_name = {}, bool h2 = false);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Drives the handshake with what `w` lends: kWant until the peer sends
  // more, kFailed with failure() set. A server also checks the client's
  // certificate (with client_auth) and, on success, fills peer_identity():
  // from the verified certificate, or from the ticket or saved session
  // when resumed.
  Step Handshake(Wire& w);
  // Decrypts into dst: bytes (> 0); 0 when more ciphertext is needed; kEof
  // when the peer sent close_notify; kError on a bad record (failure()).
  static constexpr int kEof = -1;
  static constexpr int kError = -2;
  int Read(Wire& w, char* dst, size_t cap);
  // Encrypts all of [p, p+n) into w.out. False on a library error.
  bool Write(Wire& w, const char* p, size_t n);
  // Queues close_notify.
  void Shutdown(Wire& w);

  bool handshake_done() const { return done_; }
  bool resumed() const;
  // The one URI subjectAltName of the peer's verified certificate (SPIFFE's
  // X509-SVID rule), or empty when the peer sent none, or several.
  std::string_view peer_identity() const { return peer_id_; }
  std::string_view failure() const { return failure_; }
  // The TLS version ("TLSv1.3") and the negotiated ALPN protocol ("" if none).
  std::string_view version() const;
  std::string_view alpn() const;
  // Keeps this session for the next connection (a client after its
  // handshake and first read: TLS 1.3 tickets arrive after the handshake).
  void Save(SavedSession* into) const;

 private:
  friend class ServerContext;  // installs OnRecv/OnSend on its contexts
  friend class ClientContext;
  Session() = default;
  static int OnRecv(WOLFSSL* ssl, char* buf, int sz, void* ctx);
  static int OnSend(WOLFSSL* ssl, char* buf, int sz, void* ctx);
  // Takes the leaf's identity while the chain is verified (the certificate
  // is not kept), and seals it into the tickets this server issues.
  static int OnVerify(int ok, WOLFSSL_X509_STORE_CTX* store);
  static int OnTicket(WOLFSSL* ssl, unsigned char* name, unsigned char* iv, unsigned char* mac,
                      int enc, unsigned char* ticket, int in_len, int* out_len, void* arg);
  void Fail(int err, const char* where);
  WOLFSSL* ssl_ = nullptr;
  std::shared_ptr<const ServerContext> server_ctx_;
  Wire* wire_ = nullptr;  // during a call
  bool server_ = false;
  bool done_ = false;
  bool resumed_too_long_ = false;  // the ticket's identity did not fit in it
  std::string peer_id_;
  // During the handshake: the verified leaf's identity, and the one a
  // ticket (or a client's saved session) carried, used if it resumes.
  std::string verified_id_;
  std::string resumed_id_;
  std::string failure_;
};

// The longest identity a session ticket carries (127 bytes with
// tools/bootstrap's wolfSSL, 31 with Debian's packaged one). A resumed
// caller with a longer one proves itself again with its certificate, or,
// with the packaged library, gets it back from wolfSSL's session cache.
size_t MaxTicketIdentity();

// Ticket secrets shared by a fleet (`tls: {ticket_keys: FILE}`, docs/tls.md):
// `text` holds one key per line, 32 random bytes in base64 (`openssl rand
// -base64 32`; blank lines and lines starting with '#' skipped). The first
// seals new tickets; every one opens them, so a rotation puts the new key
// first and keeps the previous one on the next line. The error names
// `file`:line; the secrets in use then stay. Control thread; the cores see
// the new set at their next handshake.
inline constexpr size_t kMaxTicketKeys = 4;
Result<bool> UseTicketKeys(std::string_view text, const std::string& file);
// Back to this process's own random secret (no ticket_keys file).
void UseProcessTicketKeys();

// The one URI subjectAltName of a DER certificate ("" if none or several).
std::string UriSan(const unsigned char* der, size_t len);

// Frees what wolfCrypt keeps per thread (its fixed-point ECC tables, built
// on a thread's first ECDSA operation and otherwise lost when the thread
// ends). Called by a thread that did TLS or verified ES256 tokens, last.
void ReleaseThreadCaches();

}  // namespace hms::tls
