// numaheap: a guest's memory -- its p2m (gfn -> mfn), populate per vnode,
// ballooning, device (DMA) buffers, backend affinity and destruction.
//
// Contract:
//  * The guest physical layout is fixed at create(): vnode 0's RAM first,
//    then vnode 1's, ... (for a guest without vNUMA, one range per node of
//    its placement). Device buffers live above RAM, from device_gfn_base().
//    Which host node each range belongs on (its pnode, and so the guest's
//    home) changes only by relayout(), when the guest is rehomed; balloon,
//    claims and the cold store's exclusions then follow the new home.
//  * populate() is all-or-nothing: claims first (so a concurrent creation
//    cannot take the memory), then exact-node extents, largest order first
//    (1 GiB, 2 MiB, 4 KiB); on any failure every frame is freed and the claim
//    released. populate() and balloon_up() undo only their own claims: the
//    claims the embedder made for the owner before are set aside for the
//    call (PageAllocator::set_claims_aside) and come back unchanged, on
//    success and on failure. Memory from another node than planned ("striping") happens
//    only with GuestOptions::allow_striping and is always reported.
//  * lookup() is lock-free and O(1); it may run concurrently with every
//    other call (the migrator swaps entries with compare_exchange()).
//  * Mutating calls (populate, balloon, device buffers, destroy) serialise
//    on the guest's lock. Memory: the guest object, its p2m and its lists
//    come from metadata hooks (GuestOptions::metadata, else
//    numaheap::default_metadata()), the p2m on the guest's main home node.
//    After create() only populate's report and balloon_up's work list
//    allocate; when they cannot, the call fails with no_memory and changes
//    nothing. Messages are inline text (ErrorText).
//  * destroy() frees and scrubs every frame and releases every claim; after
//    it the allocator's counters are back where they were before populate.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

#include "numaheap/fixed_string.h"
#include "numaheap/frame.h"
#include "numaheap/guest_spec.h"
#include "numaheap/metadata.h"
#include "numaheap/page_allocator.h"
#include "numaheap/placement.h"
#include "numaheap/result.h"
#include "numaheap/vector.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

// Flags of a p2m entry.
struct P2mFlags {
  static constexpr std::uint8_t present = 1u << 0;
  static constexpr std::uint8_t pinned = 1u << 1;     // never moved (device / DMA)
  static constexpr std::uint8_t shared = 1u << 2;     // deduplicated, read-only
  static constexpr std::uint8_t migrating = 1u << 3;  // a mover owns it right now
  static constexpr std::uint8_t device = 1u << 4;     // part of a device buffer
};

// One p2m entry, unpacked. `order` is the order of the allocator block the
// frame belongs to; that block starts at gfn & ~(2^order - 1).
struct P2mEntry {
  Mfn mfn = kInvalidMfn;
  std::uint8_t flags = 0;
  std::uint8_t order = 0;
  bool present() const noexcept { return flags & P2mFlags::present; }
  bool operator==(const P2mEntry&) const = default;
};

// A contiguous range of guest frames that belongs to one vnode and is meant
// to live on one host node.
struct GuestRange {
  Gfn first = 0;
  std::uint64_t pages = 0;
  NodeId pnode = kNoNode;
  std::uint32_t vnode = 0;
};

// Largest guest physical address space, RAM and device region together,
// in 4 KiB frames (2^40 frames = 4 PiB, x86-64's 52-bit physical limit).
// The p2m holds one 8-byte word per frame below the limit.
inline constexpr std::uint64_t kMaxGuestFrames = std::uint64_t{1} << 40;

struct GuestOptions {
  // Let populate take memory from other nodes when a vnode's node is short
  // (reported per node in PopulateReport::striped). Off: fail instead.
  bool allow_striping = false;
  // Scrub freed frames at destroy/balloon time (true) or leave them dirty
  // for the allocator to scrub before reuse (false: faster teardown).
  bool scrub_on_free = true;
  // Guest frames reserved above RAM for device buffers. RAM, alignment and
  // region together must stay within kMaxGuestFrames (else create() fails
  // with invalid_argument).
  std::uint64_t device_region_pages = 1u << 14;  // 64 MiB
  // Where the guest's metadata (the object, p2m, lists) comes from; must
  // outlive the guest. nullptr: numaheap::default_metadata().
  const MetadataHooks* metadata = nullptr;
};

struct PopulateReport {
  std::uint64_t pages = 0;
  std::uint64_t extents_1g = 0, extents_2m = 0, extents_4k = 0;
  Vector<NodeShare> per_node;  // where the memory is
  Vector<NodeShare> striped;   // bytes that came from another node than planned
};

struct DeviceBuffer {
  Gfn gfn = 0;
  Mfn mfn = kInvalidMfn;
  std::uint64_t pages = 0;  // a power of two (one contiguous block)
  NodeId node = kNoNode;
};

struct BackendAffinity {
  NodeId node = kNoNode;     // where backend threads and interrupts should run
  Vector<CpuId> cpus;        // that node's CPUs (or the nearest node's); !ok(): out of memory
  FixedString<192> reason;
};

// A guest's home nodes as a record shared with whoever must follow them
// (the cold store's pools made from the guest). The record is reference
// counted (intrusively; metadata memory): a GuestHomeRef keeps the record
// alive, not the guest, so it never dangles, and after the guest is gone
// it keeps the last home. relayout() updates it under the guest's locks.
// The record itself lives in guest_memory.cc (its lock is the core's).
class GuestHome;

class GuestHomeRef {
 public:
  GuestHomeRef() noexcept = default;
  GuestHomeRef(const GuestHomeRef& o) noexcept;
  GuestHomeRef(GuestHomeRef&& o) noexcept : home_(o.home_) { o.home_ = nullptr; }
  GuestHomeRef& operator=(const GuestHomeRef& o) noexcept;
  GuestHomeRef& operator=(GuestHomeRef&& o) noexcept;
  ~GuestHomeRef() { reset(); }

  explicit operator bool() const noexcept { return home_ != nullptr; }
  void reset() noexcept;
  // Bumped by every relayout() (0 after create). Lock-free. 0 when empty.
  std::uint64_t generation() const noexcept;
  // The home nodes and (if asked) the generation they belong to, read
  // together. Empty mask when the reference is empty.
  NodeMask nodes(std::uint64_t* generation = nullptr) const noexcept;

 private:
  friend class GuestMemory;
  explicit GuestHomeRef(GuestHome* adopt) noexcept : home_(adopt) {}
  GuestHome* home_ = nullptr;  // holds one reference, or null
};

class GuestMemory {
 public:
  NUMAHEAP_METADATA_NEW_DELETE

  // Builds the layout and an empty p2m. Nothing is allocated from the page
  // allocator yet. The placement must come from Placer::place for `spec`
  // (or be built to the same shape). Errors: invalid_argument (spec,
  // placement or options; every size is checked for overflow and against
  // kMaxGuestFrames), invalid_node, no_memory (the p2m cannot be allocated).
  static Result<std::unique_ptr<GuestMemory>, Error> create(PageAllocator& pa, const GuestSpec& spec,
                                                            const Placement& placement, OwnerId owner,
                                                            const GuestOptions& options = {});
  ~GuestMemory();  // destroy()s what is left
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Errors: busy (already populated), claim_exceeded / no_memory (with how
  // much is missing where), invalid_argument (destroyed).
  Result<PopulateReport, Error> populate();

  // Gives `pages` back to the host: pages on nodes outside the guest's home
  // first, then from the top of guest memory down; pinned, shared and device
  // pages are never taken. Returns the pages freed (fewer only when the
  // guest has no more it can give).
  Result<std::uint64_t, Error> balloon_down(std::uint64_t pages);
  // Takes `pages` back, on the home node of each gfn (claims first; all or
  // nothing). Errors: claim_exceeded, invalid_argument (more than ballooned).
  Result<std::uint64_t, Error> balloon_up(std::uint64_t pages);

  // A DMA buffer of at least `pages` frames for spec.devices[device], from
  // the device's node exactly, pinned, mapped above RAM.
  Result<DeviceBuffer, Error> alloc_device_buffer(std::size_t device, std::uint64_t pages);
  Status free_device_buffer(Gfn gfn);

  BackendAffinity backend_affinity() const;

  // Frees (and scrubs) everything, releases claims. Idempotent. Errors:
  // busy while pages are shared (SharingManager::remove_guest first).
  // Remove the guest from a Migrator first too: destroy does not wait for
  // a mover that is swapping one of its pages. invalid_frame: everything
  // was released except blocks the allocator refused (see lost_frames).
  Status destroy();

  // ---- p2m ----
  P2mEntry lookup(Gfn gfn) const noexcept;
  // Replaces an entry if it still equals `expected` (the migrator's swap).
  bool compare_exchange(Gfn gfn, P2mEntry expected, P2mEntry desired) noexcept;
  // Sets or clears flags of a present entry (e.g. shared, migrating).
  bool update_flags(Gfn gfn, std::uint8_t set, std::uint8_t clear) noexcept;
  // Splits the allocator block holding `gfn` into 4 KiB blocks, so one page
  // of it can move or be freed alone. Serialises with the mutating calls,
  // and excludes a mover: the block's entries are marked `migrating` (by
  // CAS, as a mover marks them) while it is split. Errors: not_present,
  // busy (a mover owns the block right now: retry), the allocator's split
  // errors. State unchanged on error.
  Status split_to_pages(Gfn gfn);
  // Records `frames` frames this guest's p2m referenced that the allocator
  // refused to free (the p2m and the frame table disagreed: a bug, e.g. in
  // a mover). They are never silently dropped: check_invariants() fails
  // from then on, and lost_frames() says how many.
  void note_lost_frames(std::uint64_t frames) noexcept;
  std::uint64_t lost_frames() const noexcept;

  // ---- layout and accounting ----
  const GuestSpec& spec() const noexcept { return spec_; }
  OwnerId owner() const noexcept { return owner_; }
  // A snapshot (relayout may change it); empty and !ok() when out of memory.
  Vector<GuestRange> layout() const;
  std::uint64_t ram_pages() const noexcept { return ram_pages_; }
  Gfn device_gfn_base() const noexcept { return device_base_; }
  std::uint64_t gfn_limit() const noexcept;  // one past the last gfn
  NodeMask home_nodes() const noexcept;
  NodeId home_node_of(Gfn gfn) const noexcept;  // the pnode of gfn's range
  // The shared home record (see GuestHome): what the cold store's pools
  // follow. Its generation counts relayouts.
  GuestHomeRef home_record() const noexcept { return home_record_; }
  std::uint64_t layout_generation() const noexcept { return home_record_.generation(); }
  // The guest's RAM now belongs on these ranges' pnodes (a rehome: the
  // Migrator calls it through its Mover). The ranges must cover RAM, in
  // order (what lies above RAM is ignored), each inside one vnode of the
  // current layout, at most max(kMaxLayoutRanges, ranges at create) of
  // them, on memory nodes. Pages are not moved here.
  // Serialises with the mutating calls. Errors: invalid_argument,
  // invalid_node; nothing changes on error.
  Status relayout(std::span<const GuestRange> layout) noexcept;
  static constexpr std::size_t kMaxLayoutRanges = 64;
  std::uint64_t present_pages() const noexcept;
  // Present pages per host node (`bytes` holds pages here), ascending node
  // id; empty and !ok() when out of memory.
  Vector<NodeShare> pages_per_node() const;
  bool populated() const noexcept;
  PageAllocator& allocator() const noexcept { return *pa_; }

  // Every present entry's frame is on a managed node and the p2m agrees
  // with the allocator's frame table: each block head the p2m names is an
  // allocated block of the entry's order, owned by this guest (shared
  // entries: by the sharing manager); entries of one block agree with
  // their head; counters match a recount; no frame was lost (see
  // note_lost_frames). Entries marked `migrating` are skipped (a mover or a
  // split owns them). Errors: invalid_frame, invalid_argument.
  Status check_invariants() const;
  // check_invariants(), and the other direction: the frame table holds no
  // block of this guest's owner that the p2m does not name (a leak). Walks
  // every frame with the allocator stopped (slow); exact only while no
  // mover or split works on this guest (a move in flight holds its new
  // frames before the p2m names them).
  Status check_frames() const;

 private:
  GuestMemory() noexcept = default;
  struct NUMAHEAP_INTERNAL Impl;
  std::unique_ptr<Impl> impl_;
  PageAllocator* pa_ = nullptr;
  GuestSpec spec_;
  OwnerId owner_ = 0;
  GuestOptions options_;
  // layout_ (pnodes) and home_ change only in relayout(), which holds the
  // guest's lock and Impl::layout_lock; readers hold either one.
  Vector<GuestRange> layout_;  // capacity fixed at create (relayout never allocates)
  std::uint64_t ram_pages_ = 0;
  Gfn device_base_ = 0;
  NodeMask home_;
  // home_ published for followers; set at create, updated with home_.
  GuestHomeRef home_record_;
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
