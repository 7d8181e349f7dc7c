// Deliberately broken variants of safety-critical steps, for negative tests.
//
// A test that guards a safety property (no unscrubbed hand-over, a scrubber
// that stops when told) earns its place only if it fails when the property
// breaks. The test suite therefore builds a second copy of the core
// (numaheap_faulty, tests only) with NUMAHEAP_FAULT_INJECTION defined, in
// which each step below can be broken at run time; tests named *_broken_*
// link that copy, turn one fault on and assert that the check catches it.
//
// In every other build NUMAHEAP_FAULT(x) is the constant false: the release
// library has no switch, no global and no branch for any of this.
#pragma once

#if defined(NUMAHEAP_FAULT_INJECTION) && NUMAHEAP_FAULT_INJECTION
#include <atomic>

namespace numaheap::fault {

enum Kind : unsigned {
  // The lock-free per-CPU fast path hands a dirty frame out unscrubbed.
  fast_path_skips_scrub = 1u << 0,
  // The background scrubber, told to stop, says it stopped and goes on
  // zeroing the rest of the block (which the allocation now owns).
  scrub_ignores_stop = 1u << 1,
  // The migrator's step skips evacuation: pages on frames pending offline
  // (broken RAM) stay there, and the frames are never retired.
  evacuation_skipped = 1u << 2,
  // GuestMemory's split (sharing's merge, ballooning) ignores `migrating`
  // and splits a block a mover holds.
  split_ignores_migrating = 1u << 3,
  // Per-CPU cache entries tag a dirty block's owner with the low 16 bits of
  // (owner + 2) instead of "unknown" for owners the tag cannot hold, so two
  // owners can share a tag and no_scrub hands one the other's bytes.
  entry_tag_truncates = 1u << 4,
  // alloc_bulk's per-CPU cache route hands dirty frames out unscrubbed.
  bulk_cache_skips_scrub = 1u << 5,
  // The userfaultfd sampler opens a memfd window with MADV_REMOVE (punches
  // the pages out of the file: their data is lost) instead of MADV_DONTNEED.
  sampler_punches_window = 1u << 8,
  // The sampler never closes a window: pages stay unmapped / write-protected
  // after stop().
  sampler_skips_close = 1u << 9,
  // GuestRam's move helper keeps the VMM's private memory mapped
  // (copy-on-write shared: every page the VMM writes is copied), and the
  // guest RAM it does not need is inherited by the fork (page tables
  // copied, the VMM's pages left write-protected).
  helper_keeps_private = 1u << 10,
  // A move through the helper refused after the VMM's mapping was zapped
  // leaves those pages unmapped and unmoved instead of mapping them back and
  // moving them the old way.
  helper_refusal_leaves_zapped = 1u << 11,
  // Not a broken step but a failure of the environment, simulated: the
  // move helper answers that it could not map a run (its
  // MADV_POPULATE_READ failed, e.g. no memory for page tables).
  helper_cannot_map = 1u << 14,
};

inline std::atomic<unsigned> active{0};

// Not a fault of its own but where a test makes one: when set, KernelMover's
// move_pages(2) calls go to this function instead of the kernel, so a test
// can refuse a chosen call after earlier ones moved pages, or keep pages
// on a second node that a one-node host lacks (nodes = NULL: a query).
using MovePagesFn = long (*)(int pid, unsigned long count, void** pages, const int* nodes, int* status, int flags);
inline std::atomic<MovePagesFn> move_pages_hook{nullptr};
inline bool on(Kind k) noexcept { return (active.load(std::memory_order_relaxed) & k) != 0; }

// Turns faults on for the life of a scope.
struct Scope {
  explicit Scope(unsigned kinds) noexcept { active.store(kinds); }
  ~Scope() { active.store(0); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
};

}  // namespace numaheap::fault

#define NUMAHEAP_FAULT(kind) (::numaheap::fault::on(::numaheap::fault::kind))
#else
#define NUMAHEAP_FAULT(kind) false
#endif
