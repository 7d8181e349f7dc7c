// numaheap: metadata memory in C++ -- how core objects are allocated without
// the C++ runtime.
//
// Every object the core creates (PageAllocator, GuestMemory, ...) and every
// container it grows (numaheap::Vector) takes its memory from a
// numaheap_metadata_hooks (platform_contract.h): the hooks a call names, or
// the process default. Objects handed out through std::unique_ptr carry
// class-scoped operator new/delete (NUMAHEAP_METADATA_NEW_DELETE) so that
// deleting them never reaches the global operator delete: the allocation is
// prefixed with a small header saying which hooks gave it and how big it is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

#include "numaheap/platform_contract.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

using MetadataHooks = numaheap_metadata_hooks;

// The process default (numaheap_set_default_metadata), never null in the
// host library; may be null in the freestanding core.
inline const MetadataHooks* default_metadata() noexcept { return numaheap_default_metadata(); }

namespace detail {
// Raw allocation with a header in front (see the file comment). `align` is
// at most 4096. Null when the hooks are null or out of memory.
void* metadata_new(const MetadataHooks* hooks, std::size_t bytes, std::size_t align) noexcept;
void metadata_delete(void* p) noexcept;
}  // namespace detail

// Constructs a T from `hooks` (nullptr: out of memory). Destroy with
// metadata_destroy.
template <class T, class... Args>
T* metadata_create(const MetadataHooks* hooks, Args&&... args) noexcept {
  void* p = detail::metadata_new(hooks, sizeof(T), alignof(T));
  return p ? ::new (p) T(std::forward<Args>(args)...) : nullptr;
}
template <class T>
void metadata_destroy(T* p) noexcept {
  if (!p) return;
  p->~T();
  detail::metadata_delete(p);
}

// Deleter for std::unique_ptr<T, MetadataDelete> of objects made by
// metadata_create.
struct MetadataDelete {
  template <class T>
  void operator()(T* p) const noexcept { metadata_destroy(p); }
};

// A fixed-size array (shallow const, like std::unique_ptr<T[]>) of default-constructed T (elements need not be
// movable), from metadata hooks. Empty (and !ok()) when out of memory.
template <class T>
class MetadataArray {
 public:
  MetadataArray() noexcept = default;
  MetadataArray(const MetadataArray&) = delete;
  MetadataArray& operator=(const MetadataArray&) = delete;
  MetadataArray(MetadataArray&& o) noexcept { swap(o); }
  MetadataArray& operator=(MetadataArray&& o) noexcept {
    MetadataArray t(std::move(o));
    swap(t);
    return *this;
  }
  ~MetadataArray() { reset(); }

  // Replaces the contents with n default-constructed elements. False (and
  // empty) when out of memory.
  bool allocate(const MetadataHooks* hooks, std::size_t n, std::uint32_t node = NUMAHEAP_ANY_NODE) noexcept {
    reset();
    if (n == 0) return true;
    if (!hooks || !hooks->alloc || n > (~std::size_t{0}) / sizeof(T)) return false;
    void* p = hooks->alloc(hooks->ctx, n * sizeof(T), alignof(T) < 16 ? 16 : alignof(T), node);
    if (!p) return false;
    data_ = static_cast<T*>(p);
    for (std::size_t i = 0; i < n; ++i) ::new (&data_[i]) T();
    size_ = n;
    hooks_ = hooks;
    return true;
  }
  void reset() noexcept {
    if (!data_) return;
    for (std::size_t i = size_; i-- > 0;) data_[i].~T();
    hooks_->release(hooks_->ctx, data_, size_ * sizeof(T));
    data_ = nullptr;
    size_ = 0;
  }
  // Shallow const, as std::unique_ptr<T[]>: the array, not the elements.
  T* get() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  T& operator[](std::size_t i) const noexcept { return data_[i]; }
  explicit operator bool() const noexcept { return data_ != nullptr; }
  T* begin() const noexcept { return data_; }
  T* end() const noexcept { return data_ + size_; }

 private:
  void swap(MetadataArray& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(hooks_, o.hooks_);
  }
  T* data_ = nullptr;
  std::size_t size_ = 0;
  const MetadataHooks* hooks_ = nullptr;
};

}  // namespace numaheap

// Inside a class: `new T(...)` takes the default metadata hooks (returns
// nullptr when out of memory: the operators are noexcept) and `delete`
// gives the memory back to the hooks that gave it. Lets std::unique_ptr<T>
// with its default deleter hold core objects without the global operators.
#define NUMAHEAP_METADATA_NEW_DELETE                                                    \
  static void* operator new(std::size_t bytes) noexcept {                                \
    return ::numaheap::detail::metadata_new(::numaheap::default_metadata(), bytes, 16);  \
  }                                                                                      \
  static void* operator new(std::size_t bytes, const ::numaheap::MetadataHooks* hooks) noexcept { \
    return ::numaheap::detail::metadata_new(hooks, bytes, 16);                           \
  }                                                                                      \
  static void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept {         \
    return ::numaheap::detail::metadata_new(::numaheap::default_metadata(), bytes, 16);  \
  }                                                                                      \
  static void* operator new(std::size_t bytes, std::align_val_t al) noexcept {           \
    return ::numaheap::detail::metadata_new(::numaheap::default_metadata(), bytes,       \
                                            static_cast<std::size_t>(al));               \
  }                                                                                      \
  static void operator delete(void* p) noexcept { ::numaheap::detail::metadata_delete(p); } \
  static void operator delete(void* p, std::align_val_t) noexcept {                      \
    ::numaheap::detail::metadata_delete(p);                                              \
  }                                                                                      \
  static void operator delete(void* p, const std::nothrow_t&) noexcept {                 \
    ::numaheap::detail::metadata_delete(p);                                              \
  }                                                                                      \
  static void operator delete(void* p, const ::numaheap::MetadataHooks*) noexcept {      \
    ::numaheap::detail::metadata_delete(p);                                              \
  }

NUMAHEAP_PUBLIC_END
