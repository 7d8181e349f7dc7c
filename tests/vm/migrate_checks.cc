// The migrator's kernel mover inside the NUMA guest: a VMM-style guest RAM
// mapping is populated on one node, moved to another with KernelMover, then
// rehomed back by the Migrator; after each, the kernel's own move_pages
// query must place every page on the target and the contents must be intact.
#include <numaif.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "numaheap/migrator.h"
#include "numaheap/mover.h"
#include "vm_checks.h"

namespace numaheap::vmtest {

namespace {

constexpr std::uint64_t kPages = 2048;  // 8 MiB of "guest RAM"

// Pages not on `node` according to the kernel, or -1 if the query failed.
long pages_off_node(void* base, NodeId node) {
  std::vector<void*> addrs(kPages);
  std::vector<int> status(kPages);
  for (std::uint64_t i = 0; i < kPages; ++i) addrs[i] = static_cast<char*>(base) + i * kFrameSize;
  if (move_pages(0, kPages, addrs.data(), nullptr, status.data(), 0) != 0) return -1;
  long off = 0;
  for (int s : status) off += s != static_cast<int>(node);
  return off;
}

std::uint64_t bad_contents(const void* base) {
  std::uint64_t bad = 0;
  for (std::uint64_t i = 0; i < kPages; ++i) {
    const auto* p = reinterpret_cast<const std::uint64_t*>(static_cast<const char*>(base) + i * kFrameSize);
    bad += p[0] != i * 77 + 1 || p[kFrameSize / 8 - 1] != ~i;
  }
  return bad;
}

std::uint64_t vmstat(const char* key) {
  FILE* f = std::fopen("/proc/vmstat", "r");
  if (!f) return 0;
  char name[64];
  unsigned long long v = 0, found = 0;
  while (std::fscanf(f, "%63s %llu", name, &v) == 2)
    if (std::strcmp(name, key) == 0) found = v;
  std::fclose(f);
  return found;
}

// One transparent huge page of "guest RAM" moved by KernelMover's
// whole-block move: the kernel must migrate it whole from its first page
// (512 pages on the target, thp_migration_success, no split) and the block
// must still be one huge page there. Skipped (reported) when the guest
// kernel gives no THP.
void run_thp_block_check(NodeId from, NodeId to) {
  constexpr std::uint64_t kBlock = KernelMover::kHugeBlockPages, kBytes = kBlock * kFrameSize;
  void* raw = mmap(nullptr, 2 * kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return report(false, "THP mapping", std::strerror(errno));
  char* base = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + kBytes - 1) / kBytes * kBytes);
  (void)madvise(base, kBytes, MADV_HUGEPAGE);
  NodeMask only_from = NodeMask::single(from);
  (void)mbind(base, kBytes, MPOL_BIND, only_from.words().data(), kMaxNodes + 1, 0);
  for (std::uint64_t i = 0; i < kBlock; ++i) reinterpret_cast<std::uint64_t*>(base + i * kFrameSize)[0] = i + 5;
  (void)mbind(base, kBytes, MPOL_DEFAULT, nullptr, 0, 0);
  auto km = KernelMover::create(base, kBlock);
  if (!km || !km->huge_block(0)) {
    std::printf("numaheap-vmtest: note: no transparent huge page in the guest; THP block move not checked\n");
    munmap(raw, 2 * kBytes);
    return;
  }
  const std::uint64_t ok0 = vmstat("thp_migration_success"), split0 = vmstat("thp_split_page");
  Gfn g[1] = {77};  // any page of the block
  MoveOutcome out[1];
  auto r = km->move(g, to, MoveGranularity::whole_blocks, out);
  std::vector<void*> addrs(kBlock);
  std::vector<int> status(kBlock);
  for (std::uint64_t i = 0; i < kBlock; ++i) addrs[i] = base + i * kFrameSize;
  long off = move_pages(0, kBlock, addrs.data(), nullptr, status.data(), 0) == 0 ? 0 : -1;
  for (int s : status) off += off >= 0 && s != static_cast<int>(to);
  std::uint64_t bad = 0;
  for (std::uint64_t i = 0; i < kBlock; ++i) bad += reinterpret_cast<std::uint64_t*>(base + i * kFrameSize)[0] != i + 5;
  report(r.has_value() && out[0] == MoveOutcome::moved && r->frames_moved == kBlock && off == 0 && bad == 0,
         "kernel mover moves a THP block " + std::to_string(from) + " -> " + std::to_string(to) + " whole",
         (r ? std::to_string(r->frames_moved) + " frames moved, outcome " + move_outcome_name(out[0])
            : std::string(errc_name(r.error()))) +
             ", " + std::to_string(off) + " pages elsewhere, " + std::to_string(bad) + " bad");
  report(vmstat("thp_migration_success") > ok0 && vmstat("thp_split_page") == split0 && km->huge_block(0),
         "the THP moved as one huge page (thp_migration_success, no split, still huge on node " + std::to_string(to) + ")",
         "thp_migration_success +" + std::to_string(vmstat("thp_migration_success") - ok0) + ", thp_split_page +" +
             std::to_string(vmstat("thp_split_page") - split0));
  munmap(raw, 2 * kBytes);
}

}  // namespace

void run_migrate_checks(const Topology& live) {
  // The seed VM's nodes 2 and 3; elsewhere the last two memory nodes.
  NodeId from = 2, to = 3;
  const NodeMask mem = live.memory_nodes();
  if (!mem.test(from) || !mem.test(to)) {
    if (mem.count() < 2) {
      report(false, "migrate checks need two memory nodes");
      return;
    }
    to = mem.last();
    from = kNoNode;
    for (NodeId n : mem)
      if (n != to) from = n;
  }
  const std::string route = std::to_string(from) + " -> " + std::to_string(to);
  void* base = mmap(nullptr, kPages * kFrameSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    report(false, "guest RAM mapping", std::strerror(errno));
    return;
  }
  NodeMask only_from = NodeMask::single(from);
  long rc = mbind(base, kPages * kFrameSize, MPOL_BIND, only_from.words().data(), kMaxNodes + 1, 0);
  report(rc == 0, "guest RAM bound to node " + std::to_string(from), rc ? std::strerror(errno) : "");
  for (std::uint64_t i = 0; i < kPages; ++i) {  // the guest writes its memory
    auto* p = reinterpret_cast<std::uint64_t*>(static_cast<char*>(base) + i * kFrameSize);
    p[0] = i * 77 + 1;
    p[kFrameSize / 8 - 1] = ~i;
  }
  (void)mbind(base, kPages * kFrameSize, MPOL_DEFAULT, nullptr, 0, 0);
  report(pages_off_node(base, from) == 0, "populated guest range is on node " + std::to_string(from));

  auto km = KernelMover::create(base, kPages);
  report(km.has_value(), "kernel mover created");
  if (!km) return;
  std::vector<Gfn> gfns(kPages);
  std::vector<MoveOutcome> out(kPages);
  for (std::uint64_t i = 0; i < kPages; ++i) gfns[i] = i;
  auto moved = km->move(gfns, to, MoveGranularity::pages, out);
  std::uint64_t count[kMoveOutcomeCount] = {};
  for (auto o : out) ++count[static_cast<std::size_t>(o)];
  std::string detail = moved ? std::to_string(moved->frames_moved) + " frames moved;" : errc_name(moved.error());
  for (std::size_t o = 0; o < kMoveOutcomeCount; ++o)
    if (count[o]) detail += std::string(" ") + move_outcome_name(static_cast<MoveOutcome>(o)) + " " + std::to_string(count[o]);
  report(moved.has_value() && count[0] == kPages && moved->frames_moved == kPages,
         "kernel move " + route + ": every page reports moved", detail);
  const long off = pages_off_node(base, to);
  report(off == 0, "kernel confirms every page on node " + std::to_string(to), std::to_string(off) + " elsewhere");
  report(bad_contents(base) == 0, "contents intact after the kernel move");
  auto bad_node = km->move(std::span<const Gfn>(gfns.data(), 1), 200, MoveGranularity::pages,
                           std::span<MoveOutcome>(out.data(), 1));
  report(!bad_node.has_value() && bad_node.error() == Errc::invalid_node, "move to a missing node is invalid_node",
         bad_node ? "succeeded" : errc_name(bad_node.error()));

  // Rehome back through the Migrator, in steps, the guest writing meanwhile.
  MigratorConfig cfg;
  cfg.rehome_pages_per_step = 256;
  auto mig = Migrator::create(live, cfg);
  report(mig.has_value(), "migrator created");
  if (!mig) return;
  auto id = (*mig)->add_guest(*km);
  report(id.has_value(), "kernel-mover guest registered");
  if (!id) return;
  Status st = (*mig)->rehome(*id, NodeMask::single(from));
  report(st.has_value(), "rehome " + std::to_string(to) + " -> " + std::to_string(from) + " requested");
  int steps = 0;
  std::uint64_t last_done = 0;
  bool monotonic = true;
  for (; steps < 1000; ++steps) {
    (void)(*mig)->step();
    auto p = (*mig)->rehome_progress(*id);
    if (!p) break;
    monotonic &= p->done >= last_done;
    last_done = p->done;
    auto* w = reinterpret_cast<std::uint64_t*>(static_cast<char*>(base) + (steps % kPages) * kFrameSize);
    w[0] = (steps % kPages) * 77 + 1;  // same value: a live write that must survive
    if (p->state != RehomeState::running) break;
  }
  auto p = (*mig)->rehome_progress(*id);
  report(p && p->state == RehomeState::done && p->done == p->total && p->total == kPages && monotonic,
         "rehome finished with progress " + (p ? std::to_string(p->done) + "/" + std::to_string(p->total) : "?"),
         "steps " + std::to_string(steps));
  const long back = pages_off_node(base, from);
  report(back == 0, "kernel confirms every page rehomed on node " + std::to_string(from),
         std::to_string(back) + " elsewhere");
  report(bad_contents(base) == 0, "contents intact after rehome");
  (void)(*mig)->remove_guest(*id);
  munmap(base, kPages * kFrameSize);
  run_thp_block_check(from, to);
}

}  // namespace numaheap::vmtest
