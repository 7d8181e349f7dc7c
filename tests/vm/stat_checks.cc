// `numaheap stat` inside the NUMA guest, on a VMM-shaped process: this one.
// Threads named "CPU n/KVM" (as qemu names vCPU threads) are pinned one per
// CPU node, guest-RAM-like memory is bound half to a node where a vCPU runs
// and half to one where none does, and what stat reads from /proc is held
// against the kernel's own answers: move_pages(2) for where the pages are,
// sched_getcpu() for where the threads run.
#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "tools/proc_stat.h"
#include "vm_checks.h"

namespace numaheap::vmtest {

namespace {

constexpr std::size_t kPage = 4096, kHalf = 8u << 20;

struct VcpuLike {
  std::thread thread;
  CpuId cpu = 0;
  std::atomic<bool> on_cpu{false};
};

// Binds [p, p + len) to `node` and touches every page.
bool bind_and_touch(char* p, std::size_t len, NodeId node) {
  unsigned long mask[16] = {};
  mask[node / 64] |= 1ul << (node % 64);
  if (mbind(p, len, MPOL_BIND, mask, sizeof(mask) * 8 + 1, 0) != 0) return false;
  for (std::size_t off = 0; off < len; off += kPage) p[off] = 1;
  return true;
}

std::map<NodeId, std::uint64_t> node_bytes(const tools::GuestStat& g) {
  std::map<NodeId, std::uint64_t> out;
  for (const auto& [id, m] : g.memory.nodes) out[id] = m.bytes;
  return out;
}

}  // namespace

void run_stat_checks(const Topology& live) {
  // b: a memory node that gets no vCPU thread (a CPU-less one if there is
  // one); a: a memory node with CPUs other than b.
  NodeId a = kNoNode, b = kNoNode;
  for (const auto& n : live.nodes())
    if (n.has_memory() && !n.has_cpus()) b = n.id;
  for (const auto& n : live.nodes())
    if (n.has_memory() && n.has_cpus() && n.id != b) {
      if (a == kNoNode) a = n.id;
      else if (b == kNoNode && live.cpu_nodes().count() > 1) b = n.id;
    }
  if (a == kNoNode || b == kNoNode) {
    report(false, "stat checks need two memory nodes, one with CPUs");
    return;
  }
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<VcpuLike>> vcpus;
  for (const auto& n : live.nodes()) {
    if (!n.has_cpus() || n.id == b || vcpus.size() == 4) continue;
    auto v = std::make_unique<VcpuLike>();
    v->cpu = n.cpus[0];
    VcpuLike* raw = v.get();
    const unsigned index = static_cast<unsigned>(vcpus.size());
    v->thread = std::thread([raw, index, &stop] {
      const std::string name = "CPU " + std::to_string(index) + "/KVM";
      pthread_setname_np(pthread_self(), name.c_str());
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(raw->cpu, &set);
      sched_setaffinity(0, sizeof(set), &set);
      while (!stop.load()) {
        if (sched_getcpu() == static_cast<int>(raw->cpu)) raw->on_cpu.store(true);
        usleep(1000);
      }
    });
    vcpus.push_back(std::move(v));
  }
  // Each thread has run on its CPU at least once (a loaded TCG guest may
  // take a while to schedule one; not a timing assertion, a precondition).
  bool all_on_cpu = false;
  const auto on_cpu_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!all_on_cpu && std::chrono::steady_clock::now() < on_cpu_deadline) {
    all_on_cpu = true;
    for (const auto& v : vcpus) all_on_cpu = all_on_cpu && v->on_cpu.load();
    if (!all_on_cpu) usleep(1000);
  }
  report(all_on_cpu, "vCPU-like threads ran on the CPUs they are pinned to (60 s)");
  auto stop_threads = [&] {
    stop.store(true);
    for (auto& v : vcpus) v->thread.join();
  };

  auto before = tools::read_guest_stat("/", getpid(), live);
  report(before.has_value(), "stat reads this process", before ? "" : before.error().message.c_str());
  char* p = static_cast<char*>(mmap(nullptr, 2 * kHalf, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  const bool bound = p != MAP_FAILED && bind_and_touch(p, kHalf, a) && bind_and_touch(p + kHalf, kHalf, b);
  report(bound, "guest RAM bound to nodes " + std::to_string(a) + " and " + std::to_string(b),
         bound ? "" : "mmap/mbind: errno " + std::to_string(errno));
  auto after = tools::read_guest_stat("/", getpid(), live);
  if (!before || !after || !bound) {
    stop_threads();
    if (p != MAP_FAILED) munmap(p, 2 * kHalf);
    return;
  }

  // The kernel's count of the region's pages per node.
  std::vector<void*> pages;
  for (std::size_t off = 0; off < 2 * kHalf; off += kPage) pages.push_back(p + off);
  std::vector<int> status(pages.size(), -1);
  long rc = move_pages(0, pages.size(), pages.data(), nullptr, status.data(), 0);
  std::map<NodeId, std::uint64_t> kernel;
  for (int s : status)
    if (s >= 0) kernel[static_cast<NodeId>(s)] += kPage;
  report(rc == 0 && kernel[a] == kHalf && kernel[b] == kHalf, "move_pages finds the region on its nodes");

  // stat's per-node growth equals the region (other memory of this process
  // may move by a little between the two reads: 1 MiB of slack).
  auto b0 = node_bytes(*before), b1 = node_bytes(*after);
  for (NodeId n : {a, b}) {
    const auto grew = static_cast<std::int64_t>(b1[n]) - static_cast<std::int64_t>(b0[n]);
    const auto want = static_cast<std::int64_t>(kernel[n]);
    report(grew >= want - (1 << 20) && grew <= want + (1 << 20),
           "stat: node " + std::to_string(n) + " grew by the region's " + std::to_string(want >> 20) + " MiB",
           "grew by " + std::to_string(grew) + " bytes");
  }

  // vCPU threads: found by name, each on the CPU it is pinned to and that
  // CPU's node.
  bool threads_ok = after->vcpus.size() == vcpus.size();
  std::string detail = std::to_string(after->vcpus.size()) + " vCPU threads, expected " + std::to_string(vcpus.size());
  for (std::size_t i = 0; threads_ok && i < vcpus.size(); ++i) {
    const auto& v = after->vcpus[i];
    threads_ok = v.index == i && v.cpu == static_cast<int>(vcpus[i]->cpu) && v.node == live.node_of_cpu(vcpus[i]->cpu);
    if (!threads_ok)
      detail = "vCPU " + std::to_string(i) + " on cpu " + std::to_string(v.cpu) + " node " + std::to_string(v.node) +
               ", pinned to cpu " + std::to_string(vcpus[i]->cpu);
  }
  report(threads_ok, "stat: vCPU threads and their nodes", threads_ok ? "" : detail);

  // Node b has no vCPU: its memory is what numaheap would move, to the
  // vCPUs' nodes; node a keeps its memory.
  const bool move_ok = after->move && after->move->from.count(b) && after->move->from.at(b) >= kHalf &&
                       !after->move->from.count(a) && after->move->to.count(a);
  report(move_ok, "stat: node " + std::to_string(b) + "'s memory would move toward the vCPUs");
  report(after->local_fraction && *after->local_fraction > 0 && *after->local_fraction < 1,
         "stat: local fraction between 0 and 1");

  stop_threads();
  munmap(p, 2 * kHalf);
}

}  // namespace numaheap::vmtest
