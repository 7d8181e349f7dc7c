// Scrub scenarios shared by heap_scrub_test (the real allocator: no
// violation) and heap_scrub_broken_test (a deliberately broken allocator:
// the same scenario must report violations, or the scenario proves nothing).
// Each returns what it saw; the test asserts.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "numaheap/page_allocator.h"
#include "unit/heap_test_support.h"

namespace numaheap::test {

// Which thread a hook runs on, for the interrupted-scrub rig.
enum class Role : int { other = 0, background_scrubber = 1, allocator = 2 };
inline thread_local Role t_role = Role::other;

// Frame-only machine memory (one owner tag per frame, 0 = zeros) whose
// hooks hand-shake with the test: the background scrubber's first chunk
// waits until the allocation is spinning on it (the relax hook says so),
// so the scrubber is told to stop at a known point; any later chunk it
// zeroes (only a scrubber that ignores the stop gets there) waits until the
// new owner has written its data, so such a write is never missed. No
// sleeps: every wait is on an event the other side must produce.
struct InterruptRig {
  InterruptRig(Mfn first, std::size_t frames) : base(first), tags(frames) {}
  Mfn base;
  std::vector<std::atomic<std::uint32_t>> tags;  // of frames base, base + 1, ...
  std::atomic<std::uint32_t>& tag(Mfn m) { return tags[m - base]; }
  std::atomic<int> scrubber_chunks{0};
  std::atomic<bool> scrubber_in_first_chunk{false};
  std::atomic<bool> allocator_waiting{false};
  std::atomic<std::uint64_t> allocator_turns{0};
  std::atomic<bool> new_owner_wrote{false};

  static void scrub(void* ctx, Mfn first, std::uint64_t count) {
    auto* r = static_cast<InterruptRig*>(ctx);
    if (t_role == Role::background_scrubber) {
      if (r->scrubber_chunks.fetch_add(1) == 0) {
        r->scrubber_in_first_chunk = true;
        while (!r->allocator_waiting.load()) std::this_thread::yield();
      } else {
        // A stopped scrubber never gets here. One that ignores the stop
        // writes once the new owner's data is in -- unless the allocation
        // is still waiting for it (then it must go on, or nothing moves).
        const std::uint64_t turns = r->allocator_turns.load();
        while (!r->new_owner_wrote.load() && r->allocator_turns.load() < turns + 100000)
          std::this_thread::yield();
      }
    }
    for (std::uint64_t i = 0; i < count; ++i) r->tag(first + i).store(0);
  }
  static void relax(void* ctx) {
    auto* r = static_cast<InterruptRig*>(ctx);
    if (t_role == Role::allocator) {
      r->allocator_waiting = true;
      r->allocator_turns.fetch_add(1);
      std::this_thread::yield();
    }
  }
};

struct InterruptResult {
  bool allocated = false;
  std::uint64_t background_scrubbed = ~std::uint64_t{0};  // scrub_some's return
  std::uint64_t frames_not_new_owners = 0;  // after the new owner wrote
  std::uint64_t frames_not_clean = 0;       // when the new owner got it
  bool checks_pass = false;
};

// Owner 1 dirties the node's one 4 MiB block and frees it; a background
// scrub starts on it; owner 2's allocation of that block interrupts it,
// gets it clean, writes its own data; the scrub ends. Owner 2's data must
// all be there afterwards.
inline InterruptResult interrupted_scrub() {
  InterruptResult out;
  const Topology topo = one_node(1024);
  const FrameRange& range = topo.node_at(0).frames.front();
  InterruptRig rig(range.first_mfn, range.count);
  PlatformConfig pc;
  pc.mode = MemoryMode::frame_only;
  pc.hooks.ctx = &rig;
  pc.hooks.scrub = &InterruptRig::scrub;
  pc.hooks.relax = &InterruptRig::relax;
  HeapConfig hc;
  hc.cpus = 1;
  auto pa = make(topo, pc, hc);
  if (!pa) return out;
  const NodeId node = topo.node_at(0).id;
  auto a = pa->alloc(req(10, node, AllocFlags::exact_node, 1));
  if (!a) return out;
  for (std::uint64_t i = 0; i < 1024; ++i) rig.tag(a->mfn + i) = 1;
  if (!pa->free(a->mfn, 10, 1)) return out;

  std::atomic<std::uint64_t> scrubbed{~std::uint64_t{0}};
  std::thread scrubber([&] {
    t_role = Role::background_scrubber;
    scrubbed = pa->scrub_some(node, 1024);
  });
  while (!rig.scrubber_in_first_chunk.load()) std::this_thread::yield();
  t_role = Role::allocator;
  auto b = pa->alloc(req(10, node, AllocFlags::exact_node, 2));
  t_role = Role::other;
  if (b) {
    out.allocated = true;
    for (std::uint64_t i = 0; i < 1024; ++i) out.frames_not_clean += rig.tag(b->mfn + i) != 0;
    for (std::uint64_t i = 0; i < 1024; ++i) rig.tag(b->mfn + i) = 2;
  }
  rig.new_owner_wrote = true;
  scrubber.join();
  out.background_scrubbed = scrubbed;
  if (b) {
    for (std::uint64_t i = 0; i < 1024; ++i) out.frames_not_new_owners += rig.tag(b->mfn + i) != 2;
    out.checks_pass = pa->free(b->mfn, 10, 2).has_value() && pa->check_frames().has_value();
  }
  return out;
}

struct FastPathResult {
  bool lockless = false;          // the rseq fast path exists here
  std::uint64_t handed_out = 0;   // frames owner 2 received
  std::uint64_t unclean = 0;      // of those, holding owner 1's bytes
  std::uint64_t off_node = 0;     // of those, not from `expect_node`
  bool checks_pass = false;       // check_invariants after the rounds
};

// What the reader (owner 2 unless said) asks for in fast_path_handover:
// 4 KiB frames of `node` (kNoNode: the CPU's own) with `flags` | no_scrub,
// never from `exclude`; they must come from `expect_node`. The writer
// (owner 1 unless said) dirtied them first.
struct HandoverRequest {
  NodeId node = kNoNode;
  std::uint32_t flags = 0;
  NodeMask exclude{};
  NodeId expect_node = 0;
  OwnerId writer = 1;
  OwnerId reader = 2;
};

// Host memory, lock-free per-CPU caches, every CPU on node 0 and node 1
// with memory but no CPU: the writer takes 4 KiB frames of `expect_node`
// into its CPU's cache of that node, fills them and frees them (back to
// that cache); the reader then asks for frames with no_scrub as `ask` says,
// on the same CPU, so whichever path serves it pops the writer's frames.
// Every byte the reader sees must be zero (`unclean` counts frames that
// are not; a reader that is the writer may see its own bytes). Only the fast path in PageAllocator::alloc
// calls alloc_dirty, which the fault fast_path_skips_scrub breaks: with the
// fault on, unclean frames prove that path served the request, none that
// alloc_slow did (its pops scrub in try_node).
inline FastPathResult fast_path_handover(const HandoverRequest& ask, int rounds = 200) {
  FastPathResult out;
  PlatformConfig pc;
  pc.mode = MemoryMode::host_memory;
  pc.require_bind = false;
  HeapConfig hc;
  hc.use_rseq = true;
  auto topo = TopologyBuilder("test:cpus-on-0")
                  .add_node(0, {0, 1}, std::uint64_t{4096} << kFrameShift)
                  .add_node(1, std::span<const CpuId>(), std::uint64_t{4096} << kFrameShift)
                  .build();
  if (!topo) return out;
  auto pa = make(*topo, pc, hc);
  if (!pa || !pa->lockless_cpu_caches()) return out;
  out.lockless = true;
  constexpr int kBatch = 16;
  Mfn got[kBatch];
  for (int r = 0; r < rounds; ++r) {
    int n = 0;
    for (; n < kBatch; ++n) {
      auto a = pa->alloc(req(0, ask.expect_node, AllocFlags::exact_node, ask.writer));
      if (!a) break;
      got[n] = a->mfn;
      std::memset(pa->frame_address(a->mfn), 0xA1, kFrameSize);
    }
    for (int i = 0; i < n; ++i) (void)pa->free(got[i], 0, ask.writer);
    n = 0;
    for (; n < kBatch; ++n) {
      AllocRequest q = req(0, ask.node, ask.flags | AllocFlags::no_scrub, ask.reader);
      q.exclude = ask.exclude;
      auto b = pa->alloc(q);
      if (!b) break;
      got[n] = b->mfn;
      ++out.handed_out;
      out.off_node += b->node != ask.expect_node || pa->node_of(b->mfn) != ask.expect_node;
      const auto* p = static_cast<const unsigned char*>(pa->frame_address(b->mfn));
      bool clean = true;
      for (std::size_t k = 0; k < kFrameSize && clean; ++k) clean = p[k] == 0 || p[k] == 0xB2;
      out.unclean += !clean;
      std::memset(pa->frame_address(b->mfn), 0xB2, kFrameSize);
    }
    for (int i = 0; i < n; ++i) (void)pa->free(got[i], 0, ask.reader);
  }
  out.checks_pass = pa->check_invariants().has_value();
  return out;
}

// The common case: no node named.
inline FastPathResult fast_path_handover() { return fast_path_handover(HandoverRequest{}); }

struct BulkHandoverResult {
  std::uint64_t handed_out = 0;  // frames the reader received
  std::uint64_t unclean = 0;     // of those, holding the writer's bytes
  std::uint64_t own_bytes = 0;   // of those, holding the reader's own bytes (0xB2)
  std::uint64_t from_cache = 0;  // rounds whose frames all sat in per-CPU caches after the free
  bool checks_pass = false;      // check_invariants after the rounds
};

// alloc_bulk / free_bulk of a cache's worth (48 frames; the default cache
// holds 124) on the CPU's own node, which PageAllocator serves from the
// calling CPU's per-CPU cache: the writer takes frames, fills them and
// frees them in one call each; the reader asks for as many with no_scrub
// and must see zeros only (its own bytes, 0xB2, from an earlier round are
// allowed and counted apart). Host memory, one node with every CPU; with
// or without rseq, the route is the same (cache lock).
inline BulkHandoverResult bulk_cache_handover(OwnerId writer = 1, OwnerId reader = 2, int rounds = 50) {
  BulkHandoverResult out;
  PlatformConfig pc;
  pc.mode = MemoryMode::host_memory;
  pc.require_bind = false;
  auto topo = TopologyBuilder("test:bulk").add_node(0, {0, 1}, std::uint64_t{4096} << kFrameShift).build();
  if (!topo) return out;
  auto pa = make(*topo, pc);
  if (!pa) return out;
  constexpr std::size_t kCount = 48;
  std::vector<Mfn> got(kCount);
  const auto req_of = [](OwnerId owner, std::uint32_t flags) { return req(0, 0, flags | AllocFlags::exact_node, owner); };
  for (int r = 0; r < rounds; ++r) {
    if (!pa->alloc_bulk(req_of(writer, 0), got)) return out;
    for (Mfn m : got) std::memset(pa->frame_address(m), 0xA1, kFrameSize);
    if (!pa->free_bulk(got, writer)) return out;
    const NodeStats st = pa->stats(0).value();
    out.from_cache += st.cached >= kCount && st.used == 0;
    if (!pa->alloc_bulk(req_of(reader, AllocFlags::no_scrub), got)) return out;
    for (Mfn m : got) {
      const auto* p = static_cast<const unsigned char*>(pa->frame_address(m));
      bool clean = true, own = true;
      for (std::size_t k = 0; k < kFrameSize; ++k) {
        clean = clean && (p[k] == 0 || p[k] == 0xB2);
        own = own && p[k] == 0xB2;
      }
      ++out.handed_out;
      out.unclean += !clean;
      out.own_bytes += own;
      std::memset(pa->frame_address(m), 0xB2, kFrameSize);
    }
    if (!pa->free_bulk(got, reader)) return out;
  }
  out.checks_pass = pa->check_invariants().has_value() && pa->check_frames().has_value();
  return out;
}

inline NodeMask only_node(NodeId n) {
  NodeMask m;
  m.set(n);
  return m;
}

// Requests the fast path serves since issue 17's own-node change (the
// CPU's own node named, preferred or exact), and requests it must leave to
// alloc_slow (another node; the own node excluded). All get node 0's or
// node 1's frames as `expect_node` says.
struct NamedHandover {
  const char* what;
  HandoverRequest ask;
};
inline constexpr std::uint32_t kExact = AllocFlags::exact_node;
inline const NamedHandover kOwnNodeRequests[] = {
    {"own node, preferred", {0, 0, {}, 0}},
    {"own node, exact", {0, kExact, {}, 0}},
    {"no node, exact", {kNoNode, kExact, {}, 0}},
};
inline const NamedHandover kSlowPathRequests[] = {
    {"other node, preferred", {1, 0, {}, 1}},
    {"other node, exact", {1, kExact, {}, 1}},
    {"own node excluded", {0, 0, only_node(0), 1}},
    {"no node, own node excluded", {kNoNode, 0, only_node(0), 1}},
};

// Writer and reader owners that a per-CPU cache entry's dirty tag
// (allocator/heap/per_cpu_cache.h) could confuse if it were not exact: a
// 16-bit truncation of (owner + 2) gives 0x10001 owner 1's tag and
// kMaxOwner 0xfffd's. Owners >= 0xfffd have no tag of their own ("dirty,
// owner unknown": scrubbed for everyone). The reader never gets the
// writer's bytes.
inline const NamedHandover kUntaggedOwners[] = {
    {"writer 0x10001, reader 1", {kNoNode, 0, {}, 0, 0x10001, 1}},
    {"writer 1, reader 0x10001", {kNoNode, 0, {}, 0, 1, 0x10001}},
    {"writer kMaxOwner, reader 0xfffd", {kNoNode, 0, {}, 0, kMaxOwner, 0xfffd}},
    {"writer 0xfffc (last tagged), reader 0x1fffc", {kNoNode, 0, {}, 0, 0xfffc, 0x1fffc}},
};

}  // namespace numaheap::test
