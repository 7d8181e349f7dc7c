// Shared by the migrator tests: a two-node host in host-memory mode, a
// guest on it, and a guest model that is as strict as hardware about write
// protection -- and no stricter.
//
// Two classes of writer, each publishing an odd sequence number while it
// holds a translation (between its p2m lookup and the end of its write):
//  * vCPUs write through their (write-protectable) translation. They know
//    nothing of `migrating`, a software bit hardware never sees. A
//    write_protect counts only once the flush hook has returned: the flush
//    marks the runs protected, then waits for every vCPU that was inside
//    (an RCU-like handshake through one RMW'd counter); a vCPU that finds
//    its page protected takes the write fault and waits for unprotect.
//  * backends (the dirty-log path: emulated devices, grant copies, DMA)
//    write through the p2m and are not stopped by write protection. Being
//    hypervisor code they wait while an entry is `migrating` before they
//    translate, but a write begun with an older translation goes on. A
//    flush that makes a write-protect effective is a CPU shootdown and
//    does not wait for them; any other flush (after a p2m change) waits
//    for those writing a page of the runs last protected, as a
//    page-selective IOTLB invalidation drains in-flight DMA to them.
// Every write is logged in a per-page write count (the dirty log); the
// mover's dirtied() hook compares it with its value when the protection
// took effect. Every write also carries the page's next sequence number
// and is acknowledged (acked[gfn]) once done; read_check() and the check
// the unprotect hook runs on every page it releases demand that a page
// holds at least its acknowledged value, so a lost write is caught where
// it happens, not only if nothing overwrote it by the end.
// Optionally (write_at_protect) the write_protect hook itself makes one
// vCPU write into each run it is given -- legal, since the protection is
// not in force until the flush returns: a mover that copied before that
// point loses it, deterministically.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "numaheap/guest_memory.h"
#include "numaheap/migrator.h"
#include "numaheap/mover.h"

namespace numaheap::test {

// Two nodes with CPUs {0,1} and {2,3}, `frames` each, host memory not bound
// (the test host may have one node). `nodes` > 2: node n has CPUs {2n, 2n+1}
// (for the rules that need a third node).
struct TwoNodeHost {
  Topology topo;
  std::unique_ptr<PageAllocator> pa;
  explicit TwoNodeHost(std::uint64_t frames = 8192, MemoryMode mode = MemoryMode::host_memory, unsigned nodes = 2) {
    TopologyBuilder b("test:migrate");
    for (unsigned n = 0; n < nodes; ++n) b.add_node(n, {2 * n, 2 * n + 1}, frames << kFrameShift);
    auto t = b.build();
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
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < topo.node_count(); ++i) n += pa->stats(topo.node_at(i).id)->used;
    return n;
  }
};

// A guest of `mb` MiB; with two vnodes (vnode v on node pnodes[v]) or all on `node`.
inline std::unique_ptr<GuestMemory> make_guest(TwoNodeHost& h, std::uint64_t mb, bool two_vnodes, NodeId node = 0,
                                               OwnerId owner = 7, bool cold_store = false) {
  GuestSpec g;
  g.name = "mig";
  g.memory_bytes = mb << 20;
  g.vcpus = 4;
  g.cold_store = cold_store;
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

struct GuestModelOptions {
  unsigned vcpus = 1;     // vCPU slots (writers and readers), ids 0..vcpus-1
  unsigned backends = 0;  // dirty-log writer slots, ids 0..backends-1
  // Pages gfn % backend_every == backend_every - 1 are written by backends
  // (0: none); the write_protect hook's own writes skip them.
  std::uint32_t backend_every = 0;
  bool write_at_protect = false;  // see the top of this file
  // The unprotect hook checks every page it releases. Off only where pages
  // may be ballooned meanwhile (balloon frees without a shootdown).
  bool check_at_unprotect = true;
  // A backend holds its translation (a slow DMA) for up to this many
  // yields, and writes as soon as a write-protect of its page has taken
  // effect: in the window the dirty log exists for.
  unsigned backend_hold_yields = 0;
};

class GuestModel {
 public:
  GuestModel(GuestMemory& g, unsigned vcpus) : GuestModel(g, GuestModelOptions{vcpus}) {}
  GuestModel(GuestMemory& g, const GuestModelOptions& o)
      : g_(g),
        o_(o),
        slots_(o.vcpus + o.backends + 1),
        cpus_(new Cpu[slots_]),
        pages_(new Page[g.gfn_limit()]),
        gen_at_protect_(new std::uint64_t[g.gfn_limit()]()) {}

  FrameSwapHooks hooks() {
    FrameSwapHooks h;
    h.ctx = this;
    h.write_protect = [](void* c, const GfnRun* runs, std::size_t n) {
      auto* m = static_cast<GuestModel*>(c);
      m->pending_.assign(runs, runs + n);  // effective once the next flush returns
      m->batch_.assign(runs, runs + n);
      if (m->o_.write_at_protect) m->write_into_runs(runs, n);
    };
    h.flush = [](void* c) { static_cast<GuestModel*>(c)->shootdown(); };
    h.dirtied = [](void* c, GfnRun run) {
      auto* m = static_cast<GuestModel*>(c);
      for (Gfn k = run.first; k < run.first + run.pages; ++k)
        if (m->pages_[k].gen.load(std::memory_order_acquire) != m->gen_at_protect_[k]) {
          m->dirty_hits_.fetch_add(1, std::memory_order_relaxed);
          return true;
        }
      return false;
    };
    h.unprotect = [](void* c, const GfnRun* runs, std::size_t n) {
      auto* m = static_cast<GuestModel*>(c);
      for (std::size_t r = 0; r < n; ++r)
        for (Gfn k = runs[r].first; k < runs[r].first + runs[r].pages; ++k) {
          if (m->o_.check_at_unprotect)
            m->check_page(m->o_.vcpus + m->o_.backends, k);  // before any vCPU may write again
          m->pages_[k].wp.store(false, std::memory_order_release);
        }
    };
    // Word by word with relaxed atomics: backends may still be writing the
    // source (that is what the dirty log is for), as hardware would.
    h.copy = [](void* c, Mfn dst, Mfn src, std::uint64_t frames) {
      auto* m = static_cast<GuestModel*>(c);
      if (m->on_copy) m->on_copy();
      PageAllocator& pa = m->g_.allocator();
      for (std::uint64_t f = 0; f < frames; ++f) {
        auto* d = static_cast<std::uint64_t*>(pa.frame_address(dst + f));
        auto* s = static_cast<std::uint64_t*>(pa.frame_address(src + f));
        for (std::size_t w = 0; w < kFrameSize / 8; ++w)
          std::atomic_ref<std::uint64_t>(d[w]).store(std::atomic_ref<std::uint64_t>(s[w]).load(std::memory_order_relaxed),
                                                     std::memory_order_relaxed);
      }
    };
    return h;
  }

  // Called by the copy hook before each block is copied (tests that write
  // at an exact point of the protocol).
  std::function<void()> on_copy;

  // vCPU `v` writes the page's next sequence number into the first and
  // last word of `gfn` and acknowledges it. False if not present.
  bool write(unsigned v, Gfn gfn) { return vcpu_write(v, gfn, nullptr); }
  // Same with a value of the caller's (tests without sequence checks).
  bool write(unsigned v, Gfn gfn, std::uint64_t value) { return vcpu_write(v, gfn, &value); }

  // Backend `b` writes `gfn` through the dirty-log path. False if not present.
  bool backend_write(unsigned b, Gfn gfn) {
    BackendWrite w = begin_backend_write(b, gfn);
    return finish_backend_write(w);
  }
  // The two halves of a backend write, for tests that hold a translation
  // across a chosen point (the write lands where it was translated). A
  // begun write must be finished before the next flush that drains
  // backends, on the same thread as the mover if the mover runs there.
  struct BackendWrite {
    Gfn gfn = 0;
    Mfn mfn = kInvalidMfn;
    unsigned slot = 0;
    std::uint64_t protections = 0;  // protecting flushes done when translated
  };
  BackendWrite begin_backend_write(unsigned b, Gfn gfn) {
    Page& p = pages_[gfn];
    Cpu& c = cpus_[o_.vcpus + b];
    lock(p);
    c.gfn.store(gfn, std::memory_order_relaxed);  // before enter(): a flush reads it after
    for (;;) {
      enter(c);
      const P2mEntry e = g_.lookup(gfn);
      if (!e.present()) {
        leave(c);
        unlock(p);
        return {gfn, kInvalidMfn, o_.vcpus + b, 0};
      }
      if (e.flags & P2mFlags::migrating) {  // wait before translating afresh
        leave(c);
        unlock(p);
        while (g_.lookup(gfn).flags & P2mFlags::migrating) std::this_thread::yield();
        lock(p);
        continue;
      }
      return {gfn, e.mfn, o_.vcpus + b, protections_.load(std::memory_order_acquire)};
    }
  }
  bool finish_backend_write(const BackendWrite& w) {
    if (w.mfn == kInvalidMfn) return false;
    for (unsigned i = 0; i < o_.backend_hold_yields; ++i) {
      if (pages_[w.gfn].wp.load(std::memory_order_acquire) &&
          protections_.load(std::memory_order_acquire) != w.protections)
        break;  // protected from under us: write now, after the protection
      std::this_thread::yield();
    }
    store_and_ack(pages_[w.gfn], w.mfn, cpus_[w.slot], nullptr);
    return true;
  }

  // vCPU `v` reads `gfn` and checks it holds at least what was acknowledged
  // before the read began. False (and counted) on a lost write.
  bool read_check(unsigned v, Gfn gfn) { return check_page(v, gfn); }

  // With no mover and no writer running: the page holds exactly its last
  // acknowledged value, in both words.
  bool final_check(Gfn gfn) const {
    const std::uint64_t a = pages_[gfn].acked.load(std::memory_order_acquire);
    if (a == 0) return true;  // never written through the sequence API
    return read(gfn) == a;
  }

  // Reads page `gfn` when no mover runs (after the test): first word, or
  // ~0 when the first and last words disagree (a torn copy).
  std::uint64_t read(Gfn gfn) const {
    const P2mEntry e = g_.lookup(gfn);
    if (!e.present()) return ~std::uint64_t{0} - 1;
    auto* p = static_cast<std::uint64_t*>(g_.allocator().frame_address(e.mfn));
    const std::uint64_t first = std::atomic_ref<std::uint64_t>(p[0]).load(std::memory_order_relaxed);
    const std::uint64_t last = std::atomic_ref<std::uint64_t>(p[kFrameSize / 8 - 1]).load(std::memory_order_relaxed);
    return first == last ? first : ~std::uint64_t{0};
  }
  std::uint64_t acked(Gfn gfn) const { return pages_[gfn].acked.load(std::memory_order_acquire); }

  // The guest gave `gfn` back (ballooned out): its old contents are gone,
  // so forget its sequence (later writes start again from 1). Call while
  // no writer can hold a translation of it.
  void forget(Gfn gfn) {
    Page& p = pages_[gfn];
    lock(p);
    p.seq.store(0, std::memory_order_relaxed);
    p.acked.store(0, std::memory_order_release);
    unlock(p);
  }

  std::uint64_t faults() const { return faults_.load(); }
  std::uint64_t flushes() const { return flushes_.load(); }
  std::uint64_t dirty_hits() const { return dirty_hits_.load(); }
  std::uint64_t protect_writes() const { return protect_writes_.load(); }
  std::uint64_t violations() const { return violations_.load(); }
  Gfn first_violation() const { return first_violation_.load(); }
  bool backend_page(Gfn gfn) const { return o_.backend_every && gfn % o_.backend_every == o_.backend_every - 1; }

 private:
  struct alignas(64) Cpu {
    std::atomic<std::uint64_t> seq{0};  // odd: holds a translation
    std::atomic<Gfn> gfn{0};            // backends: the page it is for
  };
  struct Page {
    std::atomic<bool> busy{false};          // one write at a time (sequence order = write order)
    std::atomic<bool> wp{false};            // write-protected, in force
    std::atomic<std::uint64_t> gen{0};      // writes done (the dirty log)
    std::atomic<std::uint64_t> seq{0};      // last sequence number taken
    std::atomic<std::uint64_t> acked{0};    // last sequence number acknowledged
  };

  static void lock(Page& p) {
    while (p.busy.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
  }
  static void unlock(Page& p) { p.busy.store(false, std::memory_order_release); }
  void enter(Cpu& c) {
    c.seq.fetch_add(1, std::memory_order_seq_cst);       // odd: translation live
    handshake_.fetch_add(1, std::memory_order_acq_rel);  // orders us against shootdown()
  }
  static void leave(Cpu& c) { c.seq.fetch_add(1, std::memory_order_release); }

  // Page lock held, `c` entered with a translation to `mfn`: write, log,
  // leave, acknowledge, unlock.
  void store_and_ack(Page& p, Mfn mfn, Cpu& c, const std::uint64_t* value) {
    const std::uint64_t n = value ? *value : p.seq.load(std::memory_order_relaxed) + 1;
    auto* w = static_cast<std::uint64_t*>(g_.allocator().frame_address(mfn));
    std::atomic_ref<std::uint64_t>(w[0]).store(n, std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(w[kFrameSize / 8 - 1]).store(n, std::memory_order_relaxed);
    p.gen.fetch_add(1, std::memory_order_release);
    leave(c);
    if (!value) {
      p.seq.store(n, std::memory_order_relaxed);
      p.acked.store(n, std::memory_order_release);
    }
    unlock(p);
  }

  bool vcpu_write(unsigned v, Gfn gfn, const std::uint64_t* value) {
    Page& p = pages_[gfn];
    Cpu& c = cpus_[v];
    lock(p);
    for (;;) {
      enter(c);
      if (p.wp.load(std::memory_order_acquire)) {  // write fault: wait for unprotect
        leave(c);
        unlock(p);
        faults_.fetch_add(1, std::memory_order_relaxed);
        while (p.wp.load(std::memory_order_acquire)) std::this_thread::yield();
        lock(p);
        continue;
      }
      const P2mEntry e = g_.lookup(gfn);
      if (!e.present()) {
        leave(c);
        unlock(p);
        return false;
      }
      store_and_ack(p, e.mfn, c, value);
      return true;
    }
  }

  bool check_page(unsigned slot, Gfn gfn) {
    Cpu& c = cpus_[slot];
    const std::uint64_t want = pages_[gfn].acked.load(std::memory_order_acquire);
    enter(c);
    const P2mEntry e = g_.lookup(gfn);
    std::uint64_t first = want, last = want;
    if (e.present()) {
      auto* w = static_cast<std::uint64_t*>(g_.allocator().frame_address(e.mfn));
      first = std::atomic_ref<std::uint64_t>(w[0]).load(std::memory_order_relaxed);
      last = std::atomic_ref<std::uint64_t>(w[kFrameSize / 8 - 1]).load(std::memory_order_relaxed);
    }
    leave(c);
    if (first >= want && last >= want) return true;
    if (violations_.fetch_add(1, std::memory_order_relaxed) == 0) first_violation_.store(gfn);
    return false;
  }

  // The write_protect hook's own vCPU write: the first vCPU page of each run.
  void write_into_runs(const GfnRun* runs, std::size_t n) {
    for (std::size_t r = 0; r < n; ++r)
      for (Gfn k = runs[r].first; k < runs[r].first + runs[r].pages; ++k) {
        if (backend_page(k)) continue;
        Page& p = pages_[k];
        Cpu& c = cpus_[o_.vcpus + o_.backends];
        lock(p);
        enter(c);
        const P2mEntry e = g_.lookup(k);
        if (e.present() && !p.wp.load(std::memory_order_acquire)) {
          store_and_ack(p, e.mfn, c, nullptr);
          protect_writes_.fetch_add(1, std::memory_order_relaxed);
        } else {
          leave(c);
          unlock(p);
        }
        break;
      }
  }

  void shootdown() {
    flushes_.fetch_add(1, std::memory_order_relaxed);
    const bool protecting = !pending_.empty();
    for (const auto& r : pending_)
      for (Gfn k = r.first; k < r.first + r.pages; ++k) pages_[k].wp.store(true, std::memory_order_release);
    // Both sides RMW `handshake_` (a total order, visible to TSan, unlike
    // fences): a writer whose RMW came first is seen inside below; one whose
    // RMW came after acquires ours, so it sees the protection (or the entry
    // already migrating).
    handshake_.fetch_add(1, std::memory_order_acq_rel);
    for (unsigned v = 0; v < slots_; ++v) {
      const std::uint64_t s = cpus_[v].seq.load(std::memory_order_acquire);
      if (s % 2 == 0) continue;
      if (v >= o_.vcpus && v < o_.vcpus + o_.backends) {  // a backend
        if (protecting) continue;
        const Gfn at = cpus_[v].gfn.load(std::memory_order_relaxed);
        bool in_batch = false;
        for (const auto& r : batch_) in_batch = in_batch || (at >= r.first && at - r.first < r.pages);
        if (!in_batch) continue;
      }
      while (cpus_[v].seq.load(std::memory_order_acquire) == s) std::this_thread::yield();
    }
    // Protection is in force from here: the dirty log starts now.
    for (const auto& r : pending_)
      for (Gfn k = r.first; k < r.first + r.pages; ++k)
        gen_at_protect_[k] = pages_[k].gen.load(std::memory_order_acquire);
    pending_.clear();
    if (protecting) protections_.fetch_add(1, std::memory_order_release);
  }

  GuestMemory& g_;
  GuestModelOptions o_;
  unsigned slots_;  // vcpus, then backends, then the write_protect hook's own
  std::unique_ptr<Cpu[]> cpus_;
  std::unique_ptr<Page[]> pages_;
  std::unique_ptr<std::uint64_t[]> gen_at_protect_;  // mover thread only
  std::vector<GfnRun> pending_;                       // mover thread only
  std::vector<GfnRun> batch_;                         // runs last protected; mover thread only
  std::atomic<std::uint64_t> faults_{0}, flushes_{0}, dirty_hits_{0}, protect_writes_{0}, violations_{0};
  std::atomic<Gfn> first_violation_{0};
  std::atomic<std::uint64_t> protections_{0};  // protecting flushes completed
  std::atomic<std::uint64_t> handshake_{0};  // RMW'd by every writer entry and every shootdown
};

}  // namespace numaheap::test
