// The userfaultfd sampler's cost per sample (Google Benchmark), against
// baselines in the same run, per 4 KiB page of a 256-page memfd window:
//   touch/plain          a write to a mapped page (no fault)
//   touch/minor_fault    a write after MADV_DONTNEED, no userfaultfd: the
//                        kernel's own minor fault (what any sampler by
//                        unmapping costs at least)
//   touch/sampled_memfd  a write in a sampler window: minor fault, handler
//                        thread wake-up, /proc read of the thread's CPU,
//                        record_access, UFFDIO_CONTINUE
//   touch/sampled_anon   a write to a write-protected anonymous page
//   touch/sampled_memfd_vcpu  as sampled_memfd, the thread registered as a
//                        vCPU (no /proc read: the VMM keeps vCPU -> CPU)
// Windows are opened with timing paused. The sampler's own figure (its
// handler's time per sample) is reported as the counter handler_ns.
//
// And the migrator's scan of kernel-backed RAM, per 4 KiB page of 16 MiB
// of anonymous memory (transparent huge pages where the host makes them;
// the counter huge_share says how much was), asked 64 pages a call as the
// policy asks:
//   query/kernel_mover   KernelMover::query: one page per huge block
//   query/per_page       baseline: move_pages(2) asking every page
#include <benchmark/benchmark.h>
#include <numaif.h>
#include <sys/mman.h>
#include <unistd.h>

#include <memory>

#include "numaheap/topology_io.h"
#include "numaheap/vmm.h"

using namespace numaheap;

namespace {

constexpr std::uint64_t kPages = 256;
constexpr std::uint64_t kBytes = kPages * kFrameSize;

struct Ram {
  Topology topo;
  void* shm = nullptr;
  void* anon = nullptr;
  std::unique_ptr<GuestRam> ram;
  std::unique_ptr<Migrator> mig;
  std::unique_ptr<UffdSampler> sampler;
  std::string error;

  explicit Ram(bool with_sampler, bool vcpu_thread = false) {
    auto t = load_topology_libnuma();
    if (!t) {
      error = "no libnuma topology";
      return;
    }
    topo = *t;
    const int fd = memfd_create("numaheap-bench", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, kBytes) != 0) {
      error = "memfd";
      return;
    }
    shm = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    anon = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const GuestRamRegion rs[] = {{shm, kBytes, 0, RamBacking::memfd, false},
                                 {anon, kBytes, kBytes, RamBacking::anonymous, false}};
    auto r = GuestRam::create(topo, rs, {});
    if (!r) {
      error = r.error().message.c_str();
      return;
    }
    ram = std::move(*r);
    if (!with_sampler) return;
    auto m = Migrator::create(topo);
    auto id = (*m)->add_guest(*ram, ram->migrate_options(1, false));
    mig = std::move(*m);
    SamplerConfig cfg;
    cfg.pages_per_second = 0;  // windows only when the benchmark opens them
    if (vcpu_thread) {
      cfg.cpu_source = SampleCpuSource::vcpu_threads;
      (void)mig->set_vcpu_cpu(*id, 0, 0);
    }
    auto s = UffdSampler::create(*ram, *mig, *id, cfg);
    if (s && vcpu_thread) (void)(*s)->set_vcpu_thread(0, gettid());
    if (!s || !(*s)->start()) {
      error = s ? "sampler start" : s.error().message.c_str();
      return;
    }
    sampler = std::move(*s);
  }
  ~Ram() {
    sampler.reset();
    mig.reset();
    ram.reset();
    if (shm) munmap(shm, kBytes);
    if (anon) munmap(anon, kBytes);
  }
};

void touch_all(void* base) {
  for (std::uint64_t i = 0; i < kPages; ++i) {
    volatile char* p = static_cast<volatile char*>(base) + i * kFrameSize;
    *p = static_cast<char>(*p + 1);
  }
}

void BM_touch_plain(benchmark::State& state) {
  Ram r(false);
  if (!r.error.empty()) return state.SkipWithError(r.error.c_str());
  for (auto _ : state) touch_all(r.shm);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kPages));
}

void BM_touch_minor_fault(benchmark::State& state) {
  Ram r(false);
  if (!r.error.empty()) return state.SkipWithError(r.error.c_str());
  for (auto _ : state) {
    state.PauseTiming();
    madvise(r.shm, kBytes, MADV_DONTNEED);
    state.ResumeTiming();
    touch_all(r.shm);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kPages));
}

void sampled(benchmark::State& state, bool memfd, bool vcpu_thread = false) {
  Ram r(true, vcpu_thread);
  if (!r.error.empty()) return state.SkipWithError(r.error.c_str());
  void* base = memfd ? r.shm : r.anon;
  const Gfn first = memfd ? 0 : kPages;
  for (auto _ : state) {
    state.PauseTiming();
    (void)r.sampler->scan(first, kPages);
    state.ResumeTiming();
    touch_all(base);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kPages));
  state.counters["handler_ns"] = r.sampler->stats().ns_per_sample;
  state.counters["samples"] = static_cast<double>(r.sampler->stats().samples);
}

void BM_touch_sampled_memfd(benchmark::State& state) { sampled(state, true); }
void BM_touch_sampled_anon(benchmark::State& state) { sampled(state, false); }
void BM_touch_sampled_memfd_vcpu(benchmark::State& state) { sampled(state, true, true); }

// 16 MiB of 2 MiB-aligned anonymous memory, huge pages asked for, filled.
struct AnonBlocks {
  static constexpr std::uint64_t kPages = 4096, kBytes = kPages * kFrameSize, kAlign = 2u << 20;
  void* raw = MAP_FAILED;
  char* base = nullptr;
  AnonBlocks() {
    raw = mmap(nullptr, kBytes + kAlign, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return;
    base = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + kAlign - 1) / kAlign * kAlign);
    (void)madvise(base, kBytes, MADV_HUGEPAGE);
    for (std::uint64_t off = 0; off < kBytes; off += kFrameSize) base[off] = 1;
  }
  ~AnonBlocks() {
    if (raw != MAP_FAILED) munmap(raw, kBytes + kAlign);
  }
};

void BM_query_kernel_mover(benchmark::State& state) {
  AnonBlocks a;
  if (!a.base) return state.SkipWithError("mmap");
  auto km = KernelMover::create(a.base, AnonBlocks::kPages);
  if (!km) return state.SkipWithError("KernelMover::create");
  PageState st[64];
  std::uint64_t huge = 0, asked = 0;
  for (auto _ : state)
    for (Gfn g = 0; g < AnonBlocks::kPages; g += 64) {
      if (!km->query(g, st)) return state.SkipWithError("move_pages refused");
      huge += st[0].order == KernelMover::kHugeBlockOrder;
      ++asked;
    }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * AnonBlocks::kPages));
  state.counters["huge_share"] = asked ? static_cast<double>(huge) / static_cast<double>(asked) : 0.0;
}

void BM_query_per_page(benchmark::State& state) {
  AnonBlocks a;
  if (!a.base) return state.SkipWithError("mmap");
  void* addrs[64];
  int status[64];
  for (auto _ : state)
    for (Gfn g = 0; g < AnonBlocks::kPages; g += 64) {
      for (std::uint64_t i = 0; i < 64; ++i) addrs[i] = a.base + (g + i) * kFrameSize;
      if (move_pages(0, 64, addrs, nullptr, status, 0) != 0) return state.SkipWithError("move_pages refused");
      benchmark::DoNotOptimize(status);
    }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * AnonBlocks::kPages));
}

}  // namespace

BENCHMARK(BM_query_kernel_mover)->Name("query/kernel_mover");
BENCHMARK(BM_query_per_page)->Name("query/per_page");
BENCHMARK(BM_touch_plain)->Name("touch/plain");
BENCHMARK(BM_touch_minor_fault)->Name("touch/minor_fault");
BENCHMARK(BM_touch_sampled_memfd)->Name("touch/sampled_memfd");
BENCHMARK(BM_touch_sampled_anon)->Name("touch/sampled_anon");
BENCHMARK(BM_touch_sampled_memfd_vcpu)->Name("touch/sampled_memfd_vcpu");
BENCHMARK_MAIN();
