#include "hms/h2/mem_pool.h"

#include <bit>
#include <cstdlib>
#include <cstring>

#include "hms/common/check.h"
#include "hms/obs/alloc_hook.h"

namespace hms::h2 {

// Every block starts with this header; the caller gets the bytes after it.
// 16 bytes keep the caller's pointer 16-byte aligned, as malloc's is.
struct MemPool::Header {
  uint32_t magic;  // catches a free of a pointer that is not ours
  uint8_t cls;     // size class, or kOversize
  uint8_t pad[3];
  uint64_t size;  // usable bytes (the class size, or the oversize request)
};

namespace {

constexpr uint32_t kMagic = 0x68325030;  // "h2P0"
constexpr size_t kSmallest = 32;

// nghttp2's outbound frame buffer (9-byte header, a pad length byte, a
// 16 KiB payload), which every session holds for its life: a class of its
// own, or each idle connection would waste 8 KiB of the 24 KiB class.
constexpr uint8_t kFrameBufferClass = MemPool::kClasses - 1;
constexpr size_t kFrameBufferBytes = 16384 + 64;

// Class c: 32 << c/2, times 1.5 for odd c: 32, 48, 64, 96, ... 256 KiB; and
// the frame buffer's.
constexpr size_t SizeOfClass(uint8_t c) {
  if (c == kFrameBufferClass) return kFrameBufferBytes;
  const size_t base = kSmallest << (c / 2);
  return (c % 2) == 0 ? base : base + base / 2;
}

// Counts a malloc on this pool and on the thread's allocation counter.
void CountHeap(uint64_t* heap_allocations) {
  ++*heap_allocations;
  if (obs::Counter* c = obs::g_thread_alloc_counter) c->Add();
}

}  // namespace

uint8_t MemPool::ClassOf(size_t n) noexcept {
  if (n <= kSmallest) return 0;
  if (n > 16384 && n <= kFrameBufferBytes) return kFrameBufferClass;
  if (n > SizeOfClass(kClasses - 2)) return kOversize;
  // 2^(k-1) < n <= 2^k; the classes between are 1.5 * 2^(k-1) and 2^k.
  const int k = std::bit_width(n - 1);
  const size_t three_quarters = size_t{3} << (k - 2);
  return static_cast<uint8_t>(n <= three_quarters ? 2 * (k - 6) + 1 : 2 * (k - 5));
}

size_t MemPool::ClassSize(uint8_t c) noexcept { return SizeOfClass(c); }

MemPool::~MemPool() {
  for (FreeBlock*& head : free_) {
    while (head != nullptr) {
      FreeBlock* b = head;
      head = b->next;
      std::free(reinterpret_cast<Header*>(b) - 1);
    }
  }
}

void* MemPool::Alloc(size_t n) noexcept {
  static_assert(sizeof(Header) == 16);
  const uint8_t cls = ClassOf(n);
  Header* h = nullptr;
  size_t usable = n;
  if (cls != kOversize) {
    usable = SizeOfClass(cls);
    if (FreeBlock* b = free_[cls]; b != nullptr) {
      free_[cls] = b->next;
      bytes_cached_ -= usable;
      h = reinterpret_cast<Header*>(b) - 1;
    }
  }
  if (h == nullptr) {
    // Warm-up (or an oversize request): the only place this pool mallocs.
    h = static_cast<Header*>(std::malloc(sizeof(Header) + usable));
    if (h == nullptr) return nullptr;
    CountHeap(&heap_allocations_);
    h->magic = kMagic;
    h->cls = cls;
    h->size = usable;
  }
  ++blocks_in_use_;
  bytes_in_use_ += usable;
  return h + 1;
}

void* MemPool::Calloc(size_t count, size_t size) noexcept {
  if (size != 0 && count > SIZE_MAX / size) return nullptr;
  void* p = Alloc(count * size);
  if (p != nullptr) std::memset(p, 0, count * size);
  return p;
}

void* MemPool::Realloc(void* p, size_t n) noexcept {
  if (p == nullptr) return Alloc(n);
  Header* h = static_cast<Header*>(p) - 1;
  HMS_CHECK(h->magic == kMagic);
  if (n <= h->size && h->cls != kOversize) return p;  // the class already has room
  void* q = Alloc(n);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, h->size < n ? h->size : n);
  Free(p);
  return q;
}

void MemPool::Free(void* p) noexcept {
  if (p == nullptr) return;
  Header* h = static_cast<Header*>(p) - 1;
  HMS_CHECK(h->magic == kMagic);
  --blocks_in_use_;
  bytes_in_use_ -= h->size;
  if (h->cls == kOversize) {
    std::free(h);
    return;
  }
  auto* b = static_cast<FreeBlock*>(p);
  b->next = free_[h->cls];
  free_[h->cls] = b;
  bytes_cached_ += h->size;
}

}  // namespace hms::h2
