// The userfaultfd sampler's no-lost-data scenario, shared by
// vmm_sampler_stress_test (must pass) and vmm_sampler_broken_test (runs it
// against deliberately broken samplers, which it must catch).
//
// Writer threads own interleaved pages of a memfd region and an anonymous
// region of one GuestRam. Each pass a writer checks that every page it owns
// still holds the sequence number it last wrote there (first and last
// word), then writes the next one. Meanwhile the sampler windows pages at a
// high budget (no adaptive cap, no advice: as many windows as it can) and
// a mover thread moves every page to node 0 through GuestRam::move (a no-op
// move on a one-node host, but the whole path, with the sampler's window
// closed around it), steps the migrator and reports a writer (registered as
// a vCPU) moved, so burst windows open too.
// Progress is counted, never waited for with sleeps: the run ends once the
// sampler has opened enough windows, the mover has moved enough times and
// every writer has made enough passes. Then a window over all of the RAM is
// opened and the sampler stopped: every page must hold its last value and
// be mapped, without a userfaultfd write-protect bit (/proc/self/pagemap).
//
// `shared`: the memfd region is registered shared (MPOL_MF_MOVE_ALL), so
// its pages move through GuestRam's helper process, zapped as windows of
// the sampler instead of closed around the move.
//
// Huge blocks (StressBlocks): the two regions are each one 2 MiB-aligned
// block, armed and resolved whole by the sampler -- `forced`: a test probe
// calls every block huge (the whole-block path on 4 KiB pages, any host);
// `thp`: the anonymous region is a real transparent huge page (skipped with
// the reason where the host gives none or its frames cannot be read).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "numaheap/migrator.h"
#include "numaheap/topology_io.h"
#include "numaheap/vmm.h"

namespace numaheap::test {

struct SamplerStressResult {
  bool set_up = false;
  std::string skip;  // why the scenario could not run (no userfaultfd...)
  std::uint64_t lost = 0;           // a writer found another value than its last write
  std::uint64_t bad_at_end = 0;     // pages not holding their last value after stop()
  std::uint64_t unmapped_at_end = 0;  // pages not present after stop()
  std::uint64_t protected_at_end = 0;  // pages still uffd write-protected after stop()
  std::uint64_t passes = 0, moves = 0;
  bool huge_at_end = false;  // thp: the anonymous block was still one huge page after stop()
  std::uint64_t helper_moves = 0;  // shared: region moves GuestRam made through its move helper
  SamplerStats sampler;
};

enum class StressBlocks { small, forced, thp };

inline constexpr std::uint64_t kStressPages = 512;  // per region
inline constexpr unsigned kStressWriters = 4;

// pagemap bits: 63 present, 57 userfaultfd write-protected.
inline void pagemap_check(const void* base, std::uint64_t pages, std::uint64_t& unmapped, std::uint64_t& wp) {
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::vector<std::uint64_t> e(pages);
  const auto off = static_cast<off_t>(reinterpret_cast<std::uintptr_t>(base) / 4096 * 8);
  if (::pread(fd, e.data(), pages * 8, off) == static_cast<ssize_t>(pages * 8))
    for (std::uint64_t v : e) {
      unmapped += !(v >> 63 & 1);
      wp += v >> 57 & 1;
    }
  ::close(fd);
}

inline bool stress_always_huge(void*, const void*) { return true; }

inline SamplerStressResult run_sampler_stress(std::uint64_t min_windows = 1000, std::uint64_t min_moves = 50,
                                              std::uint64_t min_passes = 100,
                                              StressBlocks blocks = StressBlocks::small, bool shared = false) {
  SamplerStressResult res;
  if (const char* s = std::getenv("NUMAHEAP_STRESS_SECONDS"); s && std::atoi(s) > 0) {
    min_windows *= static_cast<std::uint64_t>(std::atoi(s));
    min_passes *= static_cast<std::uint64_t>(std::atoi(s));
  }
  auto topo = load_topology_libnuma();
  if (!topo) {
    res.skip = "no libnuma topology";
    return res;
  }
  const std::uint64_t bytes = kStressPages * 4096;
  const int mfd = ::memfd_create("numaheap-stress", MFD_CLOEXEC);
  if (mfd < 0 || ::ftruncate(mfd, static_cast<off_t>(bytes)) != 0) {
    res.skip = "memfd_create";
    return res;
  }
  // Both regions 2 MiB aligned (one block each): inside a 6 MiB hole.
  constexpr std::uint64_t kAlign = std::uint64_t{2} << 20;
  void* hole = ::mmap(nullptr, 3 * kAlign, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (hole == MAP_FAILED) {
    ::close(mfd);
    res.skip = "mmap";
    return res;
  }
  char* at = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(hole) + kAlign - 1) / kAlign * kAlign);
  void* shm = ::mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mfd, 0);
  void* anon = ::mmap(at + kAlign, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  ::close(mfd);
  if (shm == MAP_FAILED || anon == MAP_FAILED) {
    res.skip = "mmap";
    return res;
  }
  (void)::madvise(anon, bytes, blocks == StressBlocks::thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  for (void* base : {shm, anon})  // sequence 0 in every page before registering
    for (std::uint64_t i = 0; i < kStressPages; ++i)
      reinterpret_cast<std::uint64_t*>(static_cast<char*>(base) + i * 4096)[511] = ~std::uint64_t{0};
  const NodeId node = topo->memory_nodes().first();
  const GuestRamRegion regions[] = {{shm, bytes, 0, RamBacking::memfd, shared},
                                    {anon, bytes, 2 * bytes, RamBacking::anonymous, false}};
  VnodeRam vn[] = {{0, 0, bytes, NodeMask::single(node)}, {1, 2 * bytes, bytes, NodeMask::single(node)}};
  auto ram = GuestRam::create(*topo, regions, vn);
  if (!ram) {
    res.skip = std::string("GuestRam::create: ") + (*ram.error().message.c_str() ? ram.error().message.c_str() : "");
    ::munmap(hole, 3 * kAlign);
    return res;
  }
  auto anon_is_thp = [&] {
    auto km = KernelMover::create(anon, kStressPages);
    return km && km->huge_block(0);
  };
  if (blocks == StressBlocks::thp && !anon_is_thp()) {
    res.skip = "no transparent huge page backs the anonymous region (THP off, or /proc/kpageflags and pagemap frame "
               "numbers unreadable without CAP_SYS_ADMIN)";
    ram->reset();
    ::munmap(hole, 3 * kAlign);
    return res;
  }
  if (blocks == StressBlocks::forced) (*ram)->set_huge_probe_for_testing(stress_always_huge, nullptr);
  {
    auto mig = Migrator::create(*topo);
    auto id = mig ? (*mig)->add_guest(**ram, (*ram)->migrate_options(kStressWriters, false)) : Result<GuestId>(Errc::busy);
    SamplerConfig cfg;
    cfg.pages_per_second = 1u << 22;
    cfg.window_pages = 64;
    cfg.max_handler_share = 1;
    cfg.follow_advice = false;
    auto sampler = id ? UffdSampler::create(**ram, **mig, *id, cfg) : Result<std::unique_ptr<UffdSampler>, Error>(
                                                                           make_error(Errc::busy, "no migrator"));
    if (!sampler || !(*sampler)->start()) {
      res.skip = sampler ? "sampler start refused" : sampler.error().message.c_str();
      ::munmap(hole, 3 * kAlign);
      return res;
    }
    res.set_up = true;
    // Page i of the guest: memfd pages 0..N-1, anonymous pages N..2N-1.
    auto page = [&](std::uint64_t i) {
      return reinterpret_cast<volatile std::uint64_t*>(static_cast<char*>(i < kStressPages ? shm : anon) +
                                                       (i % kStressPages) * 4096);
    };
    std::vector<std::uint64_t> last(2 * kStressPages, 0);  // each entry owned by one writer
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> lost{0}, moves{0};
    std::vector<std::atomic<std::uint64_t>> passes(kStressWriters);
    std::vector<std::thread> writers;
    for (unsigned w = 0; w < kStressWriters; ++w)
      writers.emplace_back([&, w] {
        (void)(*sampler)->set_vcpu_thread(w, gettid());
        while (!stop.load(std::memory_order_relaxed)) {
          for (std::uint64_t i = w; i < 2 * kStressPages; i += kStressWriters) {
            volatile std::uint64_t* p = page(i);
            if (p[0] != last[i] || p[511] != ~last[i]) lost.fetch_add(1, std::memory_order_relaxed);
            const std::uint64_t next = last[i] + 1;
            p[0] = next;
            p[511] = ~next;
            last[i] = next;
          }
          passes[w].fetch_add(1, std::memory_order_release);
        }
      });
    std::thread mover([&] {
      std::vector<Gfn> gfns;
      for (const GuestRange& r : (*ram)->layout())
        for (Gfn g = r.first; g < r.first + r.pages; ++g) gfns.push_back(g);
      std::vector<MoveOutcome> out(gfns.size());
      // Huge blocks: every other move is of whole blocks, listing each
      // region's first page (the sampler must map a zapped block back whole).
      const Gfn heads[2] = {0, 2 * kStressPages};
      MoveOutcome head_out[2];
      while (!stop.load(std::memory_order_relaxed)) {
        const bool whole = blocks != StressBlocks::small && moves.load() % 2;
        if (whole ? (*ram)->move(heads, node, MoveGranularity::whole_blocks, head_out).has_value()
                  : (*ram)->move(gfns, node, MoveGranularity::pages, out).has_value())
          moves.fetch_add(1, std::memory_order_relaxed);
        (void)(*mig)->step();
        (void)(*sampler)->vcpu_moved(static_cast<std::uint32_t>(moves.load() % kStressWriters));
      }
    });
    for (;;) {
      bool done = (*sampler)->stats().windows >= min_windows && moves.load() >= min_moves;
      for (auto& p : passes) done &= p.load(std::memory_order_acquire) >= min_passes;
      if (done) break;
      std::this_thread::yield();
    }
    stop.store(true);
    for (auto& t : writers) t.join();
    mover.join();
    (void)(*sampler)->scan(0, (*ram)->page_count());  // a window over everything, then stop
    (*sampler)->stop();
    res.sampler = (*sampler)->stats();
    res.lost = lost.load();
    res.moves = moves.load();
    res.helper_moves = (*ram)->stats().moves_via_helper;
    for (auto& p : passes) res.passes += p.load();
    pagemap_check(shm, kStressPages, res.unmapped_at_end, res.protected_at_end);
    pagemap_check(anon, kStressPages, res.unmapped_at_end, res.protected_at_end);
    for (std::uint64_t i = 0; i < 2 * kStressPages; ++i)
      res.bad_at_end += page(i)[0] != last[i] || page(i)[511] != ~last[i];
    res.huge_at_end = anon_is_thp();
    sampler->reset();
    (void)(*mig)->remove_guest(*id);
  }
  ram->reset();
  ::munmap(hole, 3 * kAlign);
  return res;
}

}  // namespace numaheap::test
