// numaheap::Vector<T>: the core's growable array. std::vector needs the C++
// runtime (operator new, std::__throw_length_error); this one takes its
// memory from metadata hooks (platform_contract.h) and reports running out
// instead of throwing.
//
// Contract:
//  * Operations that may allocate (push_back, emplace_back, resize, reserve,
//    assign, insert, copy) return false -- or, for copies, leave !ok() --
//    when the hooks have no memory; the vector is then unchanged (copy:
//    empty). ok() stays false until clear() or a successful assignment, so a
//    caller can do several pushes and check once.
//  * A default-constructed vector uses the process default hooks
//    (numaheap_default_metadata at construction); a copy uses the source's.
//  * Growth doubles; elements move with their move constructor.
//  * Iterators are pointers, invalidated by anything that grows.
#pragma once

#include <cstddef>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include "numaheap/metadata.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

template <class T>
class Vector {
 public:
  using value_type = T;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using reference = T&;
  using const_reference = const T&;
  using pointer = T*;
  using const_pointer = const T*;
  using iterator = T*;
  using const_iterator = const T*;

  Vector() noexcept : hooks_(default_metadata()) {}
  explicit Vector(const MetadataHooks* hooks) noexcept : hooks_(hooks) {}
  Vector(std::initializer_list<T> il) noexcept : hooks_(default_metadata()) {
    failed_ = !append(il.begin(), il.size());
  }
  Vector(const Vector& o) noexcept : hooks_(o.hooks_) { failed_ = !append(o.data_, o.size_); }
  // From any other contiguous range of T (a std::vector, a std::array, a
  // span), so host code can hand its containers to the core. Default hooks.
  template <class R>
    requires(!std::is_same_v<std::remove_cvref_t<R>, Vector> &&
             requires(const R& r) {
               { r.data() } -> std::convertible_to<const T*>;
               { r.size() } -> std::convertible_to<std::size_t>;
             })
  Vector(const R& r) noexcept : hooks_(default_metadata()) {
    failed_ = !append(r.data(), r.size());
  }
  template <class R>
    requires(!std::is_same_v<std::remove_cvref_t<R>, Vector> &&
             requires(const R& r) {
               { r.data() } -> std::convertible_to<const T*>;
               { r.size() } -> std::convertible_to<std::size_t>;
             })
  Vector& operator=(const R& r) noexcept {
    failed_ = !assign(r.data(), r.size());
    return *this;
  }
  Vector(Vector&& o) noexcept : hooks_(o.hooks_) { steal(o); }
  Vector& operator=(const Vector& o) noexcept {
    if (this != &o) failed_ = !assign(o.data_, o.size_);
    return *this;
  }
  Vector& operator=(Vector&& o) noexcept {
    if (this != &o) {
      destroy_all();
      release();
      hooks_ = o.hooks_;
      steal(o);
    }
    return *this;
  }
  Vector& operator=(std::initializer_list<T> il) noexcept {
    failed_ = !assign(il.begin(), il.size());
    return *this;
  }
  ~Vector() {
    destroy_all();
    release();
  }

  // Replaces the contents with a copy of [p, p + n). False when out of memory
  // (contents then unchanged).
  bool assign(const T* p, std::size_t n) noexcept {
    if (n > cap_) {
      Vector t(hooks_);
      if (!t.append(p, n)) return fail();
      *this = std::move(t);
      return true;
    }
    clear();
    return append(p, n);
  }
  bool assign(std::span<const T> s) noexcept { return assign(s.data(), s.size()); }

  bool push_back(const T& v) noexcept { return emplace_back(v); }
  bool push_back(T&& v) noexcept { return emplace_back(std::move(v)); }
  template <class... A>
  bool emplace_back(A&&... a) noexcept {
    if (size_ == cap_ && !grow(size_ + 1)) return fail();
    ::new (&data_[size_]) T(std::forward<A>(a)...);
    ++size_;
    return true;
  }
  // Inserts before `pos`. False when out of memory (then unchanged).
  bool insert(const T* pos, const T& v) noexcept {
    const std::size_t at = static_cast<std::size_t>(pos - data_);
    T copy(v);
    if (!emplace_back(std::move(copy))) return false;
    for (std::size_t i = size_ - 1; i > at; --i) std::swap(data_[i], data_[i - 1]);
    return true;
  }
  void pop_back() noexcept {
    --size_;
    data_[size_].~T();
  }
  T* erase(const T* pos) noexcept { return erase(pos, pos + 1); }
  T* erase(const T* first, const T* last) noexcept {
    const std::size_t a = static_cast<std::size_t>(first - data_);
    const std::size_t b = static_cast<std::size_t>(last - data_);
    if (a == b) return data_ + a;
    for (std::size_t i = b; i < size_; ++i) data_[a + i - b] = std::move(data_[i]);
    for (std::size_t i = size_ - (b - a); i < size_; ++i) data_[i].~T();
    size_ -= b - a;
    return data_ + a;
  }
  bool reserve(std::size_t n) noexcept { return n <= cap_ || grow_exact(n) || fail(); }
  bool resize(std::size_t n) noexcept {
    if (n > cap_ && !grow(n)) return fail();
    while (size_ > n) pop_back();
    while (size_ < n) ::new (&data_[size_++]) T();
    return true;
  }
  bool resize(std::size_t n, const T& v) noexcept {
    if (n > cap_ && !grow(n)) return fail();
    while (size_ > n) pop_back();
    while (size_ < n) ::new (&data_[size_++]) T(v);
    return true;
  }
  void clear() noexcept {
    destroy_all();
    failed_ = false;
  }
  void swap(Vector& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(cap_, o.cap_);
    std::swap(hooks_, o.hooks_);
    std::swap(failed_, o.failed_);
  }

  // False once an allocation failed (see the contract).
  bool ok() const noexcept { return !failed_; }
  const MetadataHooks* hooks() const noexcept { return hooks_; }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }
  bool empty() const noexcept { return size_ == 0; }
  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T& front() noexcept { return data_[0]; }
  const T& front() const noexcept { return data_[0]; }
  T& back() noexcept { return data_[size_ - 1]; }
  const T& back() const noexcept { return data_[size_ - 1]; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + size_; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }
  operator std::span<T>() noexcept { return {data_, size_}; }
  operator std::span<const T>() const noexcept { return {data_, size_}; }
  std::span<const T> span() const noexcept { return {data_, size_}; }

  friend bool operator==(const Vector& a, const Vector& b) noexcept {
    if (a.size_ != b.size_) return false;
    for (std::size_t i = 0; i < a.size_; ++i)
      if (!(a.data_[i] == b.data_[i])) return false;
    return true;
  }

 private:
  bool fail() noexcept {
    failed_ = true;
    return false;
  }
  bool append(const T* p, std::size_t n) noexcept {
    if (size_ + n > cap_ && !grow(size_ + n)) return false;
    for (std::size_t i = 0; i < n; ++i) ::new (&data_[size_ + i]) T(p[i]);
    size_ += n;
    return true;
  }
  bool grow(std::size_t need) noexcept {
    std::size_t n = cap_ ? cap_ * 2 : (sizeof(T) >= 64 ? 2 : 8);
    while (n < need) n *= 2;
    return grow_exact(n);
  }
  bool grow_exact(std::size_t n) noexcept {
    if (!hooks_ || !hooks_->alloc || n > (~std::size_t{0} >> 1) / sizeof(T)) return false;
    void* p = hooks_->alloc(hooks_->ctx, n * sizeof(T), alignof(T) < 16 ? 16 : alignof(T),
                            NUMAHEAP_ANY_NODE);
    if (!p) return false;
    T* fresh = static_cast<T*>(p);
    for (std::size_t i = 0; i < size_; ++i) {
      ::new (&fresh[i]) T(std::move(data_[i]));
      data_[i].~T();
    }
    release();
    data_ = fresh;
    cap_ = n;
    return true;
  }
  void destroy_all() noexcept {
    while (size_ > 0) data_[--size_].~T();
  }
  void release() noexcept {
    if (data_) hooks_->release(hooks_->ctx, data_, cap_ * sizeof(T));
    data_ = nullptr;
    cap_ = 0;
  }
  void steal(Vector& o) noexcept {
    data_ = o.data_;
    size_ = o.size_;
    cap_ = o.cap_;
    failed_ = o.failed_;
    o.data_ = nullptr;
    o.size_ = o.cap_ = 0;
    o.failed_ = false;
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;
  const MetadataHooks* hooks_ = nullptr;  // gives and takes data_
  bool failed_ = false;                   // an allocation failed (see ok())
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
