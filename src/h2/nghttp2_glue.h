// What both sides of src/h2 need of nghttp2 (internal to src/h2): its
// allocator over the core's MemPool, views of its buffers, header lists
// built in one pool block, and a stream's outgoing body. Only the sessions'
// .cc files include it.
#pragma once

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "hms/core/block_pool.h"
#include "hms/h2/flood_guard.h"
#include "hms/h2/limits.h"
#include "hms/h2/mem_pool.h"
#include "hms/h2/session.h"
#include "hms/http/parser.h"

namespace hms::h2::glue {

// nghttp2_mem over the core's pool.
inline void* PoolMalloc(size_t n, void* pool) { return static_cast<MemPool*>(pool)->Alloc(n); }
inline void PoolFree(void* p, void* pool) { static_cast<MemPool*>(pool)->Free(p); }
inline void* PoolCalloc(size_t count, size_t n, void* pool) {
  return static_cast<MemPool*>(pool)->Calloc(count, n);
}
inline void* PoolRealloc(void* p, size_t n, void* pool) {
  return static_cast<MemPool*>(pool)->Realloc(p, n);
}
inline nghttp2_mem Mem(MemPool* pool) {
  return nghttp2_mem{pool, PoolMalloc, PoolFree, PoolCalloc, PoolRealloc};
}

inline std::string_view View(nghttp2_rcbuf* b) {
  const nghttp2_vec v = nghttp2_rcbuf_get_buf(b);
  return {reinterpret_cast<const char*>(v.base), v.len};
}

// A header block's hold on nghttp2's buffers that its field views point
// into, until the block is delivered (Block: refs[] and ref_count).
template <typename Block>
void Hold(Block* b, nghttp2_rcbuf* name, nghttp2_rcbuf* value) {
  nghttp2_rcbuf_incref(name);
  nghttp2_rcbuf_incref(value);
  b->refs[b->ref_count++] = name;
  b->refs[b->ref_count++] = value;
}

// A header block's end: its references dropped, the block back to the pool.
template <typename Block>
void FreeBlock(MemPool* pool, Block* b) {
  for (uint32_t i = 0; i < b->ref_count; ++i) nghttp2_rcbuf_decref(b->refs[i]);
  b->~Block();
  pool->Free(b);
}

// RFC 9113 §8.2.2: never sent on an HTTP/2 connection.
inline bool ConnectionSpecific(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"};
  for (std::string_view n : kNames) {
    if (http::EqualsIgnoreCase(name, n)) return true;
  }
  return false;
}

// BuildFields' `drop` for responses and trailers: the connection-specific
// fields, whatever their values.
inline bool DropConnectionSpecific(std::string_view name, std::string_view) {
  return ConnectionSpecific(name);
}

// A field whose value is new in every message (a trace id): indexed, it
// would only push useful entries out of the peer's HPACK table, and churn
// ours (RFC 7541 §7.1.3: such fields are better never indexed).
inline bool NeverIndexed(std::string_view name) {
  return http::EqualsIgnoreCase(name, "x-trace-id") ||
         http::EqualsIgnoreCase(name, "traceparent");
}

// Pseudo-headers first, then `fields` with names lowercased (RFC 9113
// §8.2.1), those `drop` says so left out. nghttp2 copies the array and its
// bytes on submit, so both live in one pool block (Free it after the call,
// or keep it, as trailers are kept until sent).
template <typename Drop>
nghttp2_nv* BuildFields(MemPool* pool, const http::Header* pseudo, uint16_t pseudo_count,
                        const http::Header* fields, uint16_t count, Drop drop, size_t* nv_count) {
  size_t bytes = (pseudo_count + count + 1u) * sizeof(nghttp2_nv);
  for (uint16_t i = 0; i < pseudo_count; ++i)
    bytes += pseudo[i].name.size() + pseudo[i].value.size();
  for (uint16_t i = 0; i < count; ++i) bytes += fields[i].name.size() + fields[i].value.size();
  auto* nva = static_cast<nghttp2_nv*>(pool->Alloc(bytes));
  if (nva == nullptr) return nullptr;
  char* text = reinterpret_cast<char*>(nva + pseudo_count + count + 1);
  size_t k = 0;
  const auto add = [&](std::string_view name, std::string_view value) {
    char* n = text;
    for (char c : name) *text++ = c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
    std::memcpy(text, value.data(), value.size());
    nva[k++] = nghttp2_nv{reinterpret_cast<uint8_t*>(n), reinterpret_cast<uint8_t*>(text),
                          name.size(), value.size(),
                          static_cast<uint8_t>(NeverIndexed(name) ? NGHTTP2_NV_FLAG_NO_INDEX
                                                                  : NGHTTP2_NV_FLAG_NONE)};
    text += value.size();
  };
  for (uint16_t i = 0; i < pseudo_count; ++i) add(pseudo[i].name, pseudo[i].value);
  for (uint16_t i = 0; i < count; ++i) {
    if (!drop(fields[i].name, fields[i].value)) add(fields[i].name, fields[i].value);
  }
  *nv_count = k;
  return nva;
}

// What makes Limits unusable for either side (RFC 9113 §6.5.2, §6.9.1, and
// what keeps a session useful); empty when they are fine.
inline std::string_view LimitsError(const Limits& l) {
  if (l.stream_window_bytes == 0 || l.stream_window_bytes > 0x7fffffffu) {
    return "stream_window_bytes must be 1..2147483647";
  }
  if (l.connection_window_bytes < 65535 || l.connection_window_bytes > 0x7fffffffu) {
    return "connection_window_bytes must be 65535..2147483647";
  }
  if (l.max_header_list_bytes < 1024) return "max_header_list_bytes must be at least 1024";
  if (l.header_table_bytes > 65536) return "header_table_bytes must be at most 65536";
  if (l.max_continuations == 0) return "max_continuations must be at least 1";
  if (l.resets.burst == 0 || l.control_frames.burst == 0) {
    return "a flood limit's burst must be at least 1";
  }
  return {};
}

// The defences nghttp2 keeps itself, from the same Limits (flood_guard.h
// has the others), and the engine's backpressure: body bytes are
// acknowledged as the engine passes them on.
inline void SetDefences(nghttp2_option* o, const Limits& l) {
  nghttp2_option_set_no_auto_window_update(o, 1);
  nghttp2_option_set_no_closed_streams(o, 1);
  nghttp2_option_set_max_continuations(o, l.max_continuations);
  nghttp2_option_set_max_outbound_ack(o, l.max_outbound_ack);
  nghttp2_option_set_max_settings(o, l.max_settings_entries);
  nghttp2_option_set_max_deflate_dynamic_table_size(o, 4096);
}

// The GOAWAY code of a session that ends for what mem_recv reported
// (`lib_error`, 0 for none) or a flood a callback saw, counted by kind.
inline ErrorCode FailureCode(Flood flood, int lib_error, Counters* c) {
  switch (flood) {
    case Flood::kResets:
      c->flood_resets.Add();
      return ErrorCode::kEnhanceYourCalm;
    case Flood::kControlFrames:
      c->flood_control_frames.Add();
      return ErrorCode::kEnhanceYourCalm;
    case Flood::kEmptyFrames:
      c->flood_empty_frames.Add();
      return ErrorCode::kEnhanceYourCalm;
    case Flood::kNone:
      break;
  }
  if (lib_error == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
    c->flood_continuations.Add();
    return ErrorCode::kEnhanceYourCalm;
  }
  if (lib_error == NGHTTP2_ERR_FLOODED) {
    c->flood_unread_acks.Add();
    return ErrorCode::kEnhanceYourCalm;
  }
  c->protocol_errors.Add();
  return lib_error == NGHTTP2_ERR_NOMEM ? ErrorCode::kInternalError : ErrorCode::kProtocolError;
}

// Appends what nghttp2 has to send to `out` while it holds less than
// `max_queued`. False on a library failure.
inline bool MemSend(nghttp2_session* ng, core::ByteQueue* out, core::BlockPool* blocks,
                    size_t max_queued) {
  while (out->size() < max_queued) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(ng, &data);
    if (n < 0) return false;
    if (n == 0) break;
    out->Append(blocks, reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  return true;
}

// Moves up to `len` queued body bytes into nghttp2's frame buffer.
inline size_t TakeBody(core::ByteQueue* q, core::BlockPool* blocks, uint8_t* buf, size_t len) {
  size_t n = 0;
  while (n < len && !q->empty()) {
    iovec iov[1];
    q->Gather(iov, 1);
    const size_t take = std::min(len - n, iov[0].iov_len);
    std::memcpy(buf + n, iov[0].iov_base, take);
    q->Consume(blocks, take);
    n += take;
  }
  return n;
}

// A stream's outgoing body, fed by the engine and read by nghttp2's data
// provider: the bytes queued, their end, and trailers (one pool block, kept
// until nghttp2 takes them).
struct Outbox {
  core::ByteQueue out;
  nghttp2_nv* trailers = nullptr;
  size_t trailer_count = 0;
  bool end_queued = false;        // the end (or trailers) is queued
  bool deferred = false;          // the reader waits for more bytes
  bool sendable_pending = false;  // the engine is owed "send more"

  void Release(core::BlockPool* blocks, MemPool* pool) {
    out.Clear(blocks);
    pool->Free(trailers);
    trailers = nullptr;
  }
  void Resume(nghttp2_session* ng, int32_t id) {
    if (!deferred) return;
    deferred = false;
    nghttp2_session_resume_data(ng, id);
  }
  // Body bytes (copied); false once the end is queued.
  bool Append(nghttp2_session* ng, int32_t id, core::BlockPool* blocks, const char* p, size_t n,
              bool end) {
    if (end_queued) return false;
    out.Append(blocks, p, n);
    end_queued = end;
    Resume(ng, id);
    return true;
  }
  // The end, with trailers built in one pool block (nullptr: out of memory).
  bool EndWith(nghttp2_session* ng, int32_t id, nghttp2_nv* nva, size_t count) {
    if (nva == nullptr) return false;
    trailers = nva;
    trailer_count = count;
    end_queued = true;
    Resume(ng, id);
    return true;
  }
  // nghttp2's read callback. `*notify`: the queue ran dry before the end,
  // and the engine has not been told yet (it sends more on OnSendable).
  ssize_t Read(nghttp2_session* ng, int32_t id, core::BlockPool* blocks, uint8_t* buf, size_t len,
               uint32_t* flags, bool* notify) {
    *notify = false;
    const size_t n = TakeBody(&out, blocks, buf, len);
    if (!out.empty()) return static_cast<ssize_t>(n);
    if (end_queued) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (trailers != nullptr) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_submit_trailer(ng, id, trailers, trailer_count);
      }
    } else if (n == 0) {
      deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    } else if (!sendable_pending) {
      sendable_pending = true;
      *notify = true;
    }
    return static_cast<ssize_t>(n);
  }
};

}  // namespace hms::h2::glue
