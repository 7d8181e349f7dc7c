/* minihv: a reference hypervisor in C11 over numaheap's core C API.
 *
 * What a Xen-like hypervisor does with numaheap, in one program:
 *  - reserves one region at boot: metadata comes from its head
 *    (numaheap_region_init), guest frames are carved from the rest;
 *  - builds the topology from a SRAT/SLIT-like firmware table;
 *  - creates a control domain on every node and guests placed by its own
 *    policy (most free memory), populates them (claims first);
 *  - runs vCPU threads that write guest pages through the p2m, with a
 *    per-write sequence number, on CPUs of another node than their memory;
 *  - drives the migrator's step_at() from its "timer" so pages follow the
 *    vCPUs with the frame-swap mover; write protection is emulated as
 *    hardware does it (a protection counts once the flush hook returned: an
 *    RCU-like handshake with every CPU; a writer that meets a protected or
 *    migrating page waits and retries); backend (DMA) writes go through the
 *    p2m and report themselves through the dirtied() hook;
 *  - merges identical pages under a same-node sharing policy, keeps cold
 *    pages in a cold-store pool off the guest's node, balloons, rehomes a
 *    guest to another node while it runs, destroys everything;
 * and checks: no write lost, no frame handed to another guest unscrubbed,
 * no frame leaked, all metadata back in the region. Prints a short summary;
 * exit status 0 when all hold.
 *
 * `minihv --break=copy|scrub|leak|metadata` runs a deliberately broken
 * embedder (a copy hook that copies half a frame, a scrub hook that does
 * nothing, a frame never freed, a mover never destroyed): the matching check
 * must fail (examples.minihv_catches runs each one).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "numaheap/numaheap.h"
#include "numaheap/numaheap_cold.h"
#include "numaheap/numaheap_guest.h"
#include "numaheap/numaheap_migrate.h"
#include "numaheap/numaheap_sharing.h"
#include "numaheap/platform_contract.h"

#define PAGE 4096u
#define WORDS (PAGE / 8u)
#define NODES 4u
#define FRAMES_PER_NODE 8192u        /* 32 MiB a node */
#define META_BYTES (16u << 20)       /* metadata: the region's head */
#define MFN_BASE 4096u               /* first machine frame (below: firmware) */
#define GUESTS 3u
#define VCPUS 2u                     /* per guest */
#define GUEST_PAGES 2048u            /* 8 MiB a guest */
#define BACKEND_SLOT (WORDS - 1u)    /* the word a backend writes */
#define MAX_CPUS 16u

#define FAIL(...)                                      \
  do {                                                 \
    fprintf(stderr, "minihv: " __VA_ARGS__);           \
    fputc('\n', stderr);                               \
    exit(1);                                           \
  } while (0)
#define OK(call)                                                                       \
  do {                                                                                 \
    int rc_ = (call);                                                                  \
    if (rc_) FAIL("%s:%d: %s -> %s", __FILE__, __LINE__, #call, numaheap_strerror(rc_)); \
  } while (0)

/* ---- The firmware's tables (ACPI SRAT and SLIT, simplified) ---- */
struct srat_entry {
  uint32_t node, first_cpu, cpu_count;
};
static const struct srat_entry srat[NODES] = {{0, 0, 2}, {1, 2, 2}, {2, 4, 2}, {3, 6, 2}};
static const uint32_t slit[NODES][NODES] = {
    {10, 16, 22, 22}, {16, 10, 22, 22}, {22, 22, 10, 16}, {22, 22, 16, 10}};

/* ---- Deliberate breakage, for the checks' own test ---- */
enum hv_break { BREAK_NONE, BREAK_COPY, BREAK_SCRUB, BREAK_LEAK, BREAK_METADATA };
static enum hv_break g_break = BREAK_NONE;

/* ---- Machine memory: one reserved region ---- */
static unsigned char* g_region;
static unsigned char* frame_bytes(uint64_t mfn) {
  return g_region + META_BYTES + (mfn - MFN_BASE) * PAGE;
}
static unsigned char* frame_address(void* ctx, uint64_t mfn) {
  (void)ctx;
  return frame_bytes(mfn);
}
static void scrub_frames(void* ctx, uint64_t first, uint64_t count) {
  (void)ctx;
  if (g_break == BREAK_SCRUB) return;
  memset(frame_bytes(first), 0, count * PAGE);
}
static void copy_frame(void* ctx, uint64_t dst, uint64_t src) {
  (void)ctx;
  memcpy(frame_bytes(dst), frame_bytes(src), g_break == BREAK_COPY ? PAGE / 2 : PAGE);
}

/* ---- CPUs: an emulated TLB handshake ----
 * Each CPU (thread) has a counter, odd while it holds a translation. A
 * flush waits until every CPU that held one when the flush began has let it
 * go: a write protection then binds everyone. */
static _Atomic uint64_t g_cpu_state[MAX_CPUS];
static _Thread_local uint32_t t_cpu = 0;   /* the CPU id numaheap sees */
static _Thread_local uint32_t t_slot = MAX_CPUS - 1;  /* this thread's handshake counter */
static uint32_t current_cpu(void* ctx) {
  (void)ctx;
  return t_cpu;
}
static void translate_begin(void) { atomic_fetch_add(&g_cpu_state[t_slot], 1); }
static void translate_end(void) { atomic_fetch_add(&g_cpu_state[t_slot], 1); }
static atomic_ulong g_flushes;
static void tlb_flush(void* ctx) {
  (void)ctx;
  uint64_t seen[MAX_CPUS];
  for (uint32_t c = 0; c < MAX_CPUS; ++c) seen[c] = atomic_load(&g_cpu_state[c]);
  for (uint32_t c = 0; c < MAX_CPUS; ++c)
    if (seen[c] & 1)
      while (atomic_load(&g_cpu_state[c]) == seen[c]) sched_yield();
  atomic_fetch_add(&g_flushes, 1);
}

/* ---- Guests ---- */
struct hv_guest {
  const char* name;
  uint32_t owner, home, vcpu_node;
  numaheap_guest* g;
  numaheap_frame_mover* mover;
  uint32_t mig_id;
  uint64_t pages;
  atomic_uchar* wp;     /* per gfn: write-protected (the EPT W bit, cleared) */
  atomic_uchar* dirty;  /* per gfn: written by a backend since protected */
  uint64_t* expect;     /* per gfn and word: last sequence number written */
  atomic_ulong writes, retries;  /* by all its threads */
};
static struct hv_guest g_guests[GUESTS];
static numaheap_heap* g_heap;
static numaheap_migrator* g_mig;
static numaheap_sharing* g_share;
static atomic_int g_stop;

static void hv_write_protect(void* ctx, const numaheap_gfn_run* runs, size_t n) {
  struct hv_guest* hg = ctx;
  for (size_t r = 0; r < n; ++r)
    for (uint64_t k = 0; k < runs[r].pages; ++k) {
      atomic_store(&hg->dirty[runs[r].first + k], 0);
      atomic_store(&hg->wp[runs[r].first + k], 1);
    }
}
static void hv_unprotect(void* ctx, const numaheap_gfn_run* runs, size_t n) {
  struct hv_guest* hg = ctx;
  for (size_t r = 0; r < n; ++r)
    for (uint64_t k = 0; k < runs[r].pages; ++k) atomic_store(&hg->wp[runs[r].first + k], 0);
}
static int hv_dirtied(void* ctx, numaheap_gfn_run run) {
  struct hv_guest* hg = ctx;
  for (uint64_t k = 0; k < run.pages; ++k)
    if (atomic_load(&hg->dirty[run.first + k])) return 1;
  return 0;
}

/* A guest write as the hardware does it: translate through the p2m; a
 * protected or migrating page faults and the writer retries; a shared page
 * is unshared by the hypervisor's write-fault handler first. A backend
 * (dma) is not stopped by the protection but waits while the page is
 * migrating and reports its write through the dirty log. */
static int guest_write(struct hv_guest* hg, uint64_t gfn, uint32_t word, uint64_t value, int dma) {
  for (;;) {
    translate_begin();
    numaheap_p2m_entry e;
    if (numaheap_guest_p2m_get(hg->g, gfn, &e) || !(e.flags & NUMAHEAP_P2M_PRESENT)) {
      translate_end();
      return 0;
    }
    if ((e.flags & NUMAHEAP_P2M_MIGRATING) || (!dma && atomic_load(&hg->wp[gfn]))) {
      translate_end();
      atomic_fetch_add_explicit(&hg->retries, 1, memory_order_relaxed);
      sched_yield();
      continue;
    }
    if (e.flags & NUMAHEAP_P2M_SHARED) {
      translate_end();
      uint32_t node = numaheap_node_of(g_heap, e.mfn);
      int rc = numaheap_sharing_write_fault(g_share, hg->g, gfn, node);
      if (rc && rc != NUMAHEAP_E_BUSY && rc != NUMAHEAP_E_INVALID_ARGUMENT) FAIL("write fault: %s", numaheap_strerror(rc));
      continue;
    }
    atomic_store_explicit((_Atomic uint64_t*)(void*)(frame_bytes(e.mfn) + word * 8u), value, memory_order_relaxed);
    if (dma) atomic_store(&hg->dirty[gfn], 1);
    translate_end();
    return 1;
  }
}

static uint64_t tag(const struct hv_guest* hg, uint64_t seq) { return ((uint64_t)hg->owner << 48) | seq; }

struct vcpu_arg {
  struct hv_guest* hg;
  uint32_t vcpu, cpu, slot;
  int backend;
};
static void* vcpu_thread(void* p) {
  struct vcpu_arg* a = p;
  struct hv_guest* hg = a->hg;
  t_cpu = a->cpu;
  t_slot = a->slot;
  uint64_t seq = 0, x = 0x9e3779b97f4a7c15ull * (a->vcpu + 1 + hg->owner * 8u);
  const uint32_t word = a->backend ? BACKEND_SLOT : a->vcpu;
  while (!atomic_load(&g_stop)) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint64_t gfn = x % hg->pages;
    if (a->backend) gfn &= ~(uint64_t)15;  /* a backend's ring: fewer pages */
    const uint64_t v = tag(hg, ++seq);
    if (guest_write(hg, gfn, word, v, a->backend)) {
      hg->expect[gfn * WORDS + word] = v;
      if (!a->backend) numaheap_migrator_record_vcpu_access(g_mig, hg->mig_id, gfn, a->vcpu);
      atomic_fetch_add_explicit(&hg->writes, 1, memory_order_relaxed);
    }
    if ((seq & 63) == 0) sched_yield();
  }
  return NULL;
}

/* The hypervisor's placement: the node with the most free memory. */
static uint32_t most_free_node(void) {
  uint32_t best = 0;
  uint64_t most = 0;
  for (uint32_t n = 0; n < NODES; ++n) {
    numaheap_node_stats s;
    OK(numaheap_stats(g_heap, n, &s));
    uint64_t avail = s.free + s.cached > s.claimed ? s.free + s.cached - s.claimed : 0;
    if (avail > most) most = avail, best = n;
  }
  return best;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double local_ratio(void) {
  uint64_t local = 0, all = 0;
  for (uint32_t i = 0; i < GUESTS; ++i) {
    numaheap_node_share sh[NODES];
    size_t n = numaheap_guest_pages_per_node(g_guests[i].g, sh, NODES);
    for (size_t k = 0; k < n && k < NODES; ++k) {
      all += sh[k].bytes;
      if (sh[k].node == g_guests[i].vcpu_node) local += sh[k].bytes;
    }
  }
  return all ? (double)local / (double)all : 0;
}

/* Frames a new owner got must hold nothing of an earlier owner. */
static uint64_t foreign_words(numaheap_guest* g, uint32_t owner) {
  uint64_t bad = 0, limit = numaheap_guest_ram_pages(g);
  for (uint64_t gfn = 0; gfn < limit; ++gfn) {
    uint64_t mfn;
    if (numaheap_guest_lookup(g, gfn, &mfn, NULL)) continue;
    const uint64_t* w = (const uint64_t*)(const void*)frame_bytes(mfn);
    for (uint32_t k = 0; k < WORDS; ++k)
      if (w[k] && (w[k] >> 48) != owner) ++bad;
  }
  return bad;
}

int main(int argc, char** argv) {
  static const char* const break_names[] = {"none", "copy", "scrub", "leak", "metadata"};
  if (argc > 2) FAIL("usage: minihv [--break=copy|scrub|leak|metadata]");
  if (argc == 2) {
    int found = 0;
    for (int b = 1; b < 5; ++b)
      if (!strncmp(argv[1], "--break=", 8) && !strcmp(argv[1] + 8, break_names[b])) g_break = (enum hv_break)b, found = 1;
    if (!found) FAIL("unknown argument '%s' (usage: minihv [--break=copy|scrub|leak|metadata])", argv[1]);
    printf("minihv: deliberately broken: %s\n", break_names[g_break]);
  }
  /* Boot: one region, metadata at its head, frames after it. */
  const size_t frames = (size_t)NODES * FRAMES_PER_NODE;
  g_region = aligned_alloc(4096, META_BYTES + frames * PAGE);
  if (!g_region) FAIL("no memory for the region");
  memset(g_region, 0, META_BYTES + frames * PAGE);
  numaheap_metadata_hooks meta;
  if (numaheap_region_init(g_region, META_BYTES, 1, &meta)) FAIL("region_init");
  numaheap_set_default_metadata(&meta);

  /* Topology from the firmware tables. */
  numaheap_topology_builder* b = numaheap_topology_builder_new();
  if (!b) FAIL("builder");
  for (uint32_t i = 0; i < NODES; ++i) {
    uint32_t cpus[8];
    for (uint32_t c = 0; c < srat[i].cpu_count; ++c) cpus[c] = srat[i].first_cpu + c;
    OK(numaheap_topology_builder_add_node(b, srat[i].node, cpus, srat[i].cpu_count, (uint64_t)FRAMES_PER_NODE * PAGE));
  }
  for (uint32_t i = 0; i < NODES; ++i) {
    OK(numaheap_topology_builder_set_distance_row(b, i, slit[i], NODES));
    OK(numaheap_topology_builder_add_frames(b, i, MFN_BASE + (uint64_t)i * FRAMES_PER_NODE, FRAMES_PER_NODE));
  }
  numaheap_topology* topo = NULL;
  char err[256] = "";
  if (numaheap_topology_builder_build(b, &topo, err, sizeof err)) FAIL("topology: %s", err);
  numaheap_topology_builder_free(b);

  numaheap_config cfg;
  numaheap_config_init(&cfg);
  cfg.hooks.scrub = scrub_frames;
  cfg.hooks.copy = copy_frame;
  cfg.hooks.current_cpu = current_cpu;
  if (numaheap_create(topo, &cfg, &g_heap, err, sizeof err)) FAIL("heap: %s", err);

  /* Control domain: 4 MiB on every node. */
  numaheap_node_share dom0_shares[NODES];
  for (uint32_t n = 0; n < NODES; ++n) dom0_shares[n] = (numaheap_node_share){n, 4u << 20};
  numaheap_guest_spec d0;
  memset(&d0, 0, sizeof d0);
  d0.name = "dom0";
  d0.memory_bytes = (uint64_t)NODES * (4u << 20);
  d0.vcpus = NODES;
  numaheap_guest* dom0 = NULL;
  if (numaheap_guest_create_placed(g_heap, &d0, 1, dom0_shares, NODES, &dom0, err, sizeof err)) FAIL("dom0: %s", err);
  if (numaheap_guest_populate(dom0, err, sizeof err)) FAIL("dom0 populate: %s", err);

  numaheap_migrator_config mc;
  numaheap_migrator_config_init(&mc);
  mc.rate_limit_mb_s = 0;
  mc.watermark_fraction = 0;
  OK(numaheap_migrator_create(topo, &mc, &g_mig));
  numaheap_sharing_config sc;
  numaheap_sharing_config_init(&sc);
  sc.policy.kind = NUMAHEAP_SHARE_SAME_NODE;
  sc.address = frame_address;
  if (numaheap_sharing_create(g_heap, &sc, &g_share, err, sizeof err)) FAIL("sharing: %s", err);

  /* Guests: placed on the node with most free memory, vCPUs on the next. */
  uint64_t unscrubbed = 0;
  for (uint32_t i = 0; i < GUESTS; ++i) {
    struct hv_guest* hg = &g_guests[i];
    hg->owner = 10 + i;
    hg->home = most_free_node();
    hg->vcpu_node = (hg->home + 1) % NODES;
    hg->pages = GUEST_PAGES;
    uint32_t vcpus[VCPUS] = {0, 1};
    numaheap_vnode_spec vn = {.memory_bytes = (uint64_t)GUEST_PAGES * PAGE, .pnode = hg->home, .vcpus = vcpus, .vcpu_count = VCPUS, .distances = NULL, .distance_count = 0};
    numaheap_guest_spec s;
    memset(&s, 0, sizeof s);
    s.name = "guest";
    s.memory_bytes = (uint64_t)GUEST_PAGES * PAGE;
    s.vcpus = VCPUS;
    s.vnodes = &vn;
    s.vnode_count = 1;
    s.sharing = 1;
    s.cold_store = 1;
    if (numaheap_guest_create_placed(g_heap, &s, hg->owner, NULL, 0, &hg->g, err, sizeof err)) FAIL("guest: %s", err);
    if (numaheap_guest_populate(hg->g, err, sizeof err)) FAIL("populate: %s", err);
    unscrubbed += foreign_words(hg->g, hg->owner);
    hg->wp = calloc(hg->pages, 1);
    hg->dirty = calloc(hg->pages, 1);
    hg->expect = calloc(hg->pages * WORDS, 8);
    if (!hg->wp || !hg->dirty || !hg->expect) FAIL("no memory");
    numaheap_frame_swap_hooks fh = {hg, hv_write_protect, tlb_flush, hv_dirtied, hv_unprotect, NULL};
    OK(numaheap_frame_mover_create(hg->g, &fh, NULL, &hg->mover));
    numaheap_migrate_guest_options mo = {VCPUS, NULL, 0, 0, 0};
    OK(numaheap_migrator_add_frame_guest(g_mig, hg->mover, &mo, &hg->mig_id));
    for (uint32_t v = 0; v < VCPUS; ++v)
      OK(numaheap_migrator_set_vcpu_cpu(g_mig, hg->mig_id, v, srat[hg->vcpu_node].first_cpu + v));
  }
  const double ratio_before = local_ratio();
  const size_t meta_in_use = numaheap_region_used(&meta);

  /* Sharing: guest 0's first 64 pages hold the same bytes (vCPUs not yet
   * running: the scan needs no write-protect hook). */
  for (uint64_t gfn = 0; gfn < 64; ++gfn) {
    uint64_t mfn;
    OK(numaheap_guest_lookup(g_guests[0].g, gfn, &mfn, NULL));
    uint64_t* w = (uint64_t*)(void*)frame_bytes(mfn);
    for (uint32_t k = 0; k < WORDS; ++k) w[k] = tag(&g_guests[0], 1);
    for (uint32_t k = 0; k < WORDS; ++k) g_guests[0].expect[gfn * WORDS + k] = tag(&g_guests[0], 1);
  }
  OK(numaheap_sharing_add_guest(g_share, g_guests[0].g, err, sizeof err));
  OK(numaheap_guest_split_to_pages(g_guests[0].g, 0));
  uint64_t merged = 0;
  OK(numaheap_sharing_scan(g_share, g_guests[0].g, 0, 64, &merged));

  /* Cold store: 64 pages of guest 1 kept off its node. */
  numaheap_cold_config cc;
  numaheap_cold_config_init(&cc);
  cc.address = frame_address;
  numaheap_cold_store* cold = NULL;
  if (numaheap_cold_store_create(g_heap, &cc, &cold, err, sizeof err)) FAIL("cold store: %s", err);
  OK(numaheap_set_reclaim_hook(g_heap, numaheap_cold_store_reclaim_hook, cold));
  uint32_t pool = 0;
  if (numaheap_cold_pool_create(cold, g_guests[1].g, NUMAHEAP_POOL_PERSISTENT, &pool, err, sizeof err)) FAIL("pool: %s", err);
  uint64_t cold_pages = 0, cold_misplaced = 0;
  unsigned char page[PAGE], back[PAGE];
  for (uint32_t k = 0; k < 64; ++k) {
    memset(page, (int)(k + 1), sizeof page);
    uint32_t node = NUMAHEAP_NO_NODE;
    OK(numaheap_cold_put(cold, pool, 1, k, page, &node));
    if (node == g_guests[1].home) ++cold_misplaced;
    ++cold_pages;
  }

  /* Run: vCPU and backend threads write; the timer steps the migrator. */
  pthread_t threads[GUESTS * (VCPUS + 1)];
  struct vcpu_arg args[GUESTS * (VCPUS + 1)];
  uint32_t nt = 0;
  for (uint32_t i = 0; i < GUESTS; ++i)
    for (uint32_t v = 0; v <= VCPUS; ++v) {
      const int backend = v == VCPUS;
      /* CPU ids 0..7 are the guests' vCPUs; the backends use 8..15. */
      args[nt] = (struct vcpu_arg){&g_guests[i], v, backend ? 8 + i : srat[g_guests[i].vcpu_node].first_cpu + v,
                                   nt, backend};
      if (pthread_create(&threads[nt], NULL, vcpu_thread, &args[nt])) FAIL("thread");
      ++nt;
    }
  uint64_t t0 = now_ns(), tick = 1;
  while (now_ns() - t0 < 600000000ull) {
    numaheap_step_report r;
    OK(numaheap_migrator_step_at(g_mig, tick * 1000000000ull, &r));
    ++tick;
    struct timespec ms = {0, 2000000};
    nanosleep(&ms, NULL);
  }
  /* Rehome guest 2 to node 3's neighbour set while it runs. */
  numaheap_nodemask target;
  memset(&target, 0, sizeof target);
  const uint32_t rehome_to = (g_guests[2].vcpu_node + 1) % NODES;
  numaheap_nodemask_set(&target, rehome_to);
  OK(numaheap_migrator_rehome_ex(g_mig, g_guests[2].mig_id, &target, NUMAHEAP_ALL_VNODES, NUMAHEAP_REHOME_OVERRIDE_LIMITS));
  numaheap_rehome_progress pr;
  memset(&pr, 0, sizeof pr);
  for (int k = 0; k < 2000; ++k) {
    OK(numaheap_migrator_step_at(g_mig, tick++ * 1000000000ull, NULL));
    OK(numaheap_migrator_rehome_progress(g_mig, g_guests[2].mig_id, &pr));
    if (pr.state != NUMAHEAP_REHOME_RUNNING) break;
  }
  atomic_store(&g_stop, 1);
  for (uint32_t t = 0; t < nt; ++t) pthread_join(threads[t], NULL);
  g_guests[2].vcpu_node = rehome_to;  /* for the ratio: its home now */
  const double ratio_after = local_ratio();

  /* Checks: every write is where the p2m says. */
  uint64_t lost = 0, writes = 0, retries = 0;
  for (uint32_t i = 0; i < GUESTS; ++i) {
    struct hv_guest* hg = &g_guests[i];
    writes += atomic_load(&hg->writes), retries += atomic_load(&hg->retries);
    for (uint64_t gfn = 0; gfn < hg->pages; ++gfn) {
      uint64_t mfn;
      if (numaheap_guest_lookup(hg->g, gfn, &mfn, NULL)) continue;
      const uint64_t* w = (const uint64_t*)(const void*)frame_bytes(mfn);
      for (uint32_t k = 0; k < WORDS; ++k)
        if (hg->expect[gfn * WORDS + k] && w[k] != hg->expect[gfn * WORDS + k]) ++lost;
    }
    OK(numaheap_guest_check(hg->g, 1));
  }
  for (uint32_t k = 0; k < 64; ++k) {
    int got = -1;
    memset(page, (int)(k + 1), sizeof page);
    OK(numaheap_cold_get(cold, pool, 1, k, back, &got));
    if (got != NUMAHEAP_COLD_HIT || memcmp(page, back, PAGE)) ++lost;
  }
  numaheap_sharing_stats ss;
  memset(&ss, 0, sizeof ss);
  OK(numaheap_sharing_get_stats(g_share, &ss));
  numaheap_migrator_stats ms;
  OK(numaheap_migrator_get_stats(g_mig, &ms));
  OK(numaheap_migrator_check(g_mig));

  /* Balloon the control domain down and up. */
  uint64_t done = 0;
  OK(numaheap_guest_balloon_down(dom0, 512, &done));
  OK(numaheap_guest_balloon_up(dom0, done));
  unscrubbed += foreign_words(dom0, 1);

  /* Tear down in the order a hypervisor would. */
  for (uint32_t i = 0; i < GUESTS; ++i) {
    OK(numaheap_migrator_remove_guest(g_mig, g_guests[i].mig_id));
    if (g_break != BREAK_METADATA || i != 0) numaheap_frame_mover_destroy(g_guests[i].mover);
  }
  OK(numaheap_sharing_remove_guest(g_share, g_guests[0].g, err, sizeof err));
  OK(numaheap_cold_pool_destroy(cold, pool));
  OK(numaheap_set_reclaim_hook(g_heap, NULL, NULL));
  numaheap_cold_store_destroy(cold);
  for (uint32_t i = 0; i < GUESTS; ++i) OK(numaheap_guest_destroy(g_guests[i].g));
  OK(numaheap_guest_destroy(dom0));

  /* A new guest over most of the machine: every frame it gets was scrubbed. */
  numaheap_guest_spec big;
  memset(&big, 0, sizeof big);
  big.name = "after";
  big.memory_bytes = (uint64_t)NODES * (FRAMES_PER_NODE - 1024) * PAGE;
  big.vcpus = 1;
  numaheap_node_share big_shares[NODES];
  for (uint32_t n = 0; n < NODES; ++n) big_shares[n] = (numaheap_node_share){n, (uint64_t)(FRAMES_PER_NODE - 1024) * PAGE};
  numaheap_guest* after = NULL;
  if (numaheap_guest_create_placed(g_heap, &big, 99, big_shares, NODES, &after, err, sizeof err)) FAIL("after: %s", err);
  if (numaheap_guest_populate(after, err, sizeof err)) FAIL("after populate: %s", err);
  unscrubbed += foreign_words(after, 99);
  OK(numaheap_guest_destroy(after));
  numaheap_sharing_destroy(g_share);
  numaheap_migrator_destroy(g_mig);

  if (g_break == BREAK_LEAK) {
    numaheap_alloc_request r = {0, 0, 0, 7, NULL};
    uint64_t mfn;
    OK(numaheap_alloc(g_heap, &r, &mfn, NULL));  /* and never freed */
  }

  /* Leaks: every frame is free again, nobody owns any. */
  numaheap_drain_all(g_heap);
  uint64_t leaked = 0;
  for (uint32_t n = 0; n < NODES; ++n) {
    numaheap_node_stats s;
    OK(numaheap_stats(g_heap, n, &s));
    leaked += s.managed - s.free - s.offlined;
  }
  OK(numaheap_check(g_heap, 1));

  printf("minihv: %u nodes, %u guests + dom0, %llu writes (%llu retried on protected pages), %lu flushes\n",
         NODES, GUESTS, (unsigned long long)writes, (unsigned long long)retries, (unsigned long)atomic_load(&g_flushes));
  printf("minihv: moved %llu pages (rehome to node %u: %s, %llu moved), merged %llu, cold %llu (on the home node: %llu)\n",
         (unsigned long long)ms.pages_moved, rehome_to, pr.state == NUMAHEAP_REHOME_DONE ? "done" : "NOT DONE",
         (unsigned long long)pr.moved, (unsigned long long)ss.merges, (unsigned long long)cold_pages,
         (unsigned long long)cold_misplaced);
  numaheap_destroy(g_heap);
  numaheap_topology_free(topo);
  /* Metadata leaks: everything numaheap took from the region went back. */
  const size_t meta_left = numaheap_region_used(&meta);
  printf("minihv: local ratio %.2f -> %.2f; lost writes %llu, unscrubbed words %llu, leaked frames %llu; "
         "region metadata %zu KiB in use while running, %zu bytes after teardown\n",
         ratio_before, ratio_after, (unsigned long long)lost, (unsigned long long)unscrubbed,
         (unsigned long long)leaked, meta_in_use / 1024, meta_left);
  int ok = lost == 0 && unscrubbed == 0 && leaked == 0 && meta_left == 0 && cold_misplaced == 0 &&
           merged > 0 && pr.state == NUMAHEAP_REHOME_DONE && ratio_after > ratio_before && ms.pages_moved > 0;
  numaheap_set_default_metadata(NULL);
  free(g_region);
  for (uint32_t i = 0; i < GUESTS; ++i) free(g_guests[i].wp), free(g_guests[i].dirty), free(g_guests[i].expect);
  puts(ok ? "minihv: ok" : "minihv: FAILED");
  return ok ? 0 : 1;
}
