// The allocator of hms-gateway: mimalloc, with every operator new counted on
// the thread that registered a counter (core threads: see obs/alloc_hook.h),
// so a test can prove the steady-state data path allocates nothing.
#include <cstdlib>
#include <new>

#ifdef HMS_SANITIZED
// Sanitizer builds: the sanitizer's allocator must see every block.
#define mi_malloc std::malloc
#define mi_free std::free
#define mi_malloc_aligned(n, a) std::aligned_alloc((a), (((n) + (a)-1) / (a)) * (a))
#else
#include <mimalloc.h>
#endif

#include "hms/obs/alloc_hook.h"

namespace {

inline void Count() noexcept {
  if (hms::obs::Counter* c = hms::obs::g_thread_alloc_counter) c->Add();
}

void* Allocate(std::size_t n) {
  Count();
  void* p = mi_malloc(n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* AllocateAligned(std::size_t n, std::align_val_t a) {
  Count();
  void* p = mi_malloc_aligned(n, static_cast<std::size_t>(a));
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t n) { return Allocate(n); }
void* operator new[](std::size_t n) { return Allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  Count();
  return mi_malloc(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  Count();
  return mi_malloc(n);
}
void* operator new(std::size_t n, std::align_val_t a) { return AllocateAligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return AllocateAligned(n, a); }
void operator delete(void* p) noexcept { mi_free(p); }
void operator delete[](void* p) noexcept { mi_free(p); }
void operator delete(void* p, std::size_t) noexcept { mi_free(p); }
void operator delete[](void* p, std::size_t) noexcept { mi_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { mi_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { mi_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { mi_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { mi_free(p); }
