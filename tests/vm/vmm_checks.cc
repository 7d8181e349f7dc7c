// VMM guest RAM and the userfaultfd sampler inside the NUMA guest: a memfd
// region is registered bound to one node, a thread pinned to a CPU of
// another node keeps touching it while the sampler windows it, and the
// migrator (policy moves only, from the sampler's samples) moves the pages
// to the thread's node. The kernel's own move_pages query must then place
// every page there, and every page must hold what the thread last wrote.
#include <numaif.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "numaheap/migrator.h"
#include "numaheap/vmm.h"
#include "vm_checks.h"

namespace numaheap::vmtest {

namespace {

constexpr std::uint64_t kPages = 1024;  // 4 MiB of memfd "guest RAM": two 2 MiB granules

// Pages not on `node`; with skip_unmapped, pages the sampler has unmapped
// right now (-ENOENT) are not counted.
long pages_off(void* base, NodeId node, bool skip_unmapped = false, std::uint64_t first = 0,
               std::uint64_t pages = kPages) {
  std::vector<void*> addrs(pages);
  std::vector<int> status(pages);
  for (std::uint64_t i = 0; i < pages; ++i) addrs[i] = static_cast<char*>(base) + (first + i) * kFrameSize;
  if (move_pages(0, pages, addrs.data(), nullptr, status.data(), 0) != 0) return -1;
  long off = 0;
  for (int s : status) off += s != static_cast<int>(node) && !(skip_unmapped && s == -ENOENT);
  return off;
}

// A memory node with CPUs (not the first memory node when `not_first`)
// and another memory node; false when the machine has no such pair. Also
// turns the kernel's NUMA balancing off: it must not move pages by itself
// during these checks.
bool pick_nodes(const Topology& live, bool not_first, NodeId& with_cpus, NodeId& other) {
  with_cpus = other = kNoNode;
  for (NodeId n : live.memory_nodes())
    if (live.cpu_nodes().test(n) && !(not_first && n == live.memory_nodes().first())) {
      with_cpus = n;
      break;
    }
  for (NodeId n : live.memory_nodes())
    if (n != with_cpus) {
      other = n;
      break;
    }
  if (FILE* f = std::fopen("/proc/sys/kernel/numa_balancing", "w")) {
    std::fputs("0", f);
    std::fclose(f);
  }
  return with_cpus != kNoNode && other != kNoNode;
}

// `pages` of memfd "guest RAM", mapped shared; null (reported) on failure.
void* memfd_ram(const char* name, std::uint64_t pages) {
  const int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(pages * kFrameSize)) != 0) {
    report(false, std::string("memfd RAM ") + name, std::strerror(errno));
    if (fd >= 0) close(fd);
    return nullptr;
  }
  void* base = mmap(nullptr, pages * kFrameSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base != MAP_FAILED) return base;
  report(false, std::string("memfd RAM mapping ") + name, std::strerror(errno));
  return nullptr;
}

double seconds_now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

void run_vmm_checks(const Topology& live) {
  // to: a node with CPUs and memory (the toucher's); from: another memory node.
  NodeId to = kNoNode, from = kNoNode;
  if (!pick_nodes(live, true, to, from)) {
    report(false, "vmm checks need two memory nodes, one with CPUs");
    return;
  }
  const std::string route = std::to_string(from) + " -> " + std::to_string(to);
  void* base = memfd_ram("guest-ram", kPages);
  if (!base) return;
  auto word = [&](std::uint64_t i) { return reinterpret_cast<volatile std::uint64_t*>(static_cast<char*>(base) + i * kFrameSize); };
  const GuestRamRegion region{base, kPages * kFrameSize, 0, RamBacking::memfd, false};
  const VnodeRam vnode{0, 0, kPages * kFrameSize, NodeMask::single(from)};
  auto ram = GuestRam::create(live, std::span<const GuestRamRegion>(&region, 1), std::span<const VnodeRam>(&vnode, 1));
  report(ram.has_value(), "memfd guest RAM registered, bound to node " + std::to_string(from),
         ram ? "" : ram.error().message.c_str());
  if (!ram) return;
  report(pages_off(base, from) == 0, "kernel confirms the populated memfd RAM on node " + std::to_string(from));
  for (std::uint64_t i = 0; i < kPages; ++i) *word(i) = i;

  MigratorConfig cfg;
  cfg.rate_limit_mb_s = 0;  // unlimited: the check is about where pages end up
  auto mig = Migrator::create(live, cfg);
  auto id = mig ? (*mig)->add_guest(**ram, (*ram)->migrate_options(1, false)) : Result<GuestId>(Errc::no_memory);
  report(id.has_value(), "guest RAM added to the migrator");
  if (!id) return;
  // As a VMM keeps its I/O threads off the vCPUs' CPUs: the sampler's
  // handler thread (it inherits the affinity of the thread calling start())
  // runs elsewhere than the toucher.
  const CpuId toucher_cpu = live.find(to)->cpu_vector().front();
  cpu_set_t old_set, others;
  sched_getaffinity(0, sizeof old_set, &old_set);
  others = old_set;
  CPU_CLR(static_cast<int>(toucher_cpu), &others);
  if (CPU_COUNT(&others) > 0) sched_setaffinity(0, sizeof others, &others);
  // Windows are driven here as a VMM drives them from its own timer
  // (pages_per_second 0, scan()), one over all the RAM per round, so the
  // check does not depend on how fast this emulated guest takes faults;
  // the budget-driven thread is exercised by vmm_sampler_stress_test. The
  // toucher is registered as vCPU 0 on its CPU, as a VMM registers vCPUs.
  SamplerConfig scfg;
  scfg.pages_per_second = 0;
  scfg.cpu_source = SampleCpuSource::vcpu_threads;
  auto sampler = UffdSampler::create(**ram, **mig, *id, scfg);
  report(sampler.has_value(), "userfaultfd sampler created", sampler ? "" : sampler.error().message.c_str());
  if (!sampler) return;
  Status started = (*sampler)->start();
  report(started.has_value(), "sampler started");
  if (!started) return;

  // The "vCPU": pinned to the first CPU of `to`, incrementing every page.
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> passes{0};
  std::atomic<bool> pinned{false};
  std::thread vcpu([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<int>(toucher_cpu), &set);
    pinned = sched_setaffinity(0, sizeof set, &set) == 0;
    (void)(*sampler)->set_vcpu_thread(0, gettid());
    (void)(*mig)->set_vcpu_cpu(*id, 0, toucher_cpu);
    std::uint64_t pass = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      ++pass;
      for (std::uint64_t i = 0; i < kPages; ++i) *word(i) = i + (pass << 32);
      passes.store(pass, std::memory_order_release);
    }
  });
  // Rounds: open a window over all of the RAM, let the toucher's accesses
  // sample every page (polled, with a deadline), close what is left, step
  // the migrator. Two rounds give every page the two consecutive samples
  // the policy's filter wants.
  const double t0 = seconds_now();
  long off = static_cast<long>(kPages);
  int steps = 0;
  bool stalled = false;
  while (seconds_now() - t0 < 120) {
    const std::uint64_t before = (*sampler)->stats().samples;
    if (!(*sampler)->scan(0, kPages)) break;
    const double round = seconds_now();
    while ((*sampler)->stats().samples - before < kPages) {
      if (seconds_now() - round > 30) {
        stalled = true;
        break;
      }
      timespec poll_pace{0, 10 * 1000 * 1000};
      nanosleep(&poll_pace, nullptr);
    }
    (*sampler)->close_window();
    (void)(*mig)->step();
    ++steps;
    off = pages_off(base, to);
    if (off == 0 || stalled) break;
  }
  report(!stalled, "every page of a window sampled within 30 s");
  const double took = seconds_now() - t0;
  stop = true;
  vcpu.join();
  (*sampler)->stop();  // every page mapped again: the query sees them all
  sched_setaffinity(0, sizeof old_set, &old_set);
  off = pages_off(base, to);
  const SamplerStats ss = (*sampler)->stats();
  const MigratorStats ms = (*mig)->stats();
  report(pinned.load(), "toucher pinned to a CPU of node " + std::to_string(to));
  report(off == 0, "sampler + migrator moved every page " + route + " (kernel's query)",
         std::to_string(off) + " elsewhere after " + std::to_string(took).substr(0, 5) + " s, " + std::to_string(steps) +
             " steps; samples " + std::to_string(ss.samples) + " (" + std::to_string(static_cast<long>(ss.ns_per_sample)) +
             " ns each), windows " + std::to_string(ss.windows) + ", pages moved " + std::to_string(ms.pages_moved));
  report(ss.errors == 0, "sampler ioctls never failed", std::to_string(ss.errors) + " errors");
  const std::uint64_t last = passes.load();
  std::uint64_t bad = 0;
  for (std::uint64_t i = 0; i < kPages; ++i) {
    const std::uint64_t v = *word(i);
    // The last pass may have stopped midway: each page holds pass last or last - 1.
    bad += (v & 0xffffffffu) != i || ((v >> 32) != last && (v >> 32) != last + 1);
  }
  report(bad == 0, "every page holds the toucher's last write", std::to_string(bad) + " bad");

  // Rehome to two nodes: the RAM is spread over both (one 2 MiB granule
  // each), the ranges rebound to their new nodes (relayout), the kernel
  // confirms every page.
  NodeMask two;
  for (NodeId n : live.memory_nodes())
    if (n != to && two.count() < 2) two.set(n);
  if (two.count() < 2) two.set(to);
  const NodeId a = two.first(), b = two.last();
  Status rh = (*mig)->rehome(*id, two);
  report(rh.has_value(), "rehome to nodes " + std::to_string(a) + "," + std::to_string(b) + " requested");
  for (int i = 0; i < 1000 && rh; ++i) {
    (void)(*mig)->step();
    auto p = (*mig)->rehome_progress(*id);
    if (!p || p->state != RehomeState::running) break;
  }
  auto prog = (*mig)->rehome_progress(*id);
  report(prog && prog->state == RehomeState::done, "rehome done",
         prog ? std::to_string(prog->done) + "/" + std::to_string(prog->total) : "?");
  const auto layout = (*ram)->layout();
  std::uint64_t on_a = 0, on_b = 0;
  for (const GuestRange& r : layout) (r.pnode == a ? on_a : on_b) += r.pages;
  report(on_a == kPages / 2 && on_b == kPages / 2, "rehome spread the RAM evenly over both nodes",
         std::to_string(on_a) + " pages for node " + std::to_string(a) + ", " + std::to_string(on_b) + " for node " +
             std::to_string(b));
  long wrong = 0;
  for (const GuestRange& r : layout) wrong += pages_off(base, r.pnode, false, r.first, r.pages);
  report(wrong == 0, "kernel confirms every page on its new node", std::to_string(wrong) + " elsewhere");
  int mode = -1;
  unsigned long mask[kMaxNodes / 64] = {};
  bool rebound = true;
  for (const GuestRange& r : layout) {
    rebound &= get_mempolicy(&mode, mask, kMaxNodes + 1, static_cast<char*>(base) + r.first * kFrameSize,
                             MPOL_F_ADDR) == 0 && mode == MPOL_BIND && (mask[r.pnode / 64] >> (r.pnode % 64) & 1);
  }
  report(rebound, "each rehomed range is bound to its new node (relayout)");

  // A vnode placed on two nodes: split in two contiguous parts, each bound
  // and populated on its node.
  void* anon = mmap(nullptr, kPages * kFrameSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (anon != MAP_FAILED) {
    const GuestRamRegion r2{anon, kPages * kFrameSize, 0, RamBacking::anonymous, false};
    const VnodeRam v2{0, 0, kPages * kFrameSize, two};
    auto ram2 = GuestRam::create(live, std::span<const GuestRamRegion>(&r2, 1), std::span<const VnodeRam>(&v2, 1));
    report(ram2.has_value(), "anonymous RAM with a vnode on two nodes registered", ram2 ? "" : ram2.error().message.c_str());
    if (ram2) {
      const auto l2 = (*ram2)->layout();
      long off2 = 0;
      for (const GuestRange& r : l2) off2 += pages_off(anon, r.pnode, false, r.first, r.pages);
      report(l2.size() == 2 && l2[0].pnode == a && l2[1].pnode == b && l2[0].pages == kPages / 2 && off2 == 0,
             "the vnode is split in two halves, each populated on its node (kernel's query)",
             std::to_string(l2.size()) + " parts, " + std::to_string(off2) + " pages elsewhere");
      ram2->reset();
    }
    munmap(anon, kPages * kFrameSize);
  }
  sampler->reset();
  (void)(*mig)->remove_guest(*id);
  ram->reset();
  munmap(base, kPages * kFrameSize);
}

void run_shared_migrator_checks(const Topology& live) {
  // One migrator, two guests: A (memfd, sampled, its "vCPU" on the node of
  // its RAM: nothing of A moves) and B (anonymous, rehomed back and forth
  // between two nodes). After A's vCPU is reported moved, its samples ask
  // for steps; only A's own moves may extend its following
  // (Migrator::guest_stats): B's moves must not.
  NodeId x = kNoNode, y = kNoNode;
  if (!pick_nodes(live, false, x, y)) {
    report(false, "shared-migrator checks need two memory nodes, one with CPUs");
    return;
  }
  constexpr std::uint64_t kA = 256, kB = 512;
  void* a_base = memfd_ram("guest-a", kA);
  if (!a_base) return;
  void* b_base = mmap(nullptr, kB * kFrameSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (b_base == MAP_FAILED) {
    report(false, "anonymous RAM of guest B", std::strerror(errno));
    munmap(a_base, kA * kFrameSize);
    return;
  }
  const GuestRamRegion ra{a_base, kA * kFrameSize, 0, RamBacking::memfd, false};
  const VnodeRam va{0, 0, kA * kFrameSize, NodeMask::single(x)};
  const GuestRamRegion rb{b_base, kB * kFrameSize, 0, RamBacking::anonymous, false};
  const VnodeRam vb{0, 0, kB * kFrameSize, NodeMask::single(y)};
  auto ram_a = GuestRam::create(live, std::span<const GuestRamRegion>(&ra, 1), std::span<const VnodeRam>(&va, 1));
  auto ram_b = GuestRam::create(live, std::span<const GuestRamRegion>(&rb, 1), std::span<const VnodeRam>(&vb, 1));
  MigratorConfig cfg;
  cfg.rate_limit_mb_s = 0;
  auto mig = Migrator::create(live, cfg);
  if (!ram_a || !ram_b || !mig) {
    report(false, "two guests' RAM and one migrator");
    return;
  }
  auto ida = (*mig)->add_guest(**ram_a, (*ram_a)->migrate_options(1, false));
  auto idb = (*mig)->add_guest(**ram_b, (*ram_b)->migrate_options(1, false));
  report(ida && idb, "two guests added to one migrator");
  if (!ida || !idb) return;

  // B moves first: the migrator's count is non-zero before A's vCPU moves.
  auto rehome_b = [&](NodeId to) {
    if (!(*mig)->rehome(*idb, NodeMask::single(to))) return false;
    for (int i = 0; i < 1000; ++i) {
      (void)(*mig)->step();
      auto p = (*mig)->rehome_progress(*idb);
      if (!p || p->state != RehomeState::running) return p && p->state == RehomeState::done;
    }
    return false;
  };
  report(rehome_b(x), "guest B rehomed to node " + std::to_string(x));

  const CpuId cpu = live.find(x)->cpu_vector().front();
  cpu_set_t old_set, others;
  sched_getaffinity(0, sizeof old_set, &old_set);
  others = old_set;
  CPU_CLR(static_cast<int>(cpu), &others);
  if (CPU_COUNT(&others) > 0) sched_setaffinity(0, sizeof others, &others);  // the handler off the vCPU's CPU
  SamplerConfig scfg;
  scfg.pages_per_second = 0;  // windows only from vcpu_moved's burst
  scfg.cpu_source = SampleCpuSource::vcpu_threads;
  auto sampler = UffdSampler::create(**ram_a, **mig, *ida, scfg);
  if (!sampler || !(*sampler)->start()) {
    report(false, "sampler of guest A started", sampler ? "" : sampler.error().message.c_str());
    sched_setaffinity(0, sizeof old_set, &old_set);
    return;
  }
  std::atomic<bool> stop{false}, ready{false};
  std::thread vcpu([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<int>(cpu), &set);
    (void)sched_setaffinity(0, sizeof set, &set);
    (void)(*sampler)->set_vcpu_thread(0, gettid());
    (void)(*mig)->set_vcpu_cpu(*ida, 0, cpu);
    ready = true;
    for (std::uint64_t pass = 1; !stop.load(std::memory_order_relaxed); ++pass)
      for (std::uint64_t i = 0; i < kA; ++i)
        *reinterpret_cast<volatile std::uint64_t*>(static_cast<char*>(a_base) + i * kFrameSize) = pass;
  });
  while (!ready.load()) sched_yield();
  // A's vCPU "moved" (to another CPU of the same node: its RAM stays
  // local); B keeps moving while A's samples come in.
  (void)(*sampler)->vcpu_moved(0);
  const double t0 = seconds_now();
  bool b_moved = true;
  for (int i = 0; (*sampler)->stats().steps_requested == 0 && seconds_now() - t0 < 60; ++i)
    b_moved &= rehome_b(i % 2 ? x : y);
  const double kicked_at = seconds_now();
  for (int i = 0; seconds_now() - kicked_at < 1.0; ++i) b_moved &= rehome_b(i % 2 ? x : y);
  stop = true;
  vcpu.join();
  (*sampler)->stop();
  sched_setaffinity(0, sizeof old_set, &old_set);
  const SamplerStats ss = (*sampler)->stats();
  const auto ga = (*mig)->guest_stats(*ida), gb = (*mig)->guest_stats(*idb);
  report(b_moved && gb && gb->pages_moved >= 2 * kB, "guest B's pages moved back and forth meanwhile",
         gb ? std::to_string(gb->pages_moved) + " pages" : "no stats");
  report(ss.steps_requested > 0, "guest A's moved vCPU asked for steps",
         std::to_string(ss.steps_requested) + " requests, " + std::to_string(ss.samples) + " samples");
  report(ga && ga->pages_moved == 0, "guest A's pages stayed (local)",
         ga ? std::to_string(ga->pages_moved) + " moved" : "no stats");
  report(ss.follow_extensions == 0, "guest B's moves did not extend guest A's following",
         std::to_string(ss.follow_extensions) + " extensions");
  munmap(a_base, kA * kFrameSize);
  munmap(b_base, kB * kFrameSize);
}

}  // namespace numaheap::vmtest
