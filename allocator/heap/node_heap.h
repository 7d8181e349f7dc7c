// NodeHeap: the buddy heap of one NUMA node.
//
// Free blocks of order 0..18 sit on per-order lists, clean and dirty apart
// (allocations prefer clean blocks of the smallest fitting order). Freed
// blocks merge with their buddy as far as possible, never across a frame
// range (so never across nodes). Everything here is guarded by `lock`; the
// only exception is the background scrubber's hand-shake flags, which are
// atomics (see scrub_some).
//
// Invariants (check_invariants):
//  * every block on lists_[d][o] has a head descriptor of kind free, order o,
//    kDirty set iff d == 1, and lies inside one of this node's ranges;
//  * maximal coalescing: no listed block's buddy is a listed free block of
//    the same order (except around a block being background-scrubbed);
//  * free_blocks_/dirty_blocks_/free_frames_/dirty_frames_ equal a recount.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "allocator/heap/frame_table.h"
#include "allocator/platform/spin_lock.h"
#include "numaheap/platform.h"

namespace numaheap {

struct Block {
  Mfn head = kInvalidMfn;
  unsigned order = 0;
  bool dirty = false;
  OwnerId dirty_owner = kNoOwner;  // meaningful when dirty
};

class alignas(64) NodeHeap {
 public:
  void init(const FrameTable* table, const Platform* platform, std::uint32_t node_index) noexcept;
  // Puts every frame of this node's ranges on the free lists as maximal
  // aligned blocks (writes block heads only). Lock not needed: start-up.
  void seed(bool dirty) noexcept;

  SpinLock lock;

  // --- Caller holds `lock` for all of the following. ---
  // Takes the smallest fitting block (clean first at that order), splits it
  // down to `order`, and returns it. The head's kind is left for the caller
  // to set (used / cached). False when nothing fits.
  bool take(unsigned order, Block& out) noexcept;
  // Takes the free block whose head is `head` when it is one of this node's
  // listed blocks, of `order` or more, splitting it down to `order` as
  // take() does. False (nothing changed) otherwise: `head` not a listed
  // head here, too small, or under background scrub.
  bool take_at(Mfn head, unsigned order, Block& out) noexcept;
  // Returns a block to the lists, merging with free buddies.
  void put(Mfn head, unsigned order, bool dirty, OwnerId dirty_owner) noexcept;
  // Frees a used block some of whose frames are pending offline: those are
  // retired, the rest goes back frame by frame (rare path).
  void put_with_pending(Mfn head, unsigned order, bool dirty, OwnerId dirty_owner) noexcept;
  // Takes `n` free frames (the caller checked free_frames() >= n and booked
  // them) as allocated 4 KiB blocks of `owner`, whole free blocks at a
  // time, smallest first (clean first at each order; a block larger than
  // what is left is split as take() does), and writes them to out[0, n) in
  // ascending runs. Each run that must be scrubbed before `owner` may see
  // it (dirty, unless no_scrub and every dirty byte is `owner`'s) gets
  // 1 + its order in its head's bulk_scrub. Returns the frames to scrub.
  std::uint64_t take_frames(std::uint64_t n, Mfn* out, OwnerId owner, bool no_scrub) noexcept;
  // Returns order-0 frames of this node that free_bulk checked and holds
  // (kind cached) to the lists as dirty `owner` bytes: each run of
  // consecutive frames aligned to its power-of-two length goes back as one
  // block (merging as put() does); frames pending offline are retired.
  // Returns how many went back on the lists (the rest were retired).
  std::uint64_t put_frames(const Mfn* frames, std::size_t n, OwnerId owner) noexcept;
  // Takes the free frame `mfn` out (splitting its block) and retires it.
  // `head` is the head of the free block containing it.
  void offline_free_frame(Mfn mfn, Mfn head) noexcept;

  std::uint64_t free_frames() const noexcept { return free_frames_; }
  std::uint64_t dirty_frames() const noexcept { return dirty_frames_; }
  std::uint64_t free_blocks(unsigned order) const noexcept { return free_blocks_[order]; }
  std::uint64_t dirty_blocks(unsigned order) const noexcept { return dirty_blocks_[order]; }
  std::uint64_t offlined() const noexcept { return offlined_; }
  std::uint64_t managed_frames() const noexcept { return managed_; }
  int largest_free_order() const noexcept;  // -1 when empty
  bool check_invariants() const noexcept;
  // --- end of lock-held section ---

  // Cleans up to `budget` frames of dirty free blocks (whole blocks, the
  // smallest first; at least one block when any is dirty). Takes the lock
  // itself and scrubs outside it; an allocation that needs the block being
  // scrubbed stops the scrub (see abort_scrub). Returns frames cleaned.
  std::uint64_t scrub_some(std::uint64_t budget) noexcept;

  // Frames retired (offline) plus pending-offline bookkeeping. Node lock.
  std::uint64_t offlined_ = 0;
  std::uint64_t pending_offline_ = 0;  // frames marked pending inside used blocks
  // Frames of this node reserved by node claims. Written under this lock AND
  // the allocator's claims lock; read under either.
  std::uint64_t claimed_ = 0;

 private:
  void link(FrameDesc& d, Mfn head, unsigned order, bool dirty, OwnerId owner) noexcept;
  void unlink(FrameDesc& d, unsigned order) noexcept;
  // Unlinks the listed block `head` of order j (descriptor d) and splits it
  // down to `order`: the upper halves go back on the lists.
  void carve(FrameDesc& d, Mfn head, unsigned j, unsigned order, Block& out) noexcept;
  // Before a listed block is taken off: stop a background scrub of it.
  void abort_scrub_if(FrameDesc& d) noexcept;

  const FrameTable* table_ = nullptr;
  const Platform* platform_ = nullptr;
  std::uint32_t node_index_ = 0;
  std::uint64_t managed_ = 0;  // immutable after init

  // Guarded by `lock`.
  FrameList lists_[2][kOrderCount];  // [dirty][order]
  std::uint64_t free_blocks_[kOrderCount] = {};
  std::uint64_t dirty_blocks_[kOrderCount] = {};
  std::uint64_t free_frames_ = 0;
  std::uint64_t dirty_frames_ = 0;
  Mfn scrub_head_ = kInvalidMfn;  // block under background scrub (lock)

  // Scrubber hand-shake: set/cleared by the scrubbing thread outside the
  // lock; an allocator holding the lock sets scrub_abort_ and waits for
  // scrub_running_ to drop before it hands the block out.
  std::atomic<bool> scrub_running_{false};
  std::atomic<bool> scrub_abort_{false};
};

}  // namespace numaheap
