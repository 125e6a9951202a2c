// TLS on a Worker's connections (docs/tls.md).
//
// Ciphertext arrives in provided buffers like plaintext does and is held in
// the connection's `cipher_in`; the session decrypts it into the input
// block, where the HTTP side reads it as if it had come in the clear. What
// the HTTP side queues in `out` is sealed into `cipher_out` when the
// connection is flushed, so several answers of one pass share records.
// wolfSSL copies a record into its own buffer as it reads it, so a held
// buffer goes back to the kernel's ring as soon as the session has taken it.
#include <sys/socket.h>

#include <cstring>

#include "src/proxy/wire.h"
#include "src/proxy/worker.h"

namespace hms::proxy {

template <typename Conn>
Worker::TlsStep Worker::TlsReceive(Conn& c, uint32_t slot) {
  tls::Session& s = *c.tls;
  bool progress = false;
  for (;;) {
    const std::string_view held = inputs_.Front(c.cipher_in);
    const bool none = held.empty();
    const size_t len = held.size();
    tls::Wire w{held.data(), len, &c.cipher_out, &blocks_};
    TlsStep step = TlsStep::kIdle;
    bool stop = false;
    if (!s.handshake_done()) {
      tls::Step st = s.Handshake(w);
      if (st == tls::Step::kFailed) {
        step = TlsStep::kFailed;
        stop = true;
      } else if (st == tls::Step::kDone) {
        step = TlsStep::kHandshakeDone;
        stop = true;
      } else {
        // Wants more: the next held buffer, if the session took this one
        // (a session that takes nothing must not spin this loop).
        stop = none || w.in_len == len;
      }
    } else {
      core::Block*& b = c.in.block;
      if (b == nullptr) b = blocks_.Get();
      const uint32_t cap = blocks_.block_size();
      if (b->begin > 0 && cap - b->end < cap / 4) {
        std::memmove(b->data(), b->data() + b->begin, b->end - b->begin);
        b->end -= b->begin;
        b->begin = 0;
      }
      const uint32_t room = cap - b->end;
      if (room == 0) {
        stop = true;  // the HTTP side must take what is there first
      } else {
        int n = s.Read(w, b->data() + b->end, room);
        if (n > 0) {
          b->end += static_cast<uint32_t>(n);
          progress = true;
        } else if (n == 0) {
          stop = none || w.in_len == len;  // needs more ciphertext
        } else {
          step = n == tls::Session::kEof ? TlsStep::kEof : TlsStep::kFailed;
          stop = true;
        }
      }
      if (b->begin == b->end) {  // an idle connection holds no block
        blocks_.Put(b);
        b = nullptr;
      }
    }
    if (!none) inputs_.Consume(c.cipher_in, static_cast<uint32_t>(len - w.in_len));
    if (!c.cipher_out.empty()) MarkDirty(c, slot);  // handshake messages, alerts
    if (stop) return step == TlsStep::kIdle && progress ? TlsStep::kProgress : step;
  }
}

template <typename Conn>
bool Worker::TlsSeal(Conn& c) {
  iovec iov[8];
  while (!c.out.empty()) {
    int n = c.out.Gather(iov, 8);
    size_t total = 0;
    tls::Wire w{nullptr, 0, &c.cipher_out, &blocks_};
    for (int i = 0; i < n; ++i) {
      if (!c.tls->Write(w, static_cast<const char*>(iov[i].iov_base), iov[i].iov_len)) return false;
      total += iov[i].iov_len;
    }
    c.out.Consume(&blocks_, total);
  }
  return true;
}

template Worker::TlsStep Worker::TlsReceive(Client&, uint32_t);
template Worker::TlsStep Worker::TlsReceive(Upstream&, uint32_t);
template bool Worker::TlsSeal(Client&);
template bool Worker::TlsSeal(Upstream&);

void Worker::PumpClientTls(uint32_t slot) {
  for (;;) {
    Client& c = clients_[slot];
    // A TLS connection starts with a record whose first byte is its content
    // type (22 = handshake); a letter there is a request line in the clear.
    // Only the connection's very first byte: later ones may be anything.
    if (!c.sniffed && c.cipher_in.held_head != kNone) {
      c.sniffed = true;
      char first = inputs_.Front(c.cipher_in).front();
      if (first >= 'A' && first <= 'Z') {
        RefusePlainHttp(slot);
        return;
      }
    }
    TlsStep step = TlsReceive(c, slot);
    if (step == TlsStep::kFailed) {
      if (!c.tls->handshake_done()) metrics_.tls_failed.Add();
      // The alert the session queued goes out before the close.
      CloseClient(slot, true);
      return;
    }
    if (step == TlsStep::kHandshakeDone) {
      OnClientHandshake(slot);
      continue;
    }
    inputs_.Drive(c.in, [this, slot](const char* p, size_t n) -> int64_t { return ConsumeClient(slot, p, n); });
    Client& d = clients_[slot];
    if (d.state == Client::State::kFree || d.state == Client::State::kClosing) return;
    if (step == TlsStep::kEof) {  // close_notify: like a FIN
      OnClientEof(slot);
      return;
    }
    if (step != TlsStep::kProgress) return;
  }
}

void Worker::OnClientHandshake(uint32_t slot) {
  Client& c = clients_[slot];
  metrics_.tls_handshakes.Add();
  if (c.tls->resumed()) metrics_.tls_resumed.Add();
  // ALPN chose h2 (offered only where the listener serves it).
  if (c.tls->alpn() == "h2" && c.listener < h2_config_.size() &&
      h2_config_[c.listener] != nullptr) {
    StartH2(slot);
    return;
  }
  SetClientTimer(slot);  // from the handshake's header_timeout to the idle timeout
}

void Worker::RefusePlainHttp(uint32_t slot) {
  Client& c = clients_[slot];
  metrics_.tls_plain_http.Add();
  inputs_.Clear(c.cipher_in);
  obs::TraceContext trace{};
  obs::NewTrace(&trace);
  // Not LocalResponse: there is no exchange, and the answer bypasses TLS.
  const policy::Answer a = policy::AnswerFor(policy::Fault::kPlainHttpToTls);
  char body[192];
  int blen = std::snprintf(body, sizeof body,
                           "{\"error\":\"%.*s\",\"reason\":\"%.*s\",\"trace_id\":\"%.32s\"}\n",
                           static_cast<int>(a.message.size()), a.message.data(),
                           static_cast<int>(a.reason.size()), a.reason.data(), trace.trace_id);
  char head[320];
  const std::string_view status_text = StatusText(a.status);
  int hlen = std::snprintf(head, sizeof head,
                           "HTTP/1.1 %u %.*s\r\ncontent-type: application/json\r\n"
                           "x-hms-reason: %.*s\r\nx-trace-id: %.32s\r\n"
                           "connection: close\r\ncontent-length: %d\r\n\r\n",
                           static_cast<unsigned>(a.status), static_cast<int>(status_text.size()),
                           status_text.data(), static_cast<int>(a.reason.size()), a.reason.data(),
                           trace.trace_id, blen);
  // Written to the wire as is: the client speaks no TLS to read it through.
  c.cipher_out.Append(&blocks_, head, static_cast<size_t>(hlen));
  c.cipher_out.Append(&blocks_, body, static_cast<size_t>(blen));
  MarkDirty(c, slot);
  CloseClient(slot, true);
}

bool Worker::StartUpstreamTls(uint32_t up) {
  Upstream& u = upstreams_[up];
  const auto& ctx = current_->snapshot->mesh_client;
  if (ctx == nullptr) {
    metrics_.upstream_tls_failed.Add();
    UpstreamFailed(up, policy::Fault::kNoMeshIdentity);
    return false;
  }
  const tls::SavedSession* saved =
      u.endpoint_id < tls_saved_.size() ? tls_saved_[u.endpoint_id].get() : nullptr;
  u.tls = tls::Session::NewClient(*ctx, saved, {}, u.h2 != nullptr);
  if (u.tls == nullptr) {
    metrics_.upstream_tls_failed.Add();
    UpstreamFailed(up, policy::Fault::kUpstreamTlsFailed, "cannot make a TLS session");
    return false;
  }
  if (TlsReceive(u, up) == TlsStep::kFailed) {  // writes the ClientHello
    metrics_.upstream_tls_failed.Add();
    UpstreamFailed(up, policy::Fault::kUpstreamTlsFailed);
    return false;
  }
  return true;
}

void Worker::PumpUpstreamTls(uint32_t up) {
  for (;;) {
    Upstream& u = upstreams_[up];
    TlsStep step = TlsReceive(u, up);
    if (step == TlsStep::kFailed) {
      if (!u.tls->handshake_done()) metrics_.upstream_tls_failed.Add();
      UpstreamFailed(up, policy::Fault::kUpstreamTlsFailed,
                     u.tls->handshake_done() ? "bad TLS record from the upstream" : "");
      return;
    }
    if (step == TlsStep::kHandshakeDone) {
      if (!OnUpstreamHandshake(up)) return;
      continue;
    }
    if (step == TlsStep::kProgress && !u.tls_saved && u.endpoint_id < tls_saved_.size()) {
      // After the first read: a TLS 1.3 ticket comes after the handshake.
      auto& saved = tls_saved_[u.endpoint_id];
      if (saved == nullptr) saved = std::make_unique<tls::SavedSession>();
      u.tls->Save(saved.get());
      u.tls_saved = true;
    }
    inputs_.Drive(u.in, [this, up](const char* p, size_t n) -> int64_t { return ConsumeUpstream(up, p, n); });
    Upstream& v = upstreams_[up];
    if (v.state != Upstream::State::kBusy) return;
    if (step == TlsStep::kEof) {
      OnUpstreamEof(up);
      return;
    }
    if (step != TlsStep::kProgress) return;
  }
}

bool Worker::OnUpstreamHandshake(uint32_t up) {
  Upstream& u = upstreams_[up];
  metrics_.upstream_tls_handshakes.Add();
  if (u.tls->resumed()) metrics_.upstream_tls_resumed.Add();
  // The peer must be the service this attempt is for: a certificate from
  // the mesh CA is not enough, or any sidecar could answer for any service.
  // An h2 connection serves many exchanges of the service it was opened for.
  const config::Cluster* cluster = u.client != kNone ? clients_[u.client].ex.cluster : nullptr;
  std::string_view identity = cluster != nullptr ? std::string_view(cluster->identity) : "";
  if (u.h2 != nullptr) identity = u.h2->identity;
  if (!identity.empty() || u.h2 != nullptr) {
    if (u.tls->peer_identity() != identity) {
      metrics_.upstream_tls_failed.Add();
      UpstreamFailed(up, policy::Fault::kUpstreamIdentityMismatch);
      return false;
    }
  }
  if (u.h2 != nullptr && u.tls->alpn() != "h2") {
    // An HTTP/2 session toward a peer that did not agree to it in ALPN
    // would be read as garbage: the service's `protocol: h2` is wrong.
    UpstreamFailed(up, policy::Fault::kUpstreamBadResponse, "the upstream did not accept h2 in ALPN");
    return false;
  }
  MarkDirty(u, up);  // the request waiting in `out` goes now, sealed
  FollowConnection(up);
  return true;
}

}  // namespace hms::proxy
