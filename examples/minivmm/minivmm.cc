// minivmm: a VMM-shaped reference program for numaheap's KVM integration
// (include/numaheap/vmm.h) and the head-to-head with Linux's NUMA balancing
// (tests/vm/compare.sh, docs/vm-tests.md).
//
//   minivmm [--live | --topology FILE] --workload private|shared|vcpu-move|trace
//           [--trace FILE] [--seconds S] [--mode numaheap|autonuma|none]
//           [--json OUT] [--period-ms P] [--set-pages N] [--shared-pages N]
//           [--move-at S] [--backing memfd|anonymous] [--verbose]
//
// Shape: guest RAM is one memfd per memory node (a vnode each; --backing
// anonymous: private anonymous mappings, QEMU's memory-backend-ram), registered
// as GuestRam (bound and populated on its node, then the binding is dropped
// so either balancer may move pages: the same start for every mode). One
// vCPU thread per CPU node, named "CPU n/KVM" as QEMU names them and pinned
// to that node's first CPU. numaheap mode: the userfaultfd sampler (vCPU
// threads as the sample source) feeds the migrator, whose background thread
// moves pages with the kernel mover; both are started from a thread kept off
// the vCPUs' CPUs, as a VMM keeps its I/O threads; the kernel's NUMA
// balancing is off. autonuma: kernel.numa_balancing=1 and no numaheap.
// none: neither.
//
// Workloads (each vCPU touches one word of each page of its set per pass):
//   private    each vCPU its own hot set, placed on the next memory node;
//   shared     one set spread over all memory nodes, every vCPU touches all;
//   vcpu-move  private sets placed local, then at --move-at (default a third
//              of the run) every odd vCPU is sched_setaffinity'd to the node
//              of the vCPU before it, and the migrator told (set_vcpu_cpu,
//              then request_step: a step at once);
//   trace      replay of the simulator's trace format (docs/simulator.md):
//              each vCPU loops over its own accesses in order; "# vcpu V
//              node N at SEQ" moves happen at SEQ / last SEQ of the run.
//
// Measured every period with the kernel's move_pages(2) query over the
// workload's pages (a page the sampler holds unmapped keeps its last known
// node): local ratio = accesses (counted by the workload itself, per vCPU
// and page) that hit the accessing vCPU's node; time from the (first) vCPU
// move, or from the start, until the ratio over the last 1 s (all of it
// after the move) is >= 90%; final ratio = the last 2 s (periods with few
// accesses are noise). Ratios are per vCPU (weighted by its accesses to
// each page), then averaged over the vCPUs that ran: under TCG vCPUs
// progress unevenly and pooled accesses would follow the fastest one (the
// pooled figure is reported too); pages bounced =
// pages seen on >= 3 node positions over time (moved more than once), the
// same rule for every mode; pages migrated = /proc/vmstat pgmigrate_success
// over the run, the same rule for every mode (the kernel counts a huge page
// as its 512 pages; numaheap's own counter, pages it asked to move that
// changed node, is numaheap.pages_moved); throughput =
// accesses per second over all vCPUs. Each vCPU also counts its accesses in
// the page itself (its own word): at the end the page must hold exactly the
// count the workload kept -- a sample or a move that lost a write shows up
// as data_errors.
//
// numaheap mode also keeps a timeline (JSON "timeline", one entry per
// period; --verbose prints it): samples (all, and the moved vCPUs'), the
// sampler's budget and handler load, pages armed, the migrator's steps,
// moves and their outcomes; and "after_move": when the moved vCPUs were
// first sampled and when their pages first followed.
//
// Exit: 0 ok, 1 bad input or a failure, 2 usage.
#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "numaheap/migrator.h"
#include "numaheap/topology_io.h"
#include "numaheap/vmm.h"

using namespace numaheap;
using nlohmann::json;

namespace {

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "minivmm: %s\n", what.c_str());
  std::exit(1);
}

struct Options {
  std::string topology, workload = "private", trace, json_out, mode = "numaheap", backing = "memfd";
  bool live = false, verbose = false;
  double seconds = 30, move_at = -1;
  unsigned period_ms = 250;
  std::uint64_t set_pages = 1024, shared_pages = 2048;
};

// A vCPU move (or the trace's first placement, at 0): vCPU `vcpu` runs on
// node `node` from `at_s` on.
struct Move {
  double at_s = 0;
  std::uint32_t vcpu = 0;
  NodeId node = kNoNode;
};

struct Workload {
  std::vector<NodeId> page_node;                  // initial node of each workload page
  std::vector<std::vector<std::uint32_t>> order;  // per vCPU: page indices, in access order
  std::vector<std::vector<std::uint32_t>> sets;   // per vCPU: its distinct pages
  std::vector<Move> moves;                        // sorted by at_s
};

// The simulator's trace format: "<seq> <vcpu> <hex address> <R|W>" lines and
// "# vcpu V node N [at SEQ]" placements; anything else after '#' is a comment.
struct TraceFile {
  struct Access { std::uint64_t seq; std::uint32_t vcpu; std::uint64_t page; };
  struct Place { std::uint64_t at; std::uint32_t vcpu; NodeId node; };
  std::vector<Access> accesses;
  std::vector<Place> places;
};

TraceFile read_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path + ": cannot open");
  TraceFile t;
  std::string line;
  for (std::size_t no = 1; std::getline(in, line); ++no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream ws(line);
    std::vector<std::string> w;
    for (std::string s; ws >> s;) w.push_back(s);
    if (w.empty()) continue;
    const std::string where = path + ":" + std::to_string(no) + ": ";
    try {
      if (w[0][0] == '#') {
        if (w[0] == "#") w.erase(w.begin());
        else w[0].erase(0, 1);
        if (w.empty() || w[0] != "vcpu") continue;
        if ((w.size() != 4 && w.size() != 6) || w[2] != "node" || (w.size() == 6 && w[4] != "at"))
          fail(where + "expected '# vcpu V node N [at SEQ]'");
        t.places.push_back({w.size() == 6 ? std::stoull(w[5]) : 0, static_cast<std::uint32_t>(std::stoul(w[1])),
                            static_cast<NodeId>(std::stoul(w[3]))});
        continue;
      }
      if (w.size() != 4 || (w[3] != "R" && w[3] != "W")) fail(where + "expected '<seq> <vcpu> <address-hex> <R|W>'");
      std::size_t used = 0;
      const std::uint64_t addr = std::stoull(w[2], &used, 16);
      if (used != w[2].size()) fail(where + "address is not hex");
      const auto vcpu = std::stoul(w[1]);
      if (vcpu >= 64) fail(where + "vcpu must be below 64");
      t.accesses.push_back({std::stoull(w[0]), static_cast<std::uint32_t>(vcpu), addr >> kFrameShift});
    } catch (const std::logic_error&) {
      fail(where + "not a number");
    }
  }
  if (t.accesses.empty()) fail(path + ": no accesses");
  return t;
}

// Where everything runs: vCPU v on node vcpu_node[v], CPU vcpu_cpu[v] (one
// vCPU per CPU node; a trace with more vCPUs doubles up round robin);
// memory nodes for vnodes.
struct Machine {
  std::vector<NodeId> cpu_nodes, mem_nodes, vcpu_node;
  std::vector<CpuId> vcpu_cpu;
  NodeId memory_for(const Topology& topo, NodeId cpu_node) const {
    const auto order = topo.fallback_order(cpu_node);
    return order.empty() ? mem_nodes.front() : order.front();
  }
  // Where a vCPU moved to node n runs: the node's last CPU (its first runs
  // the node's own vCPU).
  CpuId move_cpu(const Topology& topo, NodeId n) const { return topo.find(n)->cpu_vector().back(); }
};

Workload make_workload(const Options& o, const Topology& topo, const Machine& m, const TraceFile* trace) {
  Workload w;
  const auto vcpus = static_cast<std::uint32_t>(m.vcpu_node.size());
  w.order.resize(vcpus);
  auto add_set = [&](std::uint32_t v, NodeId node, std::uint64_t pages) {
    for (std::uint64_t i = 0; i < pages; ++i) {
      w.order[v].push_back(static_cast<std::uint32_t>(w.page_node.size()));
      w.page_node.push_back(node);
    }
  };
  if (o.workload == "private" || o.workload == "vcpu-move") {
    for (std::uint32_t v = 0; v < vcpus; ++v) {
      const NodeId home = m.memory_for(topo, m.vcpu_node[v]);
      NodeId node = home;
      if (o.workload == "private") {  // the next memory node: remote where there are two
        const auto it = std::find(m.mem_nodes.begin(), m.mem_nodes.end(), home);
        node = m.mem_nodes[(static_cast<std::size_t>(it - m.mem_nodes.begin()) + 1) % m.mem_nodes.size()];
      }
      add_set(v, node, o.set_pages);
    }
    if (o.workload == "vcpu-move") {
      const double at = o.move_at >= 0 ? o.move_at : o.seconds / 3;
      for (std::uint32_t v = 1; v < vcpus; v += 2) w.moves.push_back({at, v, m.vcpu_node[v - 1]});
      if (vcpus == 1) w.moves.push_back({at, 0, m.vcpu_node[0]});  // one node: another CPU of it
    }
  } else if (o.workload == "shared") {
    for (std::uint64_t i = 0; i < o.shared_pages; ++i)
      w.page_node.push_back(m.mem_nodes[i * m.mem_nodes.size() / o.shared_pages]);
    for (std::uint32_t v = 0; v < vcpus; ++v)
      for (std::uint64_t i = 0; i < o.shared_pages; ++i) w.order[v].push_back(static_cast<std::uint32_t>(i));
  } else if (o.workload == "trace") {
    const TraceFile& t = *trace;
    // Trace nodes are the recording machine's: a node with CPUs here is used
    // as it is, any other maps to the (N mod count)-th CPU node.
    auto here = [&](NodeId n) {
      return std::find(m.cpu_nodes.begin(), m.cpu_nodes.end(), n) != m.cpu_nodes.end()
                 ? n
                 : m.cpu_nodes[n % m.cpu_nodes.size()];
    };
    const std::uint64_t last_seq = std::max<std::uint64_t>(1, t.accesses.back().seq);
    std::vector<std::uint64_t> pages;
    for (const auto& a : t.accesses) pages.push_back(a.page);
    std::sort(pages.begin(), pages.end());
    pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
    w.page_node.assign(pages.size(), kNoNode);
    std::vector<NodeId> at_start(vcpus, kNoNode);
    for (const auto& p : t.places)
      if (p.at == 0 && p.vcpu < vcpus) at_start[p.vcpu] = here(p.node);
      else if (p.vcpu < vcpus) w.moves.push_back({o.seconds * static_cast<double>(p.at) / static_cast<double>(last_seq),
                                                  p.vcpu, here(p.node)});
    for (const auto& a : t.accesses) {
      const auto idx = static_cast<std::uint32_t>(std::lower_bound(pages.begin(), pages.end(), a.page) - pages.begin());
      if (at_start[a.vcpu] == kNoNode) fail(o.trace + ": vcpu " + std::to_string(a.vcpu) + " has no '# vcpu V node N' line");
      if (w.page_node[idx] == kNoNode) w.page_node[idx] = m.memory_for(topo, at_start[a.vcpu]);
      w.order[a.vcpu].push_back(idx);
    }
    // The trace's vCPUs start where it says; the others stay idle.
    for (std::uint32_t v = 0; v < vcpus; ++v)
      if (at_start[v] != kNoNode && at_start[v] != m.vcpu_node[v]) w.moves.push_back({0, v, at_start[v]});
  } else {
    fail("unknown workload '" + o.workload + "' (private, shared, vcpu-move, trace)");
  }
  std::sort(w.moves.begin(), w.moves.end(), [](const Move& a, const Move& b) { return a.at_s < b.at_s; });
  w.sets.resize(vcpus);
  for (std::uint32_t v = 0; v < vcpus; ++v) {
    w.sets[v] = w.order[v];
    std::sort(w.sets[v].begin(), w.sets[v].end());
    w.sets[v].erase(std::unique(w.sets[v].begin(), w.sets[v].end()), w.sets[v].end());
  }
  return w;
}

// pgmigrate_* count 4 KiB pages (a huge page migrated counts 512);
// thp_collapse_alloc: khugepaged copied small pages into a new huge page
// (the copy may land on another node: a node change no migration counts).
constexpr const char* kVmstatKeys[] = {"pgmigrate_success",    "pgmigrate_fail",      "numa_pages_migrated",
                                       "numa_hint_faults",     "numa_pte_updates",    "thp_migration_success",
                                       "thp_migration_fail",   "thp_migration_split", "thp_collapse_alloc",
                                       "thp_split_pmd",        "thp_split_page",      "compact_migrate_scanned"};

std::map<std::string, std::uint64_t> read_vmstat() {
  std::map<std::string, std::uint64_t> out;
  std::ifstream in("/proc/vmstat");
  std::string key;
  std::uint64_t value = 0;
  while (in >> key >> value)
    if (std::find(std::begin(kVmstatKeys), std::end(kVmstatKeys), key) != std::end(kVmstatKeys)) out[key] = value;
  return out;
}

int read_numa_balancing() {
  std::ifstream in("/proc/sys/kernel/numa_balancing");
  int v = -1;
  in >> v;
  return in ? v : -1;
}

// Writes kernel.numa_balancing; returns the error text, empty on success.
std::string set_numa_balancing(int value) {
  std::FILE* f = std::fopen("/proc/sys/kernel/numa_balancing", "w");
  if (!f) return std::strerror(errno);
  const bool ok = std::fprintf(f, "%d", value) > 0;
  const bool closed = std::fclose(f) == 0;
  return ok && closed ? std::string() : std::string("write failed");
}

cpu_set_t cpu_set_of(CpuId cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(static_cast<int>(cpu), &s);
  return s;
}

}  // namespace

// CPU time (user + system, seconds) of this process's live threads, summed
// by thread name (/proc/self/task/TID/stat: the name in parentheses, then
// utime and stime in clock ticks as fields 14 and 15).
std::map<std::string, double> thread_cpu_by_name() {
  std::map<std::string, double> by_name;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream f(e.path() / "stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    const auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int k = 3; k <= 15 && rest >> field; ++k) {
      if (k == 14) utime = std::stoull(field);
      if (k == 15) stime = std::stoull(field);
    }
    by_name[line.substr(open + 1, close - open - 1)] += static_cast<double>(utime + stime) / tick;
  }
  return by_name;
}

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"minivmm: VMM-shaped numaheap reference program and NUMA-balancing comparison"};
  auto* topo_opt = app.add_option("--topology", o.topology, "numactl -H text of this machine");
  app.add_flag("--live", o.live, "load the topology from the kernel (the default)")->excludes(topo_opt);
  app.add_option("--workload", o.workload, "private, shared, vcpu-move or trace");
  app.add_option("--trace", o.trace, "trace file for --workload trace")->check(CLI::ExistingFile);
  app.add_option("--seconds", o.seconds, "run time")->check(CLI::Range(0.25, 3600.0));
  app.add_option("--mode", o.mode, "numaheap, autonuma or none")
      ->check(CLI::IsMember({"numaheap", "autonuma", "none"}));
  app.add_option("--json", o.json_out, "write the results here");
  app.add_option("--period-ms", o.period_ms, "measuring period")->check(CLI::Range(10u, 10000u));
  app.add_option("--set-pages", o.set_pages, "pages per vCPU hot set")->check(CLI::Range(1, 1 << 20));
  app.add_option("--shared-pages", o.shared_pages, "pages of the shared set")->check(CLI::Range(1, 1 << 20));
  app.add_option("--backing", o.backing, "guest RAM: memfd (the default) or anonymous")
      ->check(CLI::IsMember({"memfd", "anonymous"}));
  app.add_flag("--verbose", o.verbose, "print the numaheap timeline per period (stderr)");
  app.add_option("--move-at", o.move_at, "vcpu-move: seconds until the move (default: a third of the run)")
      ->check(CLI::Range(0.0, 3600.0));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (o.workload == "trace" && o.trace.empty()) {
    std::fprintf(stderr, "minivmm: --workload trace needs --trace FILE\n");
    return 2;
  }

  auto loaded = o.topology.empty() ? load_topology_libnuma() : load_topology_numactl_file(o.topology);
  if (!loaded) fail(loaded.error().message);
  const Topology& topo = *loaded;
  Machine m;
  for (NodeId n : topo.cpu_nodes()) m.cpu_nodes.push_back(n);
  for (NodeId n : topo.memory_nodes()) m.mem_nodes.push_back(n);
  if (m.cpu_nodes.empty() || m.mem_nodes.empty()) fail("the topology needs a node with CPUs and one with memory");
  std::optional<TraceFile> trace;
  std::size_t want_vcpus = m.cpu_nodes.size();
  if (o.workload == "trace") {
    trace = read_trace(o.trace);
    for (const auto& a : trace->accesses) want_vcpus = std::max<std::size_t>(want_vcpus, a.vcpu + 1);
  }
  for (std::size_t v = 0; v < want_vcpus; ++v) {
    const NodeId n = m.cpu_nodes[v % m.cpu_nodes.size()];
    const auto cpus = topo.find(n)->cpu_vector();
    m.vcpu_node.push_back(n);
    m.vcpu_cpu.push_back(cpus[(v / m.cpu_nodes.size()) % cpus.size()]);
  }
  const Workload w = make_workload(o, topo, m, trace ? &*trace : nullptr);
  const auto vcpus = static_cast<std::uint32_t>(m.vcpu_node.size());
  const std::size_t npages = w.page_node.size();

  // ---- guest RAM: one memfd per memory node holding the pages placed there.
  struct Region {
    NodeId node;
    std::uint64_t pages = 0;
    char* host = nullptr;
    char* view = nullptr;  // memfd: the measurer's read-only second mapping
  };
  std::vector<Region> regions;
  for (NodeId n : m.mem_nodes) regions.push_back({n});
  std::vector<std::uint32_t> region_of(npages);
  std::vector<std::uint64_t> slot_of(npages);
  for (std::size_t p = 0; p < npages; ++p) {
    const auto r = static_cast<std::uint32_t>(std::find(m.mem_nodes.begin(), m.mem_nodes.end(), w.page_node[p]) -
                                              m.mem_nodes.begin());
    region_of[p] = r;
    slot_of[p] = regions[r].pages++;
  }
  std::vector<GuestRamRegion> ram_regions;
  std::vector<VnodeRam> vnodes;
  std::uint64_t gpa = 0;
  const bool anonymous = o.backing == "anonymous";
  constexpr std::uint64_t kGranule = std::uint64_t{2} << 20;
  for (std::size_t r = 0; r < regions.size(); ++r) {
    Region& g = regions[r];
    if (g.pages == 0) continue;
    const std::uint64_t bytes = g.pages * kFrameSize;
    // As QEMU maps guest RAM: 2 MiB aligned, MADV_HUGEPAGE, so the kernel
    // can back it with transparent huge pages (the same RAM for every mode).
    void* hole = mmap(nullptr, bytes + kGranule, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (hole == MAP_FAILED) fail("mmap of the guest RAM hole: " + std::string(std::strerror(errno)));
    void* at = reinterpret_cast<void*>((reinterpret_cast<std::uintptr_t>(hole) + kGranule - 1) / kGranule * kGranule);
    void* p = MAP_FAILED;
    if (anonymous) {
      p = mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    } else {
      const std::string name = "guest-ram-vnode" + std::to_string(r);
      const int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
      if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) fail("memfd: " + std::string(std::strerror(errno)));
      p = mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
      void* view = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
      close(fd);
      if (view == MAP_FAILED) fail("mmap of the measuring view: " + std::string(std::strerror(errno)));
      g.view = static_cast<char*>(view);
    }
    if (p == MAP_FAILED) fail("mmap of guest RAM: " + std::string(std::strerror(errno)));
    (void)madvise(p, bytes, MADV_HUGEPAGE);  // refused where THP is off: 4 KiB pages then
    g.host = static_cast<char*>(p);
    // memfd RAM is mapped twice (the view): moves need MPOL_MF_MOVE_ALL.
    ram_regions.push_back({p, bytes, gpa, anonymous ? RamBacking::anonymous : RamBacking::memfd, !anonymous});
    vnodes.push_back({static_cast<std::uint32_t>(r), gpa, bytes, NodeMask::single(g.node)});
    gpa += (bytes + kGranule - 1) / kGranule * kGranule;
  }
  auto ram = GuestRam::create(topo, ram_regions, vnodes);
  if (!ram) fail("guest RAM: " + ram.error().message);
  // Same start for every mode: populated on its node, then no binding (a
  // bound range is out of NUMA balancing's reach).
  for (const auto& r : ram_regions)
    if (mbind(r.host, r.bytes, MPOL_DEFAULT, nullptr, 0, 0) != 0) fail("mbind(MPOL_DEFAULT): " + std::string(std::strerror(errno)));
  std::vector<char*> addr(npages);
  for (std::size_t p = 0; p < npages; ++p) addr[p] = regions[region_of[p]].host + slot_of[p] * kFrameSize;

  // ---- the mode
  // The host's setting comes back at the end (a test run on a real host).
  const int balancing_before = read_numa_balancing();
  const std::string balancing_error = set_numa_balancing(o.mode == "autonuma" ? 1 : 0);
  if (!balancing_error.empty() && o.mode == "autonuma")
    fail("cannot enable kernel.numa_balancing: " + balancing_error);
  std::unique_ptr<Migrator> mig;
  std::unique_ptr<UffdSampler> sampler;
  GuestId gid = 0;
  std::string sampler_error;
  // Keep the helper threads (sampler handler, migrator) off the vCPUs' CPUs:
  // they inherit the affinity of the thread that starts them.
  cpu_set_t all, helpers;
  sched_getaffinity(0, sizeof all, &all);
  helpers = all;
  for (CpuId c : m.vcpu_cpu) CPU_CLR(static_cast<int>(c), &helpers);
  const bool helpers_apart = CPU_COUNT(&helpers) > 0;
  if (helpers_apart) sched_setaffinity(0, sizeof helpers, &helpers);
  if (o.mode == "numaheap") {
    MigratorConfig mcfg;  // defaults; the clock only so that stats() times steps and moves
    mcfg.clock_ns = [](void*) -> std::uint64_t {
      timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
    };
    auto created = Migrator::create(topo, mcfg);
    if (!created) fail("migrator: " + std::string(errc_name(created.error())));
    mig = std::move(*created);
    auto id = mig->add_guest(**ram, (*ram)->migrate_options(vcpus, false));
    if (!id) fail("migrator add_guest: " + std::string(errc_name(id.error())));
    gid = *id;
    for (std::uint32_t v = 0; v < vcpus; ++v) (void)mig->set_vcpu_cpu(gid, v, m.vcpu_cpu[v]);
    SamplerConfig scfg;
    scfg.cpu_source = SampleCpuSource::vcpu_threads;
    auto s = UffdSampler::create(**ram, *mig, gid, scfg);
    if (s) sampler = std::move(*s);
    else sampler_error = s.error().message;
  }

  // ---- vCPUs
  std::vector<std::atomic<std::uint32_t>> counts(static_cast<std::size_t>(vcpus) * npages);
  std::vector<std::uint64_t> counted(counts.size(), 0);
  std::vector<std::atomic<std::uint64_t>> vcpu_accesses(vcpus);
  std::vector<std::atomic<pid_t>> tids(vcpus);
  std::vector<double> vcpu_cpu_s(vcpus, 0.0);  // each vCPU thread's own CPU time, at its end
  std::vector<NodeId> vcpu_node(m.vcpu_node);
  std::atomic<bool> stop{false};
  std::atomic<std::uint32_t> ready{0};
  std::vector<std::thread> threads;
  for (std::uint32_t v = 0; v < vcpus; ++v)
    threads.emplace_back([&, v] {
      const std::string name = "CPU " + std::to_string(v) + "/KVM";
      pthread_setname_np(pthread_self(), name.c_str());
      const cpu_set_t set = cpu_set_of(m.vcpu_cpu[v]);
      sched_setaffinity(0, sizeof set, &set);
      tids[v] = gettid();
      ready.fetch_add(1);
      while (ready.load() <= vcpus && !stop.load()) std::this_thread::yield();
      const auto& order = w.order[v];
      std::atomic<std::uint32_t>* mine = &counts[static_cast<std::size_t>(v) * npages];
      std::uint64_t done = 0;
      while (!stop.load(std::memory_order_relaxed) && !order.empty()) {
        for (std::uint32_t p : order) {
          // vCPU v's own word of the page: nobody else writes it.
          auto* word = reinterpret_cast<volatile std::uint64_t*>(addr[p]) + v;
          *word = *word + 1;
          mine[p].fetch_add(1, std::memory_order_relaxed);
        }
        done += order.size();
        vcpu_accesses[v].store(done, std::memory_order_relaxed);
      }
      timespec cpu{};
      if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0)
        vcpu_cpu_s[v] = static_cast<double>(cpu.tv_sec) + static_cast<double>(cpu.tv_nsec) / 1e9;
    });
  while (ready.load() < vcpus) std::this_thread::yield();
  if (sampler) {
    for (std::uint32_t v = 0; v < vcpus; ++v) (void)sampler->set_vcpu_thread(v, tids[v].load());
    if (Status st = sampler->start(); !st) {
      sampler_error = errc_name(st.error());
      sampler.reset();
    }
  }
  if (mig) {
    if (Status st = mig->start(); !st) fail(std::string("migrator start: ") + errc_name(st.error()));
  }
  if (!sampler_error.empty()) std::fprintf(stderr, "minivmm: sampler unavailable: %s\n", sampler_error.c_str());
  const auto vmstat0 = read_vmstat();
  ready.fetch_add(1);  // go

  // ---- measuring
  std::vector<int> last(npages, -1), changes(npages, 0);
  std::vector<std::vector<int>> seen_nodes(npages);  // the nodes each page was seen on, in order (first 8)
  // The sampler unmaps windows of the VMM's mapping (a zapped page is
  // -ENOENT to the query, and a page moved while zapped would go unseen):
  // memfd pages are queried through the view, whose entries it never
  // touches. Anonymous RAM is write-protected, never unmapped.
  std::vector<void*> query_addr(npages);
  for (std::size_t p = 0; p < npages; ++p) {
    const Region& g = regions[region_of[p]];
    query_addr[p] = g.view ? g.view + slot_of[p] * kFrameSize : addr[p];
  }
  // The view is mapped only while a query runs: a page mapped there when
  // it migrates costs the move a TLB shootdown of this whole process (every
  // running vCPU), which a VMM's RAM does not pay (docs/vm-tests.md).
  std::vector<int> status(npages);
  auto query = [&] {
    for (const Region& g : regions)
      if (g.view && madvise(g.view, g.pages * kFrameSize, MADV_POPULATE_READ) != 0)
        for (std::uint64_t i = 0; i < g.pages; ++i) (void)*reinterpret_cast<volatile const char*>(g.view + i * kFrameSize);
    if (move_pages(0, npages, query_addr.data(), nullptr, status.data(), 0) != 0)
      fail("move_pages query: " + std::string(std::strerror(errno)));
    for (const Region& g : regions)
      if (g.view) (void)madvise(g.view, g.pages * kFrameSize, MADV_DONTNEED);
    for (std::size_t p = 0; p < npages; ++p) {
      if (status[p] < 0) continue;  // unmapped by the sampler right now: last known node
      if (last[p] >= 0 && status[p] != last[p]) {
        ++changes[p];
        if (seen_nodes[p].size() < 8) seen_nodes[p].push_back(status[p]);
      }
      if (last[p] < 0) seen_nodes[p].push_back(status[p]);
      last[p] = status[p];
    }
  };
  query();
  json series = json::array();
  std::size_t next_move = 0;
  double first_move_s = -1;
  std::optional<double> to_90;
  // Per period and vCPU: its accesses, and those that hit its node.
  std::vector<std::vector<std::uint64_t>> local_of, total_of;
  // Local ratio of the last `n` periods (fewer at the start): each vCPU's
  // share of its own accesses that hit its node (weighted by its accesses
  // to each page), averaged over the vCPUs that ran. Under emulation vCPUs
  // progress unevenly (one may run 10x slower for seconds), and pooling all
  // accesses would let the fastest vCPU decide the ratio. `pooled`: all
  // accesses pooled instead.
  auto window_ratio = [&](std::size_t n, bool pooled = false) {
    std::vector<std::uint64_t> l(vcpus, 0), a(vcpus, 0);
    for (std::size_t i = local_of.size() - std::min(n, local_of.size()); i < local_of.size(); ++i)
      for (std::uint32_t v = 0; v < vcpus; ++v) {
        l[v] += local_of[i][v];
        a[v] += total_of[i][v];
      }
    double sum = 0;
    std::uint64_t ran = 0, all_l = 0, all_a = 0;
    for (std::uint32_t v = 0; v < vcpus; ++v) {
      all_l += l[v];
      all_a += a[v];
      if (a[v]) {
        sum += static_cast<double>(l[v]) / static_cast<double>(a[v]);
        ++ran;
      }
    }
    if (pooled) return all_a ? static_cast<double>(all_l) / static_cast<double>(all_a) : 0.0;
    return ran ? sum / static_cast<double>(ran) : 0.0;
  };
  // 90% local counts once held over a 1 s window (one period with few
  // accesses is noise); the final ratio is the last 2 s.
  const auto window = static_cast<std::size_t>(std::max(1.0, std::round(1000.0 / o.period_ms)));
  const auto final_window = 2 * window;
  const double t0 = now_s();
  const double period_s = o.period_ms / 1000.0;
  // ---- the numaheap timeline (where the time after a vCPU move goes)
  std::vector<std::pair<std::uint32_t, std::uint64_t>> moved_vcpus;  // vCPU, its samples before the move
  json timeline = json::array();
  struct Counters {
    std::uint64_t samples = 0, moved_samples = 0, steps = 0, moved = 0, followed = 0, quick = 0, busy = 0,
                  not_present = 0, windows = 0, bursts = 0, ns_stepping = 0, ns_moving = 0;
  } prev;
  std::optional<double> first_sample_after_move, first_follow_after_move;
  auto timeline_step = [&](double t) {
    if (!mig) return;
    Counters c;
    const MigratorStats ms = mig->stats();
    c.steps = ms.steps;
    c.moved = ms.pages_moved;
    c.followed = ms.pages_followed;
    c.quick = ms.pages_quick;
    c.busy = ms.outcomes[static_cast<std::size_t>(MoveOutcome::busy)];
    c.not_present = ms.outcomes[static_cast<std::size_t>(MoveOutcome::not_present)];
    c.ns_stepping = ms.ns_stepping;
    c.ns_moving = ms.ns_moving;
    SamplerStats ss;
    if (sampler) {
      ss = sampler->stats();
      c.samples = ss.samples;
      c.windows = ss.windows;
      c.bursts = ss.bursts;
      for (const auto& [v, before] : moved_vcpus) c.moved_samples += sampler->vcpu_samples(v) - before;
    }
    const bool after = first_move_s >= 0 && t > first_move_s;
    if (after && !first_sample_after_move && c.moved_samples > prev.moved_samples) first_sample_after_move = t - first_move_s;
    if (after && !first_follow_after_move && c.followed > prev.followed) first_follow_after_move = t - first_move_s;
    json e = {{"t", t},
              {"samples", c.samples - prev.samples},
              {"moved_vcpu_samples", c.moved_samples - prev.moved_samples},
              {"windows", c.windows - prev.windows},
              {"bursts", c.bursts - prev.bursts},
              {"pages_armed", ss.pages_armed},
              {"budget_pages_per_s", ss.budget_pages_per_second},
              {"handler_share", ss.handler_share},
              {"us_per_sample", ss.ns_per_sample / 1000},
              {"steps", c.steps - prev.steps},
              {"step_ms", static_cast<double>(c.ns_stepping - prev.ns_stepping) / 1e6},
              {"move_ms", static_cast<double>(c.ns_moving - prev.ns_moving) / 1e6},
              {"pages_moved", c.moved - prev.moved},
              {"followed", c.followed - prev.followed},
              {"quick", c.quick - prev.quick},
              {"outcome_busy", c.busy - prev.busy},
              {"outcome_not_present", c.not_present - prev.not_present}};
    if (o.verbose) std::fprintf(stderr, "minivmm: timeline %s\n", e.dump().c_str());
    timeline.push_back(std::move(e));
    prev = c;
  };
  auto apply_moves = [&](double t) {
    bool moved = false;
    for (; next_move < w.moves.size() && w.moves[next_move].at_s <= t; ++next_move) {
      moved = true;
      const Move& mv = w.moves[next_move];
      const CpuId cpu = m.move_cpu(topo, mv.node);
      const cpu_set_t set = cpu_set_of(cpu);
      if (sched_setaffinity(tids[mv.vcpu].load(), sizeof set, &set) != 0)
        fail("sched_setaffinity of vCPU " + std::to_string(mv.vcpu) + ": " + std::strerror(errno));
      if (mig) (void)mig->set_vcpu_cpu(gid, mv.vcpu, cpu);
      if (sampler) (void)sampler->vcpu_moved(mv.vcpu);  // sample its pages now
      if (mv.at_s > 0) moved_vcpus.emplace_back(mv.vcpu, sampler ? sampler->vcpu_samples(mv.vcpu) : 0);
      vcpu_node[mv.vcpu] = mv.node;
      if (mv.at_s > 0 && first_move_s < 0) first_move_s = mv.at_s;
    }
    // As docs/migrator.md asks of an embedder: a step right after vCPUs
    // move, so pages known to be theirs follow before the samples come.
    if (moved && t > 0 && mig) mig->request_step();
  };
  const bool moves_later = std::any_of(w.moves.begin(), w.moves.end(), [](const Move& mv) { return mv.at_s > 0; });
  apply_moves(0);
  for (int k = 1; k * period_s <= o.seconds + 1e-9; ++k) {
    const double wake = t0 + k * period_s;
    for (double left = wake - now_s(); left > 0; left = wake - now_s()) {
      timespec ts{static_cast<time_t>(left), static_cast<long>((left - static_cast<double>(static_cast<time_t>(left))) * 1e9)};
      nanosleep(&ts, nullptr);
    }
    query();
    std::vector<std::uint64_t> local(vcpus, 0), total(vcpus, 0);
    std::uint64_t accesses_now = 0;
    for (std::uint32_t v = 0; v < vcpus; ++v)
      for (std::uint32_t p : w.sets[v]) {
        const std::size_t i = static_cast<std::size_t>(v) * npages + p;
        const std::uint32_t c = counts[i].exchange(0, std::memory_order_relaxed);
        counted[i] += c;
        total[v] += c;
        accesses_now += c;
        if (last[p] == static_cast<int>(vcpu_node[v])) local[v] += c;
      }
    const double t = k * period_s;
    local_of.push_back(std::move(local));
    total_of.push_back(std::move(total));
    series.push_back({t, window_ratio(1), accesses_now, window_ratio(1, true)});
    timeline_step(t);
    const std::size_t after_ref =
        moves_later ? (first_move_s < 0 ? 0 : static_cast<std::size_t>((t - first_move_s) / period_s + 0.5))
                    : local_of.size();
    // From the first vCPU move (after it has happened), else from the start.
    if (!to_90 && after_ref >= window && window_ratio(window) >= 0.9) to_90 = t - std::max(0.0, first_move_s);
    apply_moves(t);
  }
  const double elapsed = now_s() - t0;
  stop = true;
  for (auto& th : threads) th.join();
  const auto vmstat1 = read_vmstat();
  if (balancing_before >= 0 && balancing_error.empty()) (void)set_numa_balancing(balancing_before);
  const std::map<std::string, double> thread_cpu = thread_cpu_by_name();  // before numaheap's threads end
  if (sampler) sampler->stop();
  if (mig) mig->stop();

  // ---- results
  std::uint64_t accesses = 0, data_errors = 0;
  for (std::uint32_t v = 0; v < vcpus; ++v) accesses += vcpu_accesses[v].load();
  for (std::uint32_t v = 0; v < vcpus; ++v)
    for (std::uint32_t p : w.sets[v]) {
      const std::size_t i = static_cast<std::size_t>(v) * npages + p;
      counted[i] += counts[i].load();
      data_errors += *(reinterpret_cast<const std::uint64_t*>(addr[p]) + v) != counted[i];
    }
  std::uint64_t bounced = 0, moves_seen = 0;
  json bounce_examples = json::array();  // a few bounced pages: which page, the nodes it was seen on
  for (std::size_t p = 0; p < npages; ++p) {
    bounced += changes[p] >= 2;
    moves_seen += static_cast<std::uint64_t>(changes[p]);
    if (changes[p] >= 2 && bounce_examples.size() < 6) bounce_examples.push_back({{"page", p}, {"nodes", seen_nodes[p]}});
  }
  auto delta = [&](const char* key) -> json {
    if (!vmstat0.count(key) || !vmstat1.count(key)) return nullptr;
    return vmstat1.at(key) - vmstat0.at(key);
  };
  json out;
  out["mode"] = o.mode;
  out["workload"] = o.workload;
  out["backing"] = o.backing;
  out["topology"] = o.topology.empty() ? "live" : o.topology;
  out["vcpus"] = vcpus;
  out["pages"] = npages;
  out["seconds"] = elapsed;
  out["period_s"] = period_s;
  out["move_at_s"] = first_move_s >= 0 ? json(first_move_s) : json(nullptr);
  out["time_to_90_local_s"] = to_90 ? json(*to_90) : json(nullptr);
  const double ratio_final = window_ratio(final_window), ratio_mean = window_ratio(local_of.size());
  out["local_ratio_final"] = ratio_final;  // last 2 s, access-weighted
  out["local_ratio_mean"] = ratio_mean;    // whole run, access-weighted
  out["local_ratio_final_pooled"] = window_ratio(final_window, true);  // all vCPUs' accesses pooled
  out["pages_bounced"] = bounced;
  out["pages_moves_observed"] = moves_seen;
  out["bounce_examples"] = bounce_examples;
  out["throughput_accesses_per_s"] = static_cast<double>(accesses) / elapsed;
  out["data_errors"] = data_errors;
  out["vmstat"] = json::object();
  for (const char* key : kVmstatKeys) out["vmstat"][key] = delta(key);
  out["numa_balancing_error"] = balancing_error;
  out["helper_threads_off_vcpu_cpus"] = helpers_apart;
  // CPU time (user + system) of the whole process and of its vCPU threads;
  // "other" is the rest: the measuring thread (the same in every mode) and,
  // in numaheap mode, the sampler's handler and the migrator's thread.
  // Under TCG the guest's CPUs share the host's cores, so this "other" time
  // is taken from the vCPUs (docs/vm-tests.md, throughput).
  {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    const double process = secs(ru.ru_utime) + secs(ru.ru_stime);
    double in_vcpus = 0;
    for (double c : vcpu_cpu_s) in_vcpus += c;
    out["cpu_s"] = {{"process", process}, {"vcpus", in_vcpus}, {"other", process - in_vcpus}};
    for (const auto& [name, secs_of] : thread_cpu)  // numaheap's named threads, the measuring thread
      if (name.rfind("CPU ", 0) != 0) out["cpu_s"]["threads"][name] = secs_of;
  }
  // The same rule for every mode: the kernel's count of pages migrated.
  const json migrated = delta("pgmigrate_success");
  out["pages_migrated"] = migrated.is_null() ? json(0) : migrated;
  if (mig) {
    const MigratorStats ms = mig->stats();
    json outcomes = json::object();
    for (std::size_t i = 0; i < kMoveOutcomeCount; ++i)
      outcomes[move_outcome_name(static_cast<MoveOutcome>(i))] = ms.outcomes[i];
    out["numaheap"] = {{"steps", ms.steps},
                       {"pages_moved", ms.pages_moved},
                       {"pages_followed", ms.pages_followed},
                       {"pages_quick", ms.pages_quick},
                       {"skipped_shared_access", ms.skipped_shared_access},
                       {"skipped_rate_limit", ms.skipped_rate_limit},
                       {"blocks_moved_whole", ms.blocks_moved_whole},
                       {"blocks_split", ms.blocks_split},
                       {"outcomes", outcomes}};
    if (sampler) {
      const SamplerStats ss = sampler->stats();
      out["numaheap"]["samples"] = ss.samples;
      out["numaheap"]["ns_per_sample"] = ss.ns_per_sample;
      out["numaheap"]["windows"] = ss.windows;
      out["numaheap"]["pages_windowed"] = ss.pages_windowed;
      out["numaheap"]["bursts"] = ss.bursts;
      out["numaheap"]["pages_burst"] = ss.pages_burst;
      out["numaheap"]["blocks_windowed"] = ss.blocks_windowed;
      out["numaheap"]["resolve_calls"] = ss.resolve_calls;
      out["numaheap"]["arm_calls"] = ss.arm_calls;
      out["numaheap"]["sheds"] = ss.sheds;
      out["numaheap"]["pages_shed"] = ss.pages_shed;
      out["numaheap"]["follow_extensions"] = ss.follow_extensions;
      out["numaheap"]["steps_requested"] = ss.steps_requested;
      out["numaheap"]["sampler_errors"] = ss.errors;
    }
    out["numaheap"]["sampler_error"] = sampler_error;
    {
      const GuestRamStats rs = (**ram).stats();
      out["numaheap"]["ram"] = {{"moves", rs.moves},
                                {"moves_all", rs.moves_all},
                                {"moves_via_helper", rs.moves_via_helper},
                                {"moves_grouped", rs.moves_grouped},
                                {"helper_refusals", rs.helper_refusals},
                                {"helper_last_errno", rs.helper_last_errno}};
    }
    auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
    out["after_move"] = {{"first_moved_vcpu_sample_s", opt(first_sample_after_move)},
                         {"first_follow_s", opt(first_follow_after_move)}};
    out["timeline"] = timeline;
  }
  out["series"] = series;  // [t_s, local_ratio, accesses, pooled local_ratio] per period
  sampler.reset();
  if (mig) (void)mig->remove_guest(gid);
  mig.reset();
  ram->reset();
  for (const Region& g : regions)
    if (g.host) munmap(g.host, g.pages * kFrameSize);
  for (const Region& g : regions)
    if (g.view) munmap(g.view, g.pages * kFrameSize);

  const std::string text = out.dump();
  if (!o.json_out.empty()) {
    std::ofstream f(o.json_out);
    f << text << "\n";
    if (!f) fail(o.json_out + ": cannot write");
  }
  std::printf("minivmm: %s %s: %u vCPUs, %zu pages, local %.3f final (%.3f mean), 90%% local %s, migrated %s, "
              "bounced %llu, %.0f accesses/s, data errors %llu\n",
              o.mode.c_str(), o.workload.c_str(), vcpus, npages, ratio_final, ratio_mean,
              to_90 ? (std::to_string(*to_90) + " s").c_str() : "never", out["pages_migrated"].dump().c_str(),
              static_cast<unsigned long long>(bounced), static_cast<double>(accesses) / elapsed,
              static_cast<unsigned long long>(data_errors));
  return data_errors == 0 ? 0 : 1;
}
