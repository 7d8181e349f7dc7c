// Metadata hooks for out-of-memory tests: malloc-backed, counting every
// allocation and release, and failing on demand (after N allocations, or
// every Nth). Tests install them per object or as the process default and
// check that a failed creation gave back all it took (allocs == frees,
// bytes balance).
#pragma once

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "numaheap/metadata.h"

namespace numaheap::test {

class OomHooks {
 public:
  OomHooks() noexcept {
    hooks_.ctx = this;
    hooks_.alloc = &OomHooks::alloc;
    hooks_.release = &OomHooks::release;
  }
  OomHooks(const OomHooks&) = delete;
  OomHooks& operator=(const OomHooks&) = delete;

  const MetadataHooks* hooks() const noexcept { return &hooks_; }

  // Allocation number k (counting from 0 after reset) fails when
  // k >= fail_after (fail_after < 0: never), or when every > 0 and
  // (k + 1) % every == 0.
  void reset(long fail_after = -1, long every = 0) noexcept {
    calls_ = 0;
    fail_after_ = fail_after;
    every_ = every;
  }
  long calls() const noexcept { return calls_.load(); }
  long live() const noexcept { return allocs_.load() - frees_.load(); }
  long live_bytes() const noexcept { return bytes_.load(); }
  long failures() const noexcept { return failures_.load(); }

 private:
  static void* alloc(void* ctx, std::size_t bytes, std::size_t align, std::uint32_t) {
    auto* self = static_cast<OomHooks*>(ctx);
    const long k = self->calls_.fetch_add(1);
    if ((self->fail_after_ >= 0 && k >= self->fail_after_) || (self->every_ > 0 && (k + 1) % self->every_ == 0)) {
      self->failures_.fetch_add(1);
      return nullptr;
    }
    if (align < alignof(std::max_align_t)) align = alignof(std::max_align_t);
    void* p = std::aligned_alloc(align, (bytes + align - 1) / align * align);
    if (!p) return nullptr;
    std::memset(p, 0, bytes);
    self->allocs_.fetch_add(1);
    self->bytes_.fetch_add(static_cast<long>(bytes));
    return p;
  }
  static void release(void* ctx, void* p, std::size_t bytes) {
    auto* self = static_cast<OomHooks*>(ctx);
    self->frees_.fetch_add(1);
    self->bytes_.fetch_sub(static_cast<long>(bytes));
    std::free(p);
  }

  MetadataHooks hooks_{};
  std::atomic<long> calls_{0}, allocs_{0}, frees_{0}, bytes_{0}, failures_{0};
  std::atomic<long> fail_after_{-1}, every_{0};
};

// Makes `hooks` the process default for a scope.
class DefaultMetadataScope {
 public:
  explicit DefaultMetadataScope(const MetadataHooks* hooks) noexcept { numaheap_set_default_metadata(hooks); }
  ~DefaultMetadataScope() { numaheap_set_default_metadata(nullptr); }
  DefaultMetadataScope(const DefaultMetadataScope&) = delete;
  DefaultMetadataScope& operator=(const DefaultMetadataScope&) = delete;
};

}  // namespace numaheap::test
