// What both sides of src/h2 need of nghttp2 (internal to src/h2): its
// allocator over the core's MemPool, views of its buffers, and header lists
// built in one pool block. Only the sessions' .cc files include it.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hms/h2/mem_pool.h"
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

// RFC 9113 §8.2.2: never sent on an HTTP/2 connection.
inline bool ConnectionSpecific(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"};
  for (std::string_view n : kNames) {
    if (http::EqualsIgnoreCase(name, n)) return true;
  }
  return false;
}

// Pseudo-headers first, then `fields` with names lowercased (RFC 9113
// §8.2.1), those `drop` says so left out. nghttp2 copies the array and its
// bytes on submit, so both live in one pool block (Free it after the call,
// or keep it, as trailers are kept until sent).
template <typename Drop>
nghttp2_nv* BuildFields(MemPool* pool, const http::Header* pseudo, uint16_t pseudo_count,
                        const http::Header* fields, uint16_t count, Drop drop, size_t* nv_count) {
  size_t bytes = (pseudo_count + count + 1u) * sizeof(nghttp2_nv);
  for (uint16_t i = 0; i < pseudo_count; ++i) bytes += pseudo[i].name.size() + pseudo[i].value.size();
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
                          name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
    text += value.size();
  };
  for (uint16_t i = 0; i < pseudo_count; ++i) add(pseudo[i].name, pseudo[i].value);
  for (uint16_t i = 0; i < count; ++i) {
    if (!drop(fields[i].name, fields[i].value)) add(fields[i].name, fields[i].value);
  }
  *nv_count = k;
  return nva;
}

}  // namespace hms::h2::glue
