// Metadata memory: the process default hooks, the prefixed allocations
// behind NUMAHEAP_METADATA_NEW_DELETE, and the fixed-region allocator.
#include "numaheap/metadata.h"

#include <atomic>
#include <cstring>

#include "allocator/platform/spin_lock.h"

#if NUMAHEAP_HOSTED
// The host library's default (allocator/platform/host/malloc_metadata.cc).
extern "C" const numaheap_metadata_hooks numaheap_host_metadata_hooks;
#endif

namespace {

// The embedder's choice; null = the build's default. Written once at start-up
// (see platform_contract.h); atomic so a late set is at least not torn.
std::atomic<const numaheap_metadata_hooks*> g_default{nullptr};

// In front of every prefixed allocation, right below the object.
struct Prefix {
  const numaheap_metadata_hooks* hooks;
  std::size_t bytes;   // what hooks->alloc was asked for
  std::size_t offset;  // from the allocation's start to the object
};

}  // namespace

extern "C" void numaheap_set_default_metadata(const numaheap_metadata_hooks* hooks) {
  g_default.store(hooks, std::memory_order_release);
}

extern "C" const numaheap_metadata_hooks* numaheap_default_metadata(void) {
  const numaheap_metadata_hooks* h = g_default.load(std::memory_order_acquire);
  if (h) return h;
#if NUMAHEAP_HOSTED
  return &numaheap_host_metadata_hooks;
#else
  return nullptr;
#endif
}

namespace numaheap::detail {

void* metadata_new(const MetadataHooks* hooks, std::size_t bytes, std::size_t align) noexcept {
  if (!hooks || !hooks->alloc || align == 0 || (align & (align - 1)) || align > 4096) return nullptr;
  if (align < alignof(Prefix)) align = alignof(Prefix);
  // The object sits at the first multiple of `align` that leaves room for
  // the prefix below it.
  const std::size_t offset = (sizeof(Prefix) + align - 1) & ~(align - 1);
  if (bytes > (~std::size_t{0} >> 1) - offset) return nullptr;
  const std::size_t total = offset + bytes;
  auto* base = static_cast<unsigned char*>(hooks->alloc(hooks->ctx, total, align, NUMAHEAP_ANY_NODE));
  if (!base) return nullptr;
  unsigned char* obj = base + offset;
  Prefix p{hooks, total, offset};
  std::memcpy(obj - sizeof(Prefix), &p, sizeof p);
  return obj;
}

void metadata_delete(void* obj) noexcept {
  if (!obj) return;
  Prefix p;
  std::memcpy(&p, static_cast<unsigned char*>(obj) - sizeof(Prefix), sizeof p);
  p.hooks->release(p.hooks->ctx, static_cast<unsigned char*>(obj) - p.offset, p.bytes);
}

}  // namespace numaheap::detail

// ---------------------------------------------------------------------------
// Fixed-region allocator. The region starts with a RegionState; the rest is
// a sequence of blocks, each a multiple of kGrain bytes. Free blocks form a
// singly linked list sorted by address; freeing coalesces with both
// neighbours. Allocation is first fit. Allocated blocks have no header: the
// hooks' release passes the size back, and an alignment gap at the front
// of a block is returned to the free list at once.
namespace {

constexpr std::size_t kGrain = 64;  // every block start and size is a multiple

struct FreeBlock {
  std::size_t bytes;  // this block's size, a multiple of kGrain
  FreeBlock* next;    // next free block at a higher address, or null
};

struct RegionState {
  numaheap::SpinLock lock;      // guards everything below
  unsigned char* begin;         // first block byte
  unsigned char* end;           // one past the last
  FreeBlock* free_list;         // by address
  std::size_t used;             // bytes handed out (rounded to kGrain)
  bool zeroed;                  // free memory reads as zero
};

std::size_t round_grain(std::size_t b) noexcept { return (b + kGrain - 1) & ~(kGrain - 1); }

// Puts [p, p + bytes) back, coalescing. Caller holds the lock.
void region_insert(RegionState* r, unsigned char* p, std::size_t bytes) noexcept {
  FreeBlock** link = &r->free_list;
  FreeBlock* prev = nullptr;
  while (*link && reinterpret_cast<unsigned char*>(*link) < p) {
    prev = *link;
    link = &(*link)->next;
  }
  FreeBlock* next = *link;
  auto* b = reinterpret_cast<FreeBlock*>(p);
  b->bytes = bytes;
  b->next = next;
  if (next && p + bytes == reinterpret_cast<unsigned char*>(next)) {
    b->bytes += next->bytes;
    b->next = next->next;
  }
  if (prev && reinterpret_cast<unsigned char*>(prev) + prev->bytes == p) {
    prev->bytes += b->bytes;
    prev->next = b->next;
  } else {
    *link = b;
  }
}

void* region_alloc(void* ctx, std::size_t bytes, std::size_t align, std::uint32_t) noexcept {
  auto* r = static_cast<RegionState*>(ctx);
  if (bytes == 0) bytes = 1;
  if (align < kGrain) align = kGrain;
  if (align > 4096 || (align & (align - 1)) || bytes > (~std::size_t{0} >> 2)) return nullptr;
  const std::size_t need = round_grain(bytes);
  unsigned char* out = nullptr;
  {
    numaheap::SpinGuard g(r->lock);
    FreeBlock** link = &r->free_list;
    for (; *link; link = &(*link)->next) {
      auto* start = reinterpret_cast<unsigned char*>(*link);
      const std::size_t size = (*link)->bytes;
      const auto addr = reinterpret_cast<std::uintptr_t>(start);
      const std::size_t gap = ((addr + align - 1) & ~(align - 1)) - addr;  // multiple of kGrain
      if (gap + need > size) continue;
      FreeBlock* next = (*link)->next;
      *link = next;  // unlink, then give back what is left on either side
      const std::size_t tail = size - gap - need;
      if (gap) region_insert(r, start, gap);
      if (tail) region_insert(r, start + gap + need, tail);
      out = start + gap;
      r->used += need;
      break;
    }
  }
  if (!out) return nullptr;
  // Free blocks carry a FreeBlock header; fresh memory must read as zero.
  if (r->zeroed) std::memset(out, 0, sizeof(FreeBlock));
  else std::memset(out, 0, need);
  return out;
}

void region_release(void* ctx, void* p, std::size_t bytes) noexcept {
  if (!p) return;
  auto* r = static_cast<RegionState*>(ctx);
  const std::size_t size = round_grain(bytes ? bytes : 1);
  numaheap::SpinGuard g(r->lock);
  // What was handed out is dirty now: from here on, zero on allocation.
  r->zeroed = false;
  r->used -= size;
  region_insert(r, static_cast<unsigned char*>(p), size);
}

}  // namespace

extern "C" int numaheap_region_init(void* base, std::size_t bytes, int zeroed, numaheap_metadata_hooks* out) {
  const auto addr = reinterpret_cast<std::uintptr_t>(base);
  if (!base || !out || (addr & 4095) || bytes < 64 * 1024) return -1;
  auto* r = static_cast<RegionState*>(base);
  ::new (r) RegionState();
  r->begin = static_cast<unsigned char*>(base) + round_grain(sizeof(RegionState));
  r->end = static_cast<unsigned char*>(base) + (bytes & ~(kGrain - 1));
  r->free_list = nullptr;
  r->used = 0;
  r->zeroed = zeroed != 0;
  region_insert(r, r->begin, static_cast<std::size_t>(r->end - r->begin));
  out->ctx = r;
  out->alloc = region_alloc;
  out->release = region_release;
  return 0;
}

extern "C" std::size_t numaheap_region_used(const numaheap_metadata_hooks* h) {
  if (!h || h->alloc != region_alloc) return 0;
  auto* r = static_cast<RegionState*>(h->ctx);
  numaheap::SpinGuard g(r->lock);
  return r->used;
}

extern "C" std::size_t numaheap_region_largest_free(const numaheap_metadata_hooks* h) {
  if (!h || h->alloc != region_alloc) return 0;
  auto* r = static_cast<RegionState*>(h->ctx);
  numaheap::SpinGuard g(r->lock);
  std::size_t best = 0;
  for (FreeBlock* b = r->free_list; b; b = b->next)
    if (b->bytes > best) best = b->bytes;
  return best;
}
