// Where a running guest's memory is, against where its vCPUs run: the data
// behind `numaheap stat`. Host-only (tools/): reads a /proc tree, which
// tests replace with a recorded one (tests/data/proc/).
//
// Sources, per process PID under PROC (= <proc root>/proc):
//   PROC/PID/numa_maps             pages per node of every mapping: the
//                                  N<node>=<pages> tokens, each page of the
//                                  mapping's kernelpagesize_kB ("huge" marks
//                                  a hugetlb mapping);
//   PROC/PID/task/TID/comm         "CPU <n>/KVM" or "CPU <n>/TCG" names a vCPU
//                                  thread (qemu with -name ...,debug-threads=on,
//                                  which libvirt always passes);
//   PROC/PID/task/TID/stat         field 39: the CPU the thread last ran on
//                                  (fields counted after the last ')', since
//                                  the command name may hold spaces and ')');
//   PROC/PID/comm, PROC/PID/cmdline  the process and guest name (-name).
//
// Memory totals agree with `numastat -p PID`, which reads the same tokens.
// numastat sizes every "huge" mapping with the system's default huge page
// size; this reads each mapping's own kernelpagesize_kB, so the two differ
// only for hugetlb mappings of a non-default size (1 GiB pages on a 2 MiB
// default), where this is right.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "numaheap/result.h"
#include "numaheap/topology.h"

namespace numaheap::tools {

// Memory of one process per node, summed over its numa_maps.
struct NodeMemory {
  std::uint64_t bytes = 0;                       // every mapping
  std::map<std::uint64_t, std::uint64_t> huge;   // hugetlb: page size kB -> pages
};
struct ProcessMemory {
  std::map<NodeId, NodeMemory> nodes;  // nodes with at least one page
  std::uint64_t total_bytes() const;
};

// Parses the text of a numa_maps file. A line without a kernelpagesize_kB
// token counts its pages as 4 KiB. Malformed N tokens are an Error naming
// `name` and the line.
Result<ProcessMemory, Error> parse_numa_maps(std::string_view text, std::string_view name);

// vCPU index of a thread name "CPU <n>/KVM" or "CPU <n>/TCG" (trailing
// newline allowed), or nothing.
std::optional<unsigned> vcpu_index_of(std::string_view comm);

// Field 39 (processor) of a /proc/.../stat line, or an Error.
Result<int, Error> last_cpu_of_stat(std::string_view stat, std::string_view name);

struct VcpuThread {
  unsigned index = 0;   // n of "CPU n/..."
  int tid = 0;
  std::string accel;    // "KVM" or "TCG"
  int cpu = -1;         // last CPU it ran on
  NodeId node = kNoNode;  // that CPU's node (kNoNode: not in the topology)
};

// What moving the guest toward its vCPUs would do: every page on a node
// where none of its vCPUs runs goes to the vCPUs' nodes, shared out by how
// many vCPUs run on each (4 KiB granularity; the remainder to the node with
// the most vCPUs, lowest id first).
struct MovePlan {
  std::uint64_t bytes = 0;
  std::map<NodeId, std::uint64_t> from;
  std::map<NodeId, std::uint64_t> to;
};

struct GuestStat {
  int pid = 0;
  std::string comm;   // PROC/PID/comm
  std::string name;   // qemu's -name guest=..., else comm
  std::vector<VcpuThread> vcpus;  // by index
  ProcessMemory memory;
  // Memory on the node of each vCPU, averaged over vCPUs: sum over vCPUs v
  // of bytes(node(v)) / (vCPUs * total). Nothing without vCPUs or memory.
  std::optional<double> local_fraction;
  std::optional<MovePlan> move;  // nothing without vCPUs
};

// Reads one process. `proc_root` holds proc/ ("/" for the host).
Result<GuestStat, Error> read_guest_stat(const std::string& proc_root, int pid,
                                         const Topology& topo);

// Processes that look like a QEMU guest: at least one vCPU thread name, or
// a comm starting with "qemu-" / "kvm". Ascending pids.
std::vector<int> find_qemu_processes(const std::string& proc_root);

// Computes local_fraction and move from vcpus and memory.
void summarise(GuestStat& g);

// {"pid":..,"name":..,"comm":..,"vcpus":[{"index","tid","cpu","node"}],
//  "nodes":[{"id","memory_bytes","memory_mb","vcpus","hugepages":[{"size_kb","pages"}]}],
//  "total_bytes":..,"total_mb":..,"local_fraction":..|null (4 decimals),
//  "move":{"bytes","from":{"<node>":bytes},"to":{...}}|null}
// memory_mb is bytes / 2^20 rounded to 2 decimals, as numastat prints it.
nlohmann::ordered_json guest_to_json(const GuestStat& g);
std::string render_guest_text(const GuestStat& g);

}  // namespace numaheap::tools
