// The drain (docs/engine.md, "Drain"): a core stops accepting, closes what
// is idle and lets in-flight exchanges finish; at the deadline it closes what
// is left (CloseEverything), and after its loop it lets go of what the
// connections the grace did not see freed still hold (ReleaseAll). The loop
// (worker.cc) stops once every connection is gone or the grace ran out.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "src/proxy/worker.h"

namespace hms::proxy {

void Worker::BeginDrain(bool handed_over) {
  draining_ = true;
  // A timer, not a check after each wake-up: a core with nothing else
  // armed would otherwise sleep through its deadline.
  drain_timer_.kind = kTimerDrain;
  timers_.Arm(&drain_timer_, now_, config_.drain_timeout_ms);
  if (handed_over) {
    // The sockets serve the new process now: a shutdown would end them
    // there too. Cancelling the accepts leaves queued connections to it;
    // one accepted meanwhile is served here (OnAccept).
    handed_over_ = true;
    for (uint16_t i = 0; i < listen_fds_.size(); ++i) {
      if (accept_armed_[i]) Cancel(kOpAccept, 0, i);
      close(listen_fds_[i]);
      listen_fds_[i] = -1;
    }
  } else {
    // Stop accepting: the multishot accepts end with an error.
    for (int fd : listen_fds_) shutdown(fd, SHUT_RDWR);
  }
  for (uint32_t i = 0; i < clients_.capacity(); ++i) {
    Client& c = clients_[i];
    if (c.h2 != nullptr && c.state != Client::State::kClosing) {
      // GOAWAY: no new streams, the open ones finish (FlushH2 closes the
      // connection once the session is done).
      c.h2->session.Drain();
      MarkDirty(c, i);
      continue;
    }
    if (c.parent != kNone) continue;  // a stream: its connection drains it
    if (c.state == Client::State::kHead && !c.ex.active() && c.queued() == 0 && c.in.empty()) {
      if (handed_over) {
        // A handshake in progress keeps its header_timeout.
        if (c.tls != nullptr && !c.tls->handshake_done()) continue;
        timers_.Arm(&c.timer, now_, std::min<uint64_t>(kHandOverIdleMs, config_.idle_timeout_ms));
      } else {
        CloseClient(i, false);
      }
    }
  }
  for (uint32_t i = 0; i < upstreams_.capacity(); ++i) {
    if (upstreams_[i].state == Upstream::State::kIdle) CloseUpstream(i);
    // An h2 connection with no stream is idle too (one with streams closes
    // when its last one ends: DetachH2Stream).
    const Upstream& u = upstreams_[i];
    if (u.h2 != nullptr && u.state != Upstream::State::kFree && u.h2->streams.empty()) {
      CloseUpstream(i);
    }
    // A stream whose answer went whole, waiting for its END_STREAM
    // (H2UpStream::Release): nothing more is due on it.
    if (u.h2_parent != kNone && u.client == kNone && u.state == Upstream::State::kBusy) {
      CloseUpstream(i);
    }
  }
}

void Worker::CloseEverything() {
  for (uint32_t i = 0; i < clients_.capacity(); ++i) {
    if (clients_[i].state != Client::State::kFree) CloseClient(i, false);
  }
  for (uint32_t i = 0; i < upstreams_.capacity(); ++i) {
    if (upstreams_[i].state != Upstream::State::kFree) CloseUpstream(i);
  }
}

// The drain deadline, then the end of the grace after it.
void Worker::OnDrainTimer() {
  if (drain_forced_) {
    stop_ = true;  // the grace is over: what is left is closed after the loop
  } else {
    drain_forced_ = true;
    CloseEverything();
    timers_.Arm(&drain_timer_, now_, kDrainGraceMs);
  }
}

// After the loop: what connections still hold (only those the drain's grace
// did not see freed) goes back, descriptors closed and blocks to the pool,
// which frees them with the worker; the process exits with nothing leaked.
// No completion is read after this: the ring is torn down with the worker.
void Worker::ReleaseAll() {
  for (uint32_t i = 0; i < clients_.capacity(); ++i) {
    Client& c = clients_[i];
    if (c.state == Client::State::kFree) continue;
    if (c.ex.head != nullptr) blocks_.Put(c.ex.head);
    c.ex.head = nullptr;
    c.ex.replay.Clear(&blocks_);
    c.h2.reset();
    c.stream.Clear(&blocks_);
    Release(c, inputs_, blocks_);
  }
  fleet_.Release();
  for (uint32_t i = 0; i < upstreams_.capacity(); ++i) {
    Upstream& u = upstreams_[i];
    if (u.state == Upstream::State::kFree) continue;
    Release(u, inputs_, blocks_);
  }
}

}  // namespace hms::proxy
