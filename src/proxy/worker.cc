#include "src/proxy/worker.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "hms/common/check.h"
#include "hms/obs/alloc_hook.h"
#include "src/proxy/admission.h"
#include "src/proxy/wire.h"

namespace hms::proxy {
namespace {

// Bounded work per pass (STYLE §5).
constexpr uint32_t kMaxCqesPerPass = 1024;
constexpr uint32_t kMaxMailboxPerPass = 64;
constexpr uint32_t kMaxTimerTicksPerPass = 64;

size_t InputCapacity(const config::GatewayConfig& c) {
  // A whole head must fit, plus room for what the proxy adds to it (kHeadRoom);
  // and a whole receive buffer, so a held buffer can always move into an
  // empty block.
  return std::max<size_t>({16384, c.max_header_bytes + kHeadRoom, c.buffer_size});
}

}  // namespace

Worker::Worker(uint32_t index, uint32_t cores, const config::GatewayConfig& config,
               std::vector<int> listen_fds, std::vector<uint16_t> listen_of, int cpu)
    : index_(index),
      cores_(cores),
      config_(config),
      listen_fds_(std::move(listen_fds)),
      listen_of_(std::move(listen_of)),
      cpu_(cpu),
      blocks_(static_cast<uint32_t>(InputCapacity(config))),
      timers_(core::Now()) {
  accept_armed_.assign(listen_fds_.size(), false);
  path_scratch_size_ = static_cast<size_t>(config.max_header_bytes) + 1;
  path_scratch_ = std::make_unique<char[]>(path_scratch_size_);
  path_options_.keep_encoded_slashes = config.keep_encoded_slashes;
  path_options_.merge_slashes = config.merge_slashes;
  rng_ = 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(index + 1) * 0xBF58476D1CE4E5B9ull) ^
         static_cast<uint64_t>(core::Now());
  // Engine::Bind's order: the listeners, then a sidecar's egress listener.
  const size_t listeners =
      config.listeners.size() + (config.role == "sidecar" && !config.egress.empty() ? 1 : 0);
  for (size_t i = 0; i < listeners; ++i) {
    listener_kind_.push_back(config.role != "sidecar"           ? ListenerKind::kEdge
                             : i < config.listeners.size() ? ListenerKind::kInbound
                                                           : ListenerKind::kEgress);
  }
  // Each listener's h2 session config, made once (nghttp2's callbacks and
  // options): a listener with http2 off has none.
  h2_config_.resize(listeners);
  for (size_t i = 0; i < listeners; ++i) {
    const config::ListenerHttp2 h =
        i < config.listeners.size() ? config.listeners[i].http2 : config::ListenerHttp2{};
    if (!h.enabled) continue;
    h2::Limits limits;
    if (h.max_concurrent_streams != 0) limits.max_concurrent_streams = h.max_concurrent_streams;
    if (h.max_header_list_bytes != 0) limits.max_header_list_bytes = h.max_header_list_bytes;
    if (h.header_table_bytes != 0) limits.header_table_bytes = h.header_table_bytes;
    if (h.stream_window_bytes != 0) limits.stream_window_bytes = h.stream_window_bytes;
    if (h.connection_window_bytes != 0) limits.connection_window_bytes = h.connection_window_bytes;
    if (h.resets_burst != 0) limits.resets = {h.resets_burst, h.resets_per_second};
    if (h.control_frames_burst != 0) {
      limits.control_frames = {h.control_frames_burst, h.control_frames_per_second};
    }
    if (h.max_continuations != 0) limits.max_continuations = h.max_continuations;
    if (h.max_empty_frames != 0) limits.max_empty_frames = h.max_empty_frames;
    auto made = h2::ServerConfig::Make(limits, path_options_);
    if (made.ok()) h2_config_[i] = std::move(made.value());
  }
  h2_head_ = std::make_unique<char[]>(blocks_.block_size());
  // Upstream sessions (h2_up.cc): the client side of the same defaults.
  auto client = h2::ClientConfig::Make(h2::Limits{});
  if (client.ok()) h2_client_config_ = std::move(client.value());
  dirty_clients_.reserve(1024);
  coalesce_touched_.reserve(1024);
  dirty_upstreams_.reserve(1024);
  repump_.reserve(1024);
  h2_settle_.reserve(1024);
}

Worker::~Worker() {
  for (SnapshotHold* h : holds_) {
    h->snapshot->Release();
    delete h;
  }
}

int Worker::Start(config::Snapshot* snapshot) {
  // mesh-config is read once per process (a reload keeps it), so the span
  // ring and the sampling ratio are set here, before the core runs.
  recorder_.StartTracing(snapshot->mesh.tracing);
  current_ = new SnapshotHold{snapshot, 0};
  holds_.push_back(current_);
  metrics_.snapshot_version.Set(snapshot->version);
  metrics_.snapshots_held.Set(1);
  thread_ = std::thread([this] { Run(); });
  while (start_result_.load(std::memory_order_acquire) == 1) std::this_thread::yield();
  return start_result_.load();
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

bool Worker::Adopt(int fd, uint16_t listener) {
  HMS_CHECK(listener < listener_kind_.size());  // set at construction, read-only since
  // What accept4(SOCK_NONBLOCK) gives an accepted socket: a send that would
  // block returns EAGAIN to the ring instead of parking in a kernel worker.
  const int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  core::Message m{core::Message::Kind::kAdopt, nullptr};
  m.fd = fd;
  m.listener = listener;
  return mailbox_.Push(m);
}

void Worker::Run() {
  if (cpu_ >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu_, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  }
  char name[16];
  std::snprintf(name, sizeof name, "hms-core-%u", index_);
  pthread_setname_np(pthread_self(), name);
  int rc = SetUp();
  start_result_.store(rc, std::memory_order_release);
  if (rc < 0) return;
  obs::g_thread_alloc_counter = &metrics_.heap_allocations;
  Loop();
  obs::g_thread_alloc_counter = nullptr;
  ReleaseAll();
  for (int fd : listen_fds_)
    if (fd >= 0) close(fd);
  tls::ReleaseThreadCaches();  // this thread verified ECDSA (mTLS, ES256 tokens)
}

int Worker::SetUp() {
  // The ring is created here, on the core's own thread: SINGLE_ISSUER binds it
  // to the creating task.
  core::RingOptions ro;
  ro.entries = config_.ring_entries;
  int rc = ring_.Init(ro);
  if (rc < 0) return rc;
  rc = buffers_.Init(ring_.raw(), 0, config_.buffer_count, config_.buffer_size);
  if (rc < 0) return rc;
  inputs_.Init(config_.buffer_count);
  now_ = core::Now();  // SizeStateFor arms timers (health checks)
  SizeStateFor(*current_->snapshot);
  if (config_.redis) fleet_.Start();
  for (uint16_t i = 0; i < listen_fds_.size(); ++i) ArmAccept(i);
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_read(sqe, mailbox_.wake_fd(), &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(sqe, core::PackUserData(kOpWake, 0, 0));
  return 0;
}

// One pass: (1) submit everything queued and wait for at least one CQE or the
// next timer tick; (2) handle at most kMaxCqesPerPass completions; (3) drain at
// most kMaxMailboxPerPass messages (snapshots, drain); (4) run expired timers;
// (5) resume clients whose pipelined input can progress; (6) queue one send per
// connection with everything it got this pass; (7) give consumed receive
// buffers back to the kernel. Nothing here blocks, locks or allocates once warm.
void Worker::Loop() {
  while (!stop_) {
    int64_t wait_ms = timers_.MillisToNext(now_ == 0 ? core::Now() : now_);
    __kernel_timespec ts{};
    __kernel_timespec* tsp = nullptr;
    if (wait_ms >= 0) {
      ts.tv_sec = wait_ms / 1000;
      ts.tv_nsec = (wait_ms % 1000) * 1'000'000;
      tsp = &ts;
    }
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_submit_and_wait_timeout(ring_.raw(), &cqe, 1, tsp, nullptr);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) {
      std::fprintf(stderr, "hms-gateway: core %u: io_uring wait failed: %s\n", index_,
                   std::strerror(-rc));
    }
    now_ = core::Now();
    timespec wall;
    clock_gettime(recorder_.wants_precise_clock() ? CLOCK_REALTIME : CLOCK_REALTIME_COARSE, &wall);
    now_unix_ = wall.tv_sec;
    recorder_.SetWallClock(static_cast<int64_t>(wall.tv_sec) * 1'000'000'000 + wall.tv_nsec);
    uint32_t seen = 0;
    unsigned head;
    io_uring_for_each_cqe(ring_.raw(), head, cqe) {
      HandleCqe(cqe);
      if (++seen == kMaxCqesPerPass) break;
    }
    io_uring_cq_advance(ring_.raw(), seen);
    DrainMailbox();
    timers_.Expire(now_, kMaxTimerTicksPerPass, [this](core::Timer* t) { OnTimer(t); });
    for (size_t i = 0; i < repump_.size(); ++i) PumpClient(repump_[i]);
    repump_.clear();
    if (fleet_.on()) fleet_.Flush();  // the lease calls of this pass, in one send
    FlushDirty();
    for (uint32_t id : coalesce_touched_) coalesce_[id] = kNone;  // pipelining spans one pass
    coalesce_touched_.clear();
    buffers_.Flush();
    // Done when every connection has gone (the upstream ones too: a closing
    // one still has its last operations in flight), or when the grace after
    // the deadline has run out (drain_timer_).
    if (draining_ && clients_.live() == 0 && upstreams_.live() == 0) stop_ = true;
  }
}

// The generation of the object a completion names, by its op tag: a
// completion whose generation is not the object's current one arrived after
// the object was freed (and maybe reused) and must not touch it.
bool Worker::Current(uint8_t op, uint32_t slot, uint32_t gen) const {
  uint32_t now_gen;
  switch (op) {
    case kOpRecvClient:
    case kOpSendClient:
    case kOpWatchClient:
      now_gen = clients_[slot].gen;
      break;
    case kOpRecvUp:
    case kOpSendUp:
    case kOpConnectUp:
      now_gen = upstreams_[slot].gen;
      break;
    case kOpHealth:
      return health_.Current(slot, gen);
    default:
      return false;
  }
  return (now_gen & 0xffffff) == gen;
}

// A completion goes by its op tag to the object that owns it.
void Worker::HandleCqe(io_uring_cqe* cqe) {
  uint64_t ud = io_uring_cqe_get_data64(cqe);
  uint8_t op = core::UserDataOp(ud);
  uint32_t slot = core::UserDataSlot(ud);
  int res = cqe->res;
  uint32_t flags = cqe->flags;
  switch (op) {
    case kOpAccept:
      OnAccept(static_cast<uint16_t>(slot), res, flags);
      return;
    case kOpWake: {
      io_uring_sqe* sqe = ring_.Sqe();
      io_uring_prep_read(sqe, mailbox_.wake_fd(), &wake_value_, sizeof wake_value_, 0);
      io_uring_sqe_set_data64(sqe, core::PackUserData(kOpWake, 0, 0));
      return;  // the mailbox is drained every pass
    }
    case kOpIgnore:
      return;  // cancellations
    case kOpRedis:
      fleet_.OnCqe(slot, core::UserDataGen(ud), res);  // counts every generation's completions
      return;
    default:
      break;
  }
  if (!Current(op, slot, core::UserDataGen(ud))) {
    // A stale receive still hands us a buffer: give it back.
    if (flags & IORING_CQE_F_BUFFER) {
      buffers_.Recycle(static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT));
    }
    return;
  }
  if (op == kOpSendClient || op == kOpSendUp) {
    // A SEND_ZC completes twice: the result (F_MORE set), then the
    // notification that the kernel let go of our pages. The queue's blocks
    // are recycled only after the second.
    Connection& c = op == kOpSendClient ? static_cast<Connection&>(clients_[slot])
                                        : static_cast<Connection&>(upstreams_[slot]);
    if (flags & IORING_CQE_F_MORE) {
      c.zc_res = res;
      return;
    }
    if (flags & IORING_CQE_F_NOTIF) res = c.zc_res;
  }
  switch (op) {
    case kOpRecvClient:
      OnClientRecv(slot, res, flags);
      return;
    case kOpSendClient:
      OnClientSent(slot, res);
      return;
    case kOpWatchClient:
      OnClientWatch(slot, res, flags);
      return;
    case kOpRecvUp:
      OnUpstreamRecv(slot, res, flags);
      return;
    case kOpSendUp:
      OnUpstreamSent(slot, res);
      return;
    case kOpConnectUp:
      OnConnect(slot, res);
      return;
    case kOpHealth:
      health_.OnCqe(slot, res);
      return;
    default:
      return;
  }
}

void Worker::DrainMailbox() {
  core::Message m;
  for (uint32_t n = 0; n < kMaxMailboxPerPass && mailbox_.Pop(&m); ++n) {
    switch (m.kind) {
      case core::Message::Kind::kSnapshot:
        AdoptSnapshot(static_cast<config::Snapshot*>(m.payload));
        break;
      case core::Message::Kind::kDrain:
      case core::Message::Kind::kHandOver:
        if (!draining_) BeginDrain(m.kind == core::Message::Kind::kHandOver);
        break;
      case core::Message::Kind::kStop:
        stop_ = true;
        break;
      case core::Message::Kind::kAdopt:
        AcceptClient(m.fd, m.listener);
        break;
    }
  }
}

void Worker::OnTimer(core::Timer* t) {
  uint32_t slot = t->owner;
  switch (t->kind) {
    case kTimerClient:
      OnClientTimer(slot);
      return;
    case kTimerExchange:
      OnExchangeTimer(slot);
      return;
    case kTimerUpstream:
      // An h2 connection's timer is its liveness too (h2_up.cc); a pooled
      // HTTP/1.1 connection's is its idle time, a stream left to end its
      // bound (H2UpStream::Release).
      if (upstreams_[slot].h2 != nullptr) {
        OnH2ConnTimer(slot);
      } else {
        CloseUpstream(slot);
      }
      return;
    case kTimerHealth:
      health_.OnTimer(slot);
      return;
    case kTimerRedis:
      fleet_.OnTimer();
      return;
    case kTimerDrain:
      OnDrainTimer();
      return;
    default:
      return;
  }
}

void Worker::MarkDirty(Client& c, uint32_t slot) {
  if (!c.dirty) {
    c.dirty = true;
    dirty_clients_.push_back(slot);
  }
}

template <typename Conn>
void Worker::ArmRecv(Conn& c, uint8_t op, uint32_t slot) {
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_recv_multishot(sqe, c.fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_.group();
  io_uring_sqe_set_data64(sqe, core::PackUserData(op, c.gen, slot));
  c.recv_armed = true;
  c.paused = false;
  ++c.ops;
}
template void Worker::ArmRecv(Client&, uint8_t, uint32_t);
template void Worker::ArmRecv(Upstream&, uint8_t, uint32_t);

template <typename Conn>
void Worker::PauseOrResume(Conn& c, uint8_t op, uint32_t slot) {
  if (c.in.held_head != kNone || c.cipher_in.held_head != kNone) {
    if (c.recv_armed && !c.paused) {
      Cancel(op, c.gen, slot);
      c.paused = true;
    }
  } else if (!c.recv_armed) {
    ArmRecv(c, op, slot);
  }
}
template void Worker::PauseOrResume(Client&, uint8_t, uint32_t);
template void Worker::PauseOrResume(Upstream&, uint8_t, uint32_t);

void Worker::Cancel(uint8_t op, uint32_t gen, uint32_t slot) {
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_cancel64(sqe, core::PackUserData(op, gen, slot), 0);
  io_uring_sqe_set_data64(sqe, core::PackUserData(kOpIgnore, 0, 0));
}

template <typename Conn>
void Worker::QueueSend(Conn& c, uint8_t op, uint32_t slot) {
  core::ByteQueue& q = c.wire();
  int n = q.Gather(c.iov, 8);
  io_uring_sqe* sqe = ring_.Sqe();
  // SEND_ZC pins the pages instead of copying them; it pays only for large
  // payloads on real NICs (on loopback the kernel copies anyway, FIELD-NOTES),
  // hence the threshold, off by default.
  bool zc = config_.zero_copy_min_bytes != 0 && q.size() >= config_.zero_copy_min_bytes;
  if (n == 1) {
    if (zc) {
      io_uring_prep_send_zc(sqe, c.fd, c.iov[0].iov_base, c.iov[0].iov_len, MSG_NOSIGNAL, 0);
    } else {
      io_uring_prep_send(sqe, c.fd, c.iov[0].iov_base, c.iov[0].iov_len, MSG_NOSIGNAL);
    }
  } else {
    c.msg = msghdr{};
    c.msg.msg_iov = c.iov;
    c.msg.msg_iovlen = static_cast<size_t>(n);
    if (zc) {
      io_uring_prep_sendmsg_zc(sqe, c.fd, &c.msg, MSG_NOSIGNAL);
    } else {
      io_uring_prep_sendmsg(sqe, c.fd, &c.msg, MSG_NOSIGNAL);
    }
  }
  io_uring_sqe_set_data64(sqe, core::PackUserData(op, c.gen, slot));
  if (zc) metrics_.zero_copy_sends.Add();
  c.send_inflight = true;
  ++c.ops;
}

void Worker::MarkDirty(Upstream& u, uint32_t up) {
  if (!u.dirty) {
    u.dirty = true;
    dirty_upstreams_.push_back(up);
  }
}

void Worker::FlushDirty() {
  // Flushing an upstream may answer a client (an h2 stream that could not
  // open) and a client may list upstreams: a few rounds until both are done.
  for (int round = 0; round < 4 && !(dirty_clients_.empty() && dirty_upstreams_.empty()); ++round) {
    FlushClients();
    FlushUpstreams();
  }
}

void Worker::FlushClients() {
  // By index: an h2 session's Send may list more connections (its streams'
  // upstreams answer into other sessions' queues).
  for (size_t i = 0; i < dirty_clients_.size(); ++i) {
    const uint32_t slot = dirty_clients_[i];
    Client& c = clients_[slot];
    c.dirty = false;
    // A connection closed for good sends nothing more: its socket is shut down.
    if (c.state == Client::State::kFree || c.phase == Client::Phase::kHard || c.send_inflight ||
        c.fd < 0) {
      continue;
    }
    // What the session has to send joins the queue just before it leaves.
    if (c.h2 != nullptr && c.state != Client::State::kClosing && !FlushH2(slot)) continue;
    // Sealed just before it leaves: the answers of one pass share records.
    if (c.tls != nullptr && !c.out.empty() && c.tls->handshake_done() && !TlsSeal(c)) {
      CloseClient(slot, false);
      continue;
    }
    if (c.wire().empty()) continue;
    QueueSend(c, kOpSendClient, slot);
  }
  dirty_clients_.clear();
}

void Worker::FlushUpstreams() {
  // By index: a stream's bytes going to its session list its connection.
  for (size_t i = 0; i < dirty_upstreams_.size(); ++i) {
    const uint32_t up = dirty_upstreams_[i];
    Upstream& u = upstreams_[up];
    u.dirty = false;
    if (u.h2_parent != kNone) {  // an h2 stream: no socket, its bytes go to the session
      if (u.state != Upstream::State::kFree && u.state != Upstream::State::kClosing) FeedStream(up);
      continue;
    }
    if (u.state == Upstream::State::kFree || u.state == Upstream::State::kConnecting ||
        u.send_inflight) {
      continue;
    }
    if (u.h2 != nullptr && u.state == Upstream::State::kBusy) {
      if (!u.h2->session.Send(&u.out, kMaxQueued)) {
        CloseUpstream(up);
        continue;
      }
      // Streams the session ended as it sent their resets: their exchanges
      // hear of it now, not at the next byte from either side (h2_up.h).
      // That may close the connection (its last stream gone).
      if (u.h2->unsettled) SettleH2Conn(up);
      if (u.state != Upstream::State::kBusy || u.h2 == nullptr) continue;
    }
    // The request is sealed once the handshake is done; until then only
    // handshake messages leave.
    if (u.tls != nullptr && u.tls->handshake_done() && !u.out.empty() && !TlsSeal(u)) {
      UpstreamFailed(up, policy::Fault::kUpstreamTlsFailed, "cannot encrypt toward the upstream");
      continue;
    }
    if (u.wire().empty()) continue;
    QueueSend(u, kOpSendUp, up);
  }
  dirty_upstreams_.clear();
}

uint64_t Worker::Random() noexcept { return NextRandom(&rng_); }

}  // namespace hms::proxy
