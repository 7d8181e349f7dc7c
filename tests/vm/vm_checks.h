// Shared by the checks that numaheap-vmtest runs inside the NUMA guest.
#pragma once

#include <string>

#include "numaheap/topology.h"

namespace numaheap::vmtest {

extern int failures;
void report(bool ok, const std::string& name, const std::string& detail = {});

// Page allocator in host-memory mode against the kernel's move_pages query.
void run_heap_checks(const Topology& live);

// Guest memory (two vnodes) in host-memory mode against move_pages.
void run_guest_checks(const Topology& live);

// Kernel moves and rehome of a guest RAM mapping, confirmed by move_pages.
void run_migrate_checks(const Topology& live);

// `numaheap stat` (tools/proc_stat.h) on this process shaped as a VMM:
// named vCPU threads pinned per node, memory bound to two nodes; checked
// against move_pages and sched_getcpu.
void run_stat_checks(const Topology& live);
// VMM guest RAM (memfd) sampled by userfaultfd and moved to the node of the
// thread touching it, confirmed by move_pages.
void run_vmm_checks(const Topology& live);
// One migrator shared by two guests: one guest's moves do not count as the
// other's (Migrator::guest_stats, the sampler's following).
void run_shared_migrator_checks(const Topology& live);

}  // namespace numaheap::vmtest
