// The fair baseline: jemalloc with one arena per NUMA node (extent hooks
// that bind every extent to the node with mbind) and a per-thread explicit
// tcache, called with MALLOCX_ARENA | MALLOCX_TCACHE. Same workloads and
// names as numaheap_bench.cc (<workload>/jemalloc; workloads in
// peer_bench.h). Debian's jemalloc has no je_ prefix: linking it replaces
// malloc in this binary only.
#include <jemalloc/jemalloc.h>
#include <numa.h>
#include <numaif.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "peer_bench.h"

namespace {

extent_hooks_t* g_default_hooks = nullptr;

// The hooks struct comes first so jemalloc's extent_hooks_t* is also ours:
// the alloc hook runs inside arenas.create, before the arena index is known.
struct NodeHooks {
  extent_hooks_t hooks;
  unsigned node;
};

void* node_alloc(extent_hooks_t* h, void* new_addr, size_t size, size_t alignment, bool* zero,
                 bool* commit, unsigned arena_ind) {
  void* p = g_default_hooks->alloc(g_default_hooks, new_addr, size, alignment, zero, commit,
                                   arena_ind);
  if (!p) return nullptr;
  const unsigned node = reinterpret_cast<NodeHooks*>(h)->node;
  unsigned long mask[16] = {};
  mask[node / 64] = 1ul << (node % 64);
  if (mbind(p, size, MPOL_BIND, mask, 16 * 64 + 1, 0) != 0) {
    g_default_hooks->dalloc(g_default_hooks, p, size, *commit, arena_ind);
    return nullptr;
  }
  return p;
}

struct Arenas {
  std::vector<unsigned> arena_of_node;
  std::vector<NodeHooks*> hooks;
};

Arenas& arenas() {
  static Arenas a = [] {
    Arenas out;
    size_t sz = sizeof(g_default_hooks);
    if (mallctl("arena.0.extent_hooks", &g_default_hooks, &sz, nullptr, 0) != 0) std::abort();
    const int max = numa_available() < 0 ? 0 : numa_max_node();
    out.arena_of_node.assign(static_cast<size_t>(max) + 1, ~0u);
    for (int n = 0; n <= max; ++n) {
      if (numa_available() >= 0 && !numa_bitmask_isbitset(numa_all_nodes_ptr, static_cast<unsigned>(n)))
        continue;
      auto* nh = new NodeHooks{*g_default_hooks, static_cast<unsigned>(n)};
      nh->hooks.alloc = &node_alloc;
      extent_hooks_t* hp = &nh->hooks;
      unsigned arena = 0;
      sz = sizeof(arena);
      if (mallctl("arenas.create", &arena, &sz, &hp, sizeof(hp)) != 0) {
        std::fprintf(stderr, "jemalloc bench: arenas.create failed for node %d\n", n);
        std::exit(1);
      }
      out.arena_of_node[static_cast<size_t>(n)] = arena;
      out.hooks.push_back(nh);
    }
    return out;
  }();
  return a;
}

// Flags for node 0 with this thread's own explicit tcache.
int flags_node0() {
  thread_local unsigned tc = [] {
    unsigned t = 0;
    size_t sz = sizeof(t);
    if (mallctl("tcache.create", &t, &sz, nullptr, 0) != 0) std::abort();
    return t;
  }();
  return static_cast<int>(MALLOCX_ARENA(arenas().arena_of_node[0]) | MALLOCX_TCACHE(tc) |
                          MALLOCX_ALIGN(4096));
}

struct Jemalloc {
  static constexpr const char* kName = "jemalloc";
  using Ctx = int;  // mallocx flags
  static Ctx context() { return flags_node0(); }
  static void* alloc(Ctx f, size_t bytes) { return mallocx(bytes, f); }
  static void release(Ctx f, void* p, size_t) { dallocx(p, f); }
};

}  // namespace

int main(int argc, char** argv) { return numaheap::bench::peer_main<Jemalloc>(argc, argv); }
