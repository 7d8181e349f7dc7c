// numaheap-vmtest: runs inside the qemu NUMA guest (tests/vm/run.sh) and
// checks numaheap against the real kernel, not against its own bookkeeping.
//
//   numaheap-vmtest --expected FILE [--skip-heap]
//
// FILE is the topology qemu was told to build, in the guest's numbering
// (written by numaheap-vmplan). Prints one PASS/FAIL line per check and
// exits 0 only if all pass. Statically linked: the guest has only busybox.
#include <cstdio>
#include <cstring>
#include <string>

#include "numaheap/topology_io.h"
#include "vm_checks.h"

using namespace numaheap;

namespace numaheap::vmtest {

int failures = 0;

void report(bool ok, const std::string& name, const std::string& detail) {
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : ": ",
              detail.c_str());
  std::fflush(stdout);
  if (!ok) ++failures;
}

// Structure equality: ids, CPUs, which nodes have memory, distances as given.
std::string topology_difference(const Topology& want, const Topology& got) {
  if (want.node_mask() != got.node_mask())
    return "nodes " + got.node_mask().to_string() + ", expected " + want.node_mask().to_string();
  for (const auto& w : want.nodes()) {
    const NodeInfo& g = *got.find(w.id);
    if (w.cpus != g.cpus) return "node " + std::to_string(w.id) + ": different CPUs";
    if (w.has_memory() != g.has_memory())
      return "node " + std::to_string(w.id) + (w.has_memory() ? ": no memory" : ": has memory");
    for (const auto& o : want.nodes())
      if (want.distance(w.id, o.id) != got.distance(w.id, o.id))
        return "distance " + std::to_string(w.id) + "->" + std::to_string(o.id) + " is " +
               std::to_string(got.distance(w.id, o.id)) + ", expected " +
               std::to_string(want.distance(w.id, o.id));
  }
  return {};
}

}  // namespace numaheap::vmtest

using numaheap::vmtest::report;

int main(int argc, char** argv) {
  const char* expected_path = nullptr;
  bool skip_heap = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--expected") && i + 1 < argc) expected_path = argv[++i];
    else if (!std::strcmp(argv[i], "--skip-heap")) skip_heap = true;
    else {
      std::fprintf(stderr, "usage: numaheap-vmtest --expected FILE [--skip-heap]\n");
      return 2;
    }
  }
  if (!expected_path) {
    std::fprintf(stderr, "numaheap-vmtest: --expected FILE is required\n");
    return 2;
  }
  auto expected = load_topology_numactl_file(expected_path);
  report(expected.has_value(), "expected topology parses",
         expected ? "" : expected.error().message);
  if (!expected) return 1;

  // 1. Topology: live through libnuma, and from the guest's own sysfs.
  auto live = load_topology_libnuma();
  report(live.has_value(), "libnuma topology loads", live ? "" : live.error().message);
  if (live) {
    std::string diff = numaheap::vmtest::topology_difference(*expected, *live);
    report(diff.empty(), "libnuma topology equals what qemu was told", diff);
  }
  auto sysfs = load_topology_sysfs("/");
  report(sysfs.has_value(), "sysfs topology loads", sysfs ? "" : sysfs.error().message);
  if (sysfs) {
    std::string diff = numaheap::vmtest::topology_difference(*expected, *sysfs);
    report(diff.empty(), "sysfs topology equals what qemu was told", diff);
  }

  // 2. Host-memory mode of the page allocator, confirmed by move_pages.
  if (!skip_heap && live) numaheap::vmtest::run_heap_checks(*live);

  // 3. Guest populate per vNUMA node, confirmed by move_pages.
  if (!skip_heap && live) numaheap::vmtest::run_guest_checks(*live);
  if (!skip_heap && live) numaheap::vmtest::run_migrate_checks(*live);
  if (!skip_heap && live) numaheap::vmtest::run_vmm_checks(*live);
  if (!skip_heap && live) numaheap::vmtest::run_shared_migrator_checks(*live);

  // 4. `numaheap stat` on this process shaped as a VMM.
  if (live) numaheap::vmtest::run_stat_checks(*live);

  std::printf("numaheap-vmtest: %d failure(s)\n", numaheap::vmtest::failures);
  return numaheap::vmtest::failures == 0 ? 0 : 1;
}
