// Shared by the migrator tests: a two-node host in host-memory mode, a
// guest on it, and a guest model that is as strict as hardware about
// write protection.
//
// The model's vCPUs write guest memory through GuestMemory::lookup() and
// PageAllocator::frame_address(), as an EPT walk would. Each vCPU publishes
// an odd sequence number while it is between "translate" and "write done"
// (its TLB holds a translation). The flush hook is a shootdown: it returns
// only after every vCPU that was inside at the time has left (an RCU-like
// handshake through one RMW'd counter), so a write that raced write_protect is finished before the
// mover copies. A vCPU that finds its page `migrating` takes the "write
// fault": it leaves, waits for the entry to change, and retries. A per-page
// write generation is the dirty log: the mover's dirtied() hook compares it
// with the value seen when the protection took effect, so a write that
// slipped through anyway is seen and the move is refused (busy).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "numaheap/guest_memory.h"
#include "numaheap/migrator.h"
#include "numaheap/mover.h"

namespace numaheap::test {

// Two nodes with CPUs {0,1} and {2,3}, `frames` each, host memory not bound
// (the test host may have one node).
struct TwoNodeHost {
  Topology topo;
  std::unique_ptr<PageAllocator> pa;
  explicit TwoNodeHost(std::uint64_t frames = 8192, MemoryMode mode = MemoryMode::host_memory) {
    auto t = TopologyBuilder("test:migrate")
                 .add_node(0, {0, 1}, frames << kFrameShift)
                 .add_node(1, {2, 3}, frames << kFrameShift)
                 .build();
    EXPECT_TRUE(t.has_value());
    topo = std::move(*t);
    PlatformConfig pc;
    pc.mode = mode;
    pc.require_bind = false;
    auto r = PageAllocator::create(topo, pc);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    pa = std::move(*r);
  }
  std::uint64_t used() const {
    return pa->stats(0)->used + pa->stats(1)->used;
  }
};

// A guest of `mb` MiB; with two vnodes (vnode v on node pnodes[v]) or all on `node`.
inline std::unique_ptr<GuestMemory> make_guest(TwoNodeHost& h, std::uint64_t mb, bool two_vnodes, NodeId node = 0,
                                               OwnerId owner = 7) {
  GuestSpec g;
  g.name = "mig";
  g.memory_bytes = mb << 20;
  g.vcpus = 4;
  Placement p;
  if (two_vnodes) {
    g.vnodes = {VNodeSpec{(mb / 2) << 20, {0, 1}, 0, {}}, VNodeSpec{(mb / 2) << 20, {2, 3}, 1, {}}};
    p.nodes.set(0);
    p.nodes.set(1);
    p.memory = {{0, (mb / 2) << 20}, {1, (mb / 2) << 20}};
    p.vnode_pnodes = {0, 1};
    p.vcpu_nodes = {0, 0, 1, 1};
  } else {
    p.nodes.set(node);
    p.memory = {{node, mb << 20}};
    p.vcpu_nodes = {node, node, node, node};
  }
  GuestOptions go;
  go.device_region_pages = 16;
  auto gm = GuestMemory::create(*h.pa, g, p, owner, go);
  EXPECT_TRUE(gm.has_value()) << (gm ? "" : gm.error().message);
  if (!gm) return nullptr;
  auto rep = (*gm)->populate();
  EXPECT_TRUE(rep.has_value()) << (rep ? "" : rep.error().message);
  return std::move(*gm);
}

class GuestModel {
 public:
  GuestModel(GuestMemory& g, unsigned vcpus)
      : g_(g), vcpus_(vcpus), cpus_(new Cpu[vcpus]), gen_(new std::atomic<std::uint64_t>[g.gfn_limit()]),
        gen_at_protect_(new std::uint64_t[g.gfn_limit()]) {
    for (Gfn i = 0; i < g.gfn_limit(); ++i) gen_[i].store(0, std::memory_order_relaxed), gen_at_protect_[i] = 0;
  }

  FrameSwapHooks hooks() {
    FrameSwapHooks h;
    h.ctx = this;
    h.write_protect = [](void* c, const GfnRun* runs, std::size_t n) {
      auto* m = static_cast<GuestModel*>(c);
      m->pending_.assign(runs, runs + n);  // effective at the next flush
    };
    h.flush = [](void* c) { static_cast<GuestModel*>(c)->shootdown(); };
    h.dirtied = [](void* c, GfnRun run) {
      auto* m = static_cast<GuestModel*>(c);
      for (Gfn k = run.first; k < run.first + run.pages; ++k)
        if (m->gen_[k].load(std::memory_order_acquire) != m->gen_at_protect_[k]) return true;
      return false;
    };
    h.unprotect = [](void*, const GfnRun*, std::size_t) {};
    return h;
  }

  // vCPU `v` writes `value` into the first and last word of page `gfn`.
  // Returns false if the page is not present.
  bool write(unsigned v, Gfn gfn, std::uint64_t value) {
    Cpu& c = cpus_[v];
    for (;;) {
      c.seq.fetch_add(1, std::memory_order_seq_cst);  // odd: translation live
      handshake_.fetch_add(1, std::memory_order_acq_rel);  // orders us against shootdown()
      const P2mEntry e = g_.lookup(gfn);
      if (!e.present()) {
        c.seq.fetch_add(1, std::memory_order_release);
        return false;
      }
      if (e.flags & P2mFlags::migrating) {  // write fault: wait for the mover
        c.seq.fetch_add(1, std::memory_order_release);
        faults_.fetch_add(1, std::memory_order_relaxed);
        while (g_.lookup(gfn).flags & P2mFlags::migrating) std::this_thread::yield();
        continue;
      }
      auto* p = static_cast<std::uint64_t*>(g_.allocator().frame_address(e.mfn));
      p[0] = value;
      p[kFrameSize / 8 - 1] = value;
      gen_[gfn].fetch_add(1, std::memory_order_release);
      c.seq.fetch_add(1, std::memory_order_release);  // even: done
      return true;
    }
  }

  // Reads page `gfn` when no mover runs (after the test): first word, or
  // ~0 when the first and last words disagree (a torn copy).
  std::uint64_t read(Gfn gfn) const {
    const P2mEntry e = g_.lookup(gfn);
    if (!e.present()) return ~std::uint64_t{0} - 1;
    auto* p = static_cast<const std::uint64_t*>(g_.allocator().frame_address(e.mfn));
    return p[0] == p[kFrameSize / 8 - 1] ? p[0] : ~std::uint64_t{0};
  }

  std::uint64_t faults() const { return faults_.load(); }
  std::uint64_t flushes() const { return flushes_.load(); }

 private:
  struct alignas(64) Cpu {
    std::atomic<std::uint64_t> seq{0};
  };
  void shootdown() {
    flushes_.fetch_add(1, std::memory_order_relaxed);
    // Both sides RMW `handshake_` (a total order, visible to TSan, unlike
    // fences): a vCPU whose RMW came first is seen inside below; one whose
    // RMW came after acquires ours, so it sees the entry already migrating.
    handshake_.fetch_add(1, std::memory_order_acq_rel);
    for (unsigned v = 0; v < vcpus_; ++v) {
      const std::uint64_t s = cpus_[v].seq.load(std::memory_order_acquire);
      if (s % 2 == 0) continue;
      while (cpus_[v].seq.load(std::memory_order_acquire) == s) std::this_thread::yield();
    }
    // Protection is in force from here: the dirty log starts now.
    for (const auto& r : pending_)
      for (Gfn k = r.first; k < r.first + r.pages; ++k) gen_at_protect_[k] = gen_[k].load(std::memory_order_acquire);
    pending_.clear();
  }

  GuestMemory& g_;
  unsigned vcpus_;
  std::unique_ptr<Cpu[]> cpus_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> gen_;  // per gfn: writes done (the dirty log)
  std::unique_ptr<std::uint64_t[]> gen_at_protect_;     // mover thread only
  std::vector<GfnRun> pending_;                          // mover thread only
  std::atomic<std::uint64_t> faults_{0}, flushes_{0};
  std::atomic<std::uint64_t> handshake_{0};  // RMW'd by every vCPU entry and every shootdown
};

}  // namespace numaheap::test
