// The migrator's kernel mover inside the NUMA guest: a VMM-style guest RAM
// mapping is populated on one node, moved to another with KernelMover, then
// rehomed back by the Migrator; after each, the kernel's own move_pages
// query must place every page on the target and the contents must be intact.
#include <numaif.h>
#include <sys/mman.h>

#include <cerrno>
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
}

}  // namespace numaheap::vmtest
