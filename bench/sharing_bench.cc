// Dedup and cold-store benchmarks. A two-node frame_only host whose frames
// live in this process (a vector per node, reached through FrameAccess and
// the scrub/copy hooks), so the numbers are the library's own work: hashing,
// comparing, indexing, p2m updates and allocator calls.
//
//   scan/unique/numaheap     every page distinct: hash + candidate index
//   scan/duplicate/numaheap  guest B equals guest A: hash + compare + merge
//   hash/xxh3                the page hash alone (the ceiling)
//   cold/put_new, cold/put_overwrite, cold/get   ns per 4 KiB page
//
// Throughput is bytes_per_second (bytes of guest pages scanned).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "allocator/sharing/page_hash.h"
#include "numaheap/cold_store.h"
#include "numaheap/guest_memory.h"
#include "numaheap/sharing.h"

namespace numaheap {
namespace {

constexpr std::uint64_t kNodeFrames = 1u << 15;  // 128 MiB per node
constexpr std::uint64_t kGuestPages = 1u << 13;  // 32 MiB per guest

class Machine {
 public:
  Machine() {
    TopologyBuilder b("bench:two");
    b.add_node(0, {0}, kNodeFrames << kFrameShift).add_node(1, {1}, kNodeFrames << kFrameShift);
    topo = std::move(b.build()).value();
    for (const auto& n : topo.nodes())
      for (const auto& r : n.frames) ranges_.push_back({r.first_mfn, r.count, std::vector<unsigned char>(r.count * kFrameSize)});
    PlatformConfig pc;
    pc.hooks.ctx = this;
    pc.hooks.scrub = [](void* c, Mfn f, std::uint64_t n) { std::memset(static_cast<Machine*>(c)->at(f), 0, n * kFrameSize); };
    pc.hooks.copy = [](void* c, Mfn d, Mfn s) {
      auto* m = static_cast<Machine*>(c);
      std::memcpy(m->at(d), m->at(s), kFrameSize);
    };
    auto r = PageAllocator::create(topo, pc);
    if (!r) {
      std::fprintf(stderr, "sharing bench: %s\n", r.error().message.c_str());
      std::exit(1);
    }
    pa = std::move(r).value();
  }
  unsigned char* at(Mfn mfn) {
    for (auto& r : ranges_)
      if (mfn >= r.first && mfn - r.first < r.count) return r.bytes.data() + (mfn - r.first) * kFrameSize;
    return nullptr;
  }
  FrameAccess access() { return FrameAccess{this, [](void* c, Mfn m) { return static_cast<Machine*>(c)->at(m); }}; }

  std::unique_ptr<GuestMemory> guest(const char* name, OwnerId owner, NodeId node, std::uint64_t pages) {
    GuestSpec s;
    s.name = name;
    s.memory_bytes = pages << kFrameShift;
    s.vcpus = 1;
    s.vnodes = {VNodeSpec{s.memory_bytes, {0}, node, {}}};
    s.sharing = s.cold_store = true;
    Placement p;
    p.vnode_pnodes = {node};
    GuestOptions o;
    o.device_region_pages = 16;
    auto g = std::move(GuestMemory::create(*pa, s, p, owner, o)).value();
    if (!g->populate()) std::exit(1);
    return g;
  }

  Topology topo;
  std::unique_ptr<PageAllocator> pa;

 private:
  struct Range {
    Mfn first;
    std::uint64_t count;
    std::vector<unsigned char> bytes;
  };
  std::vector<Range> ranges_;
};

void fill(unsigned char* p, std::uint64_t seed) {
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (std::size_t i = 0; i < kFrameSize; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(p + i, &x, 8);
  }
}

std::unique_ptr<SharingManager> manager(Machine& m) {
  SharingConfig c;
  c.owner = 9000;
  c.access = m.access();
  return std::move(SharingManager::create(*m.pa, c)).value();
}

void BM_ScanUnique(benchmark::State& state) {
  Machine m;
  auto sm = manager(m);
  auto g = m.guest("a", 1, 0, kGuestPages);
  (void)sm->add_guest(*g);
  for (Gfn k = 0; k < kGuestPages; ++k) fill(m.at(g->lookup(k).mfn), k + 1);
  for (auto _ : state) benchmark::DoNotOptimize(sm->scan(*g, 0, kGuestPages));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kGuestPages * kFrameSize));
  (void)sm->remove_guest(*g);
}
BENCHMARK(BM_ScanUnique)->Name("scan/unique/numaheap")->Unit(benchmark::kMillisecond);

void BM_ScanDuplicate(benchmark::State& state) {
  Machine m;
  auto sm = manager(m);
  auto a = m.guest("a", 1, 0, kGuestPages);
  auto b = m.guest("b", 2, 0, kGuestPages);
  (void)sm->add_guest(*a);
  (void)sm->add_guest(*b);
  for (auto _ : state) {
    state.PauseTiming();
    (void)sm->unmerge_all();
    for (Gfn k = 0; k < kGuestPages; ++k) {
      fill(m.at(a->lookup(k).mfn), k + 1);
      fill(m.at(b->lookup(k).mfn), k + 1);
    }
    state.ResumeTiming();
    benchmark::DoNotOptimize(sm->scan(*a, 0, kGuestPages));
    benchmark::DoNotOptimize(sm->scan(*b, 0, kGuestPages));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 2 * kGuestPages * kFrameSize));
  state.counters["saved_pages"] = static_cast<double>(sm->stats().pages_saved);
  (void)sm->remove_guest(*a);
  (void)sm->remove_guest(*b);
}
BENCHMARK(BM_ScanDuplicate)->Name("scan/duplicate/numaheap")->Unit(benchmark::kMillisecond);

void BM_Hash(benchmark::State& state) {
  std::vector<unsigned char> buf(kFrameSize * 256);
  for (std::size_t k = 0; k < 256; ++k) fill(buf.data() + k * kFrameSize, k);
  std::size_t k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(sharing_detail::hash_page(buf.data() + (k++ & 255) * kFrameSize));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kFrameSize));
}
BENCHMARK(BM_Hash)->Name("hash/xxh3");

struct ColdFixture {
  Machine m;
  std::unique_ptr<ColdStore> cs;
  PoolId pool = 0;
  ColdFixture() {
    ColdStoreConfig c;
    c.owner = 7000;
    c.max_entries = 1u << 16;
    c.watermark_fraction = 0;
    c.watermark_pages = 64;
    c.access = m.access();
    cs = std::move(ColdStore::create(*m.pa, c)).value();
    pool = *cs->create_pool(NodeMask::single(0), PoolKind::persistent);
  }
};

constexpr std::uint32_t kBatch = 4096;

void BM_ColdPutNew(benchmark::State& state) {
  ColdFixture f;
  std::vector<unsigned char> page(kFrameSize);
  fill(page.data(), 3);
  std::uint32_t i = 0;
  for (auto _ : state) {
    if (i == kBatch) {  // keep the store bounded
      state.PauseTiming();
      (void)f.cs->flush_object(f.pool, 1);
      i = 0;
      state.ResumeTiming();
    }
    benchmark::DoNotOptimize(f.cs->put(f.pool, 1, i++, page.data()));
  }
}
BENCHMARK(BM_ColdPutNew)->Name("cold/put_new");

void BM_ColdPutOverwrite(benchmark::State& state) {
  ColdFixture f;
  std::vector<unsigned char> page(kFrameSize);
  fill(page.data(), 4);
  for (std::uint32_t i = 0; i < kBatch; ++i) (void)f.cs->put(f.pool, 1, i, page.data());
  std::uint32_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(f.cs->put(f.pool, 1, i++ % kBatch, page.data()));
}
BENCHMARK(BM_ColdPutOverwrite)->Name("cold/put_overwrite");

void BM_ColdGet(benchmark::State& state) {
  ColdFixture f;
  std::vector<unsigned char> page(kFrameSize), out(kFrameSize);
  fill(page.data(), 5);
  for (std::uint32_t i = 0; i < kBatch; ++i) (void)f.cs->put(f.pool, 1, i, page.data());
  std::uint32_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(f.cs->get(f.pool, 1, i++ % kBatch, out.data()));
}
BENCHMARK(BM_ColdGet)->Name("cold/get");

}  // namespace
}  // namespace numaheap

BENCHMARK_MAIN();
