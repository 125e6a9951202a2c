// The WebSocket tunnel (docs/engine.md "WebSocket"), top to bottom: the
// upgrade judged at admission, the upstream's 101 checked and sent on, bytes
// carried both ways with back-pressure, each side's FIN passed on, and the
// end (both directions shut, or the idle timeout). The tunnel is an
// exchange that stays kStreaming; its two connections keep their own state
// machines (downstream.cc, upstream.cc), which hand over to the calls here
// where a tunnel differs. The handshake's rules are websocket.h's.
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>

#include "hms/common/check.h"
#include "src/proxy/websocket.h"
#include "src/proxy/wire.h"
#include "src/proxy/worker.h"

namespace hms::proxy {

policy::Fault Worker::JudgeWebSocket(uint32_t slot) {
  Exchange& ex = clients_[slot].ex;
  const UpgradeVerdict v = JudgeUpgrade(req_);
  if (v.kind != UpgradeKind::kWebSocket) return policy::Fault::kNone;  // others are dropped
  if (v.rule != WebSocketRule::kNone) {
    const std::string_view rule = WebSocketRuleToken(v.rule);
    const std::string_view why = WebSocketRuleText(v.rule);
    std::snprintf(refusal_.detail, sizeof refusal_.detail, "bad websocket upgrade (%.*s): %.*s",
                  static_cast<int>(rule.size()), rule.data(), static_cast<int>(why.size()),
                  why.data());
    Refuse(policy::Fault::kBadWebSocketUpgrade, refusal_.detail);
    refusal_.answer.status = WebSocketRuleStatus(v.rule);
    if (v.rule == WebSocketRule::kVersion) {
      std::snprintf(refusal_.fields, sizeof refusal_.fields, "sec-websocket-version: 13\r\n");
    }
    refusal_.close = true;  // the client meant to switch protocols: start over
    return policy::Fault::kBadWebSocketUpgrade;
  }
  if (!ex.route->websocket) {
    Refuse(policy::Fault::kWebSocketOff);
    refusal_.close = true;
    return policy::Fault::kWebSocketOff;
  }
  ex.websocket = true;
  WebSocketAccept(v.key, ex.ws_accept);
  return policy::Fault::kNone;
}

bool Worker::OpenTunnel(uint32_t slot, const http::ResponseHead& r) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  metrics_.ObserveUpstream(ex.route_key, (now_ - ex.attempt_start) / 1000);
  const UpgradeAnswerRule rule = JudgeUpgradeAnswer(r, std::string_view(ex.ws_accept, kAcceptSize));
  const HopByHop hop_by_hop(r.headers, r.header_count);
  std::string_view detail = UpgradeAnswerText(rule);
  size_t head = 0;
  if (rule == UpgradeAnswerRule::kNone && hop_by_hop.too_many_options()) {
    detail = "the upstream's 101 names too many Connection options";
  } else if (rule == UpgradeAnswerRule::kNone) {
    const std::string_view tid = ex.trace.external_len > 0
                                     ? std::string_view(ex.trace.external_id, ex.trace.external_len)
                                     : std::string_view(ex.trace.trace_id, 32);
    head = WriteSwitchingHead(r, hop_by_hop, tid, Down(c).Reserve(blocks_.block_size()),
                              blocks_.block_size());
    if (head == 0) detail = "the upstream's 101 with the gateway's fields does not fit its buffer";
  }
  if (head == 0) {
    // The upstream switched protocols wrongly: answered here, never retried
    // (it may already speak WebSocket on that connection), which closes.
    DetachUpstream(slot);
    ReportEndpoint(ex, policy::Fault::kUpstreamBadUpgrade);
    ReportOutcome(ex, policy::Fault::kUpstreamBadUpgrade);
    LocalResponse(slot, policy::AnswerFor(policy::Fault::kUpstreamBadUpgrade, detail), true);
    FinishExchange(slot);
    return false;
  }
  ReportEndpoint(ex, policy::Fault::kNone);
  ReportOutcome(ex, policy::Fault::kNone);
  ex.HeadForwarded();
  ex.status = c.parent != kNone ? 200 : 101;  // an h2 stream's client sees a 200 (RFC 8441 §5)
  Down(c).Commit(head);  // an h2 stream turns the 101 into its 200 (h2_down.cc)
  ex.bytes_out += head;
  c.state = Client::State::kTunnel;
  Tunnel& t = ex.tunnel;
  t.active = true;
  t.opened = now_;
  t.idle_ms =
      ex.route->websocket_idle_ms != 0 ? ex.route->websocket_idle_ms : config_.idle_timeout_ms;
  timers_.Arm(&ex.timer, now_, t.idle_ms);
  metrics_.websocket_tunnels.Add();
  metrics_.websocket_active.Add();
  if (c.eof) t.to_upstream = TunnelHalf::kDraining;  // the client half-closed already
  repump_.push_back(slot);  // what the client sent behind its handshake, held until now
  return true;
}

int64_t Worker::TunnelToUpstream(uint32_t slot, const char* p, size_t n) {
  Exchange& ex = clients_[slot].ex;
  UpstreamLeg* leg = Leg(ex);
  if (leg == nullptr) return static_cast<int64_t>(n);  // ending: nobody to carry it to
  if (leg->Full()) return kBlocked;  // resumed when the upstream's send drains
  leg->Send(p, n);
  ex.bytes_in += n;
  metrics_.websocket_bytes_to_upstream.Add(n);
  timers_.Arm(&ex.timer, now_, ex.tunnel.idle_ms);
  return static_cast<int64_t>(n);
}

int64_t Worker::TunnelToClient(uint32_t slot, const char* p, size_t n) {
  Client& c = clients_[slot];
  Downstream& down = Down(c);
  if (down.Full()) return kBlocked;  // resumed when the client has taken what is queued
  down.Send(p, n);
  c.ex.bytes_out += n;
  metrics_.websocket_bytes_to_client.Add(n);
  timers_.Arm(&c.ex.timer, now_, c.ex.tunnel.idle_ms);
  return static_cast<int64_t>(n);
}

void Worker::TunnelEof(uint32_t slot, bool from_client) {
  Exchange& ex = clients_[slot].ex;
  TunnelHalf& half = from_client ? ex.tunnel.to_upstream : ex.tunnel.to_client;
  if (half == TunnelHalf::kOpen) half = TunnelHalf::kDraining;
  // A receive armed again would read the same EOF at once, every pass.
  UpstreamLeg* leg = Leg(ex);
  if (!from_client && leg != nullptr) leg->StopReading();
  TunnelProgress(slot);
}

template <typename Conn>
bool Worker::ShutWrite(Conn& conn, uint32_t id, bool* notified) {
  if (conn.send_inflight || !conn.out.empty()) return false;
  if (conn.tls != nullptr && !*notified) {
    // close_notify first (RFC 8446 §6.1): a TLS peer tells a truncation
    // from an end by it.
    tls::Wire w{nullptr, 0, &conn.cipher_out, &blocks_};
    conn.tls->Shutdown(w);
    *notified = true;
    MarkDirty(conn, id);
  }
  if (!conn.cipher_out.empty()) return false;
  shutdown(conn.fd, SHUT_WR);
  return true;
}

void Worker::TunnelProgress(uint32_t slot) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  UpstreamLeg* leg = Leg(ex);
  if (c.state != Client::State::kTunnel || leg == nullptr) return;
  Tunnel& t = ex.tunnel;
  // An h2 stream has no socket: its held input is its DATA queue, and its
  // FIN an END_STREAM, which goes behind the DATA already queued.
  const bool stream = c.parent != kNone;
  const bool client_input =
      stream ? !c.stream.body.empty() : !c.in.empty() || c.cipher_in.held_head != kNone;
  if (NextHalf(t.to_upstream, client_input, leg->Sending()) == TunnelHalf::kShut &&
      leg->ShutSend(&t.upstream_notified)) {
    t.to_upstream = TunnelHalf::kShut;
  }
  if (NextHalf(t.to_client, leg->HoldsInput(), c.send_inflight || !c.out.empty()) ==
          TunnelHalf::kShut &&
      (stream ? EndTunnelStream(slot) : ShutWrite(c, slot, &t.client_notified))) {
    t.to_client = TunnelHalf::kShut;
  }
  // Both FINs passed on, every byte delivered: nothing is left to linger for.
  if (t.done()) CloseClient(slot, false);
}

bool Worker::EndTunnelStream(uint32_t slot) {
  H2Stream& st = clients_[slot].stream;
  if (!st.ended) clients_[st.conn].h2->session.SendData(st.id, nullptr, 0, true);
  st.ended = true;
  MarkDirty(clients_[st.conn], st.conn);
  return true;
}

void Worker::OnTunnelIdle(uint32_t slot) {
  Exchange& ex = clients_[slot].ex;
  metrics_.websocket_idle_closed.Add();
  constexpr std::string_view kReason = "websocket_idle_timeout";  // the access log's stamp
  ex.reason_len = static_cast<uint8_t>(std::min(kReason.size(), sizeof ex.reason));
  std::copy_n(kReason.data(), ex.reason_len, ex.reason);
  CloseClient(slot, false);  // ends the exchange; its upstream connection closes with it
}

bool Upstream::ShutSend(bool* notified) noexcept { return worker->ShutWrite(*this, slot, notified); }

}  // namespace hms::proxy
