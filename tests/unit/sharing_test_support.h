// Helpers of the sharing and cold-store tests: a fake machine memory for
// frame_only mode (so multi-node hosts work on a one-node test box), small
// topologies, guests pinned to one node, and guest reads/writes that go
// through the sharing manager's write fault like a hypervisor's would.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "numaheap/frame_access.h"
#include "numaheap/guest_memory.h"
#include "numaheap/page_allocator.h"
#include "numaheap/sharing.h"
#include "numaheap/topology.h"
#include "numaheap/topology_io.h"

namespace numaheap::test {

// Bytes of every managed frame of a topology, plus the platform hooks and
// FrameAccess that reach them.
class FakeMachine {
 public:
  explicit FakeMachine(const Topology& t) {
    for (const auto& n : t.nodes())
      for (const auto& r : n.frames)
        ranges_.push_back(Range{r.first_mfn, r.count, std::vector<unsigned char>(r.count * kFrameSize, 0)});
  }
  unsigned char* at(Mfn mfn) {
    for (auto& r : ranges_)
      if (mfn >= r.first && mfn - r.first < r.count) return r.bytes.data() + (mfn - r.first) * kFrameSize;
    return nullptr;
  }
  PlatformConfig platform() {
    PlatformConfig pc;
    pc.mode = MemoryMode::frame_only;
    pc.hooks.ctx = this;
    pc.hooks.scrub = &scrub;
    pc.hooks.copy = &copy;
    return pc;
  }
  FrameAccess access() { return FrameAccess{this, &address}; }
  // Does any frame in [first, first+count) hold `pattern` at its start?
  bool frame_holds(Mfn mfn, const unsigned char* pattern, std::size_t len) {
    const unsigned char* p = at(mfn);
    return p && std::memcmp(p, pattern, len) == 0;
  }

 private:
  struct Range {
    Mfn first;
    std::uint64_t count;
    std::vector<unsigned char> bytes;
  };
  static void scrub(void* ctx, Mfn first, std::uint64_t count) {
    auto* m = static_cast<FakeMachine*>(ctx);
    for (std::uint64_t k = 0; k < count; ++k)
      if (unsigned char* p = m->at(first + k)) std::memset(p, 0, kFrameSize);
  }
  static void copy(void* ctx, Mfn dst, Mfn src) {
    auto* m = static_cast<FakeMachine*>(ctx);
    std::memcpy(m->at(dst), m->at(src), kFrameSize);
  }
  static unsigned char* address(void* ctx, Mfn mfn) { return static_cast<FakeMachine*>(ctx)->at(mfn); }
  std::vector<Range> ranges_;
};

// `nodes` nodes of `frames` frames each, ids 0..nodes-1, CPU k on node k,
// SLIT 10 local and 10 + 10*|a-b| remote (a line: 0-1 near, 0-3 far).
inline Topology line_nodes(unsigned nodes, std::uint64_t frames) {
  TopologyBuilder b("test:line");
  for (NodeId n = 0; n < nodes; ++n) b.add_node(n, {n}, frames << kFrameShift);
  for (NodeId a = 0; a < nodes; ++a)
    for (NodeId c = 0; c < nodes; ++c) b.set_distance(a, c, a == c ? 10 : 10 + 10 * (a > c ? a - c : c - a));
  auto t = b.build();
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
  return std::move(t).value();
}

// A real machine's ids, CPUs and distances with `frames` frames per memory
// node (the real sizes would need gigabytes of fake memory).
inline Topology shrunk(const Topology& real, std::uint64_t frames) {
  TopologyBuilder b(real.source() + " (shrunk)");
  for (const auto& n : real.nodes())
    b.add_node(n.id, n.cpus, n.has_memory() ? frames << kFrameShift : 0);
  for (const auto& a : real.nodes())
    for (const auto& c : real.nodes())
      if (std::uint32_t d = real.raw_distance(a.id, c.id)) b.set_distance(a.id, c.id, d);
  auto t = b.build();
  EXPECT_TRUE(t.has_value()) << (t ? "" : t.error().message);
  return std::move(t).value();
}

// A guest of `pages` pages, one vnode on `pnode`, populated.
inline std::unique_ptr<GuestMemory> pinned_guest(PageAllocator& pa, const char* name, OwnerId owner, NodeId pnode,
                                                 std::uint64_t pages, bool sharing = true, bool cold = true) {
  GuestSpec s;
  s.name = name;
  s.memory_bytes = pages << kFrameShift;
  s.vcpus = 1;
  s.vnodes = {VNodeSpec{s.memory_bytes, {0}, pnode, {}}};
  s.sharing = sharing;
  s.cold_store = cold;
  Placement p;
  p.vnode_pnodes = {pnode};
  GuestOptions o;
  o.device_region_pages = 16;
  auto g = GuestMemory::create(pa, s, p, owner, o);
  EXPECT_TRUE(g.has_value()) << (g ? "" : g.error().message);
  if (!g) return nullptr;
  auto r = (*g)->populate();
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return std::move(g).value();
}

// Fills a page: `tag` 0 gives a zero page; others a tag-dependent pattern.
inline void fill_page(unsigned char* p, std::uint32_t tag) {
  if (tag == 0) {
    std::memset(p, 0, kFrameSize);
    return;
  }
  std::uint64_t x = tag * 0x9e3779b97f4a7c15ull;
  for (std::size_t i = 0; i < kFrameSize; i += 8) {
    x += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(p + i, &z, 8);
  }
}

inline const unsigned char* guest_page(FakeMachine& mem, const GuestMemory& g, Gfn gfn) {
  P2mEntry e = g.lookup(gfn);
  return e.present() ? mem.at(e.mfn) : nullptr;
}

// A guest write as the hypervisor performs it: a shared page faults first.
inline Status guest_write(SharingManager& sm, FakeMachine& mem, GuestMemory& g, Gfn gfn, std::uint32_t tag,
                          NodeId writer) {
  P2mEntry e = g.lookup(gfn);
  if (e.flags & P2mFlags::shared) {
    if (Status st = sm.write_fault(g, gfn, writer); !st) return st;
    e = g.lookup(gfn);
  }
  if (e.flags & P2mFlags::shared) return Errc::shared;
  fill_page(mem.at(e.mfn), tag);
  return {};
}

inline bool page_is(const unsigned char* p, std::uint32_t tag) {
  unsigned char want[kFrameSize];
  fill_page(want, tag);
  return p && std::memcmp(p, want, kFrameSize) == 0;
}

}  // namespace numaheap::test
