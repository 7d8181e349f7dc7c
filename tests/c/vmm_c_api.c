/* VMM guest RAM and the userfaultfd sampler through the C API, compiled as
 * C11: a memfd region and an anonymous one registered on node 0 of a
 * two-node topology; a vnode placed on node 1, which this host's kernel
 * lacks, must be refused by mbind with the range named and nothing left
 * bound; then binding, moving, the migrator and a sampled window. */
#define _GNU_SOURCE
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "numaheap/numaheap_vmm.h"
#include "check.h"


enum { kPages = 64 };
#define kBytes ((uint64_t)kPages * 4096u)

static int policy_of(void* addr) {
  int mode = -1;
  unsigned long mask[16] = {0};
  if (get_mempolicy(&mode, mask, 1025, addr, MPOL_F_ADDR) != 0) return -2;
  return mode;
}

int main(void) {
  numaheap_topology_builder* b = numaheap_topology_builder_new();
  const uint32_t cpus0[] = {0}, cpus1[] = {1};
  CHECK(numaheap_topology_builder_add_node(b, 0, cpus0, 1, 64u << 20) == NUMAHEAP_OK);
  CHECK(numaheap_topology_builder_add_node(b, 1, cpus1, 1, 64u << 20) == NUMAHEAP_OK);
  numaheap_topology* t = NULL;
  CHECK(numaheap_topology_builder_build(b, &t, NULL, 0) == NUMAHEAP_OK);
  numaheap_topology_builder_free(b);
  if (!t) return 1;

  const int fd = memfd_create("numaheap-c", MFD_CLOEXEC);
  CHECK(fd >= 0 && ftruncate(fd, (off_t)kBytes) == 0);
  void* shm = mmap(NULL, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  void* anon = mmap(NULL, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (shm == MAP_FAILED || anon == MAP_FAILED) return 1;
  numaheap_ram_region rs[2] = {{shm, kBytes, 0, NUMAHEAP_RAM_MEMFD, 0},
                               {anon, kBytes, kBytes, NUMAHEAP_RAM_ANONYMOUS, 0}};
  numaheap_vnode_ram vs[2];
  memset(vs, 0, sizeof vs);
  vs[0].vnode = 0;
  vs[0].guest_phys = 0;
  vs[0].bytes = kBytes;
  numaheap_nodemask_set(&vs[0].nodes, 0);
  vs[1].vnode = 1;
  vs[1].guest_phys = kBytes;
  vs[1].bytes = kBytes;
  numaheap_nodemask_set(&vs[1].nodes, 1);
  char err[256] = "";
  numaheap_vmm_ram* r = NULL;
  const int rc = numaheap_vmm_ram_create(t, rs, 2, vs, 2, NULL, &r, err, sizeof err);
  if (rc != NUMAHEAP_OK) { /* a host without node 1 */
    CHECK(rc == NUMAHEAP_E_INVALID_NODE);
    CHECK(strstr(err, "to node 1") != NULL && strstr(err, "gpa [0x40000, 0x80000)") != NULL);
    CHECK(r == NULL);
    CHECK(policy_of(shm) == MPOL_DEFAULT && policy_of(anon) == MPOL_DEFAULT);
  } else {
    numaheap_vmm_ram_destroy(r);
    r = NULL;
  }
  /* Bad input: unaligned length; unknown backing. */
  rs[0].bytes = kBytes - 1;
  CHECK(numaheap_vmm_ram_create(t, rs, 2, vs, 1, NULL, &r, err, sizeof err) == NUMAHEAP_E_INVALID_ARGUMENT);
  CHECK(strstr(err, "gpa [0x0, 0x3ffff)") != NULL);
  rs[0].bytes = kBytes;
  rs[0].backing = 7;
  CHECK(numaheap_vmm_ram_create(t, rs, 2, vs, 1, NULL, &r, err, sizeof err) == NUMAHEAP_E_INVALID_ARGUMENT);
  rs[0].backing = NUMAHEAP_RAM_MEMFD;

  /* Both regions on node 0, one vnode each. */
  memset(&vs[1].nodes, 0, sizeof vs[1].nodes);
  numaheap_nodemask_set(&vs[1].nodes, 0);
  CHECK(numaheap_vmm_ram_create(t, rs, 2, vs, 2, NULL, &r, err, sizeof err) == NUMAHEAP_OK);
  if (!r) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  CHECK(policy_of(shm) == MPOL_BIND && policy_of(anon) == MPOL_BIND);
  CHECK(numaheap_vmm_ram_pages(r) == 2 * kPages);
  numaheap_ram_part parts[4];
  CHECK(numaheap_vmm_ram_layout(r, parts, 4) == 2);
  CHECK(parts[1].first == kPages && parts[1].pages == kPages && parts[1].pnode == 0 && parts[1].vnode == 1);
  uint64_t gfns[3] = {0, kPages + 1, 5 * kPages};
  uint8_t out[3];
  uint64_t moved = 9;
  CHECK(numaheap_vmm_ram_move(r, gfns, 3, 0, out, &moved) == NUMAHEAP_OK);
  CHECK(out[0] == NUMAHEAP_MOVED && out[1] == NUMAHEAP_MOVED && out[2] == NUMAHEAP_MOVE_NOT_PRESENT);
  CHECK(numaheap_vmm_ram_move(r, gfns, 3, 1000, out, &moved) == NUMAHEAP_E_INVALID_NODE);
  numaheap_vmm_ram_stats rst;
  memset(&rst, 0xee, sizeof rst);
  CHECK(numaheap_vmm_ram_get_stats(r, &rst) == NUMAHEAP_OK);
  CHECK(rst.pages == 2 * kPages && rst.moves == 1 && rst.helper_refusals == 0 && rst.helper_last_errno == 0);
  CHECK(numaheap_vmm_ram_get_stats(r, NULL) == NUMAHEAP_E_INVALID_ARGUMENT);

  numaheap_migrator* m = NULL;
  CHECK(numaheap_migrator_create(t, NULL, &m) == NUMAHEAP_OK);
  uint32_t id = 99;
  numaheap_migrate_guest_options o;
  memset(&o, 0, sizeof o);
  o.vcpus = 1;
  CHECK(numaheap_migrator_add_vmm_ram(m, r, &o, &id) == NUMAHEAP_OK);
  numaheap_sampler_config sc;
  numaheap_sampler_config_init(&sc);
  sc.pages_per_second = 0;
  sc.cpu_source = NUMAHEAP_SAMPLE_VCPU_THREADS;
  numaheap_sampler* s = NULL;
  if (numaheap_sampler_create(r, m, id, &sc, &s, err, sizeof err) == NUMAHEAP_OK) {
    CHECK(numaheap_sampler_start(s) == NUMAHEAP_OK);
    CHECK(numaheap_sampler_set_vcpu_thread(s, 0, gettid()) == NUMAHEAP_OK);
    CHECK(numaheap_sampler_scan(s, 0, 2 * kPages) == NUMAHEAP_OK);
    for (int i = 0; i < 4; ++i) ((volatile char*)shm)[i * 4096] += 1;
    for (int i = 0; i < 4; ++i) ((volatile char*)anon)[i * 4096] += 1;
    numaheap_sampler_stats st;
    CHECK(numaheap_sampler_get_stats(s, &st) == NUMAHEAP_OK);
    CHECK(st.minor_samples == 4 && st.wp_samples == 4 && st.windows == 1);
    CHECK(numaheap_sampler_vcpu_samples(s, 0) == 8 && numaheap_sampler_vcpu_samples(s, 1) == 0);
    CHECK(numaheap_sampler_vcpu_moved(s, 0) == NUMAHEAP_OK);
    numaheap_sampler_stop(s);
    numaheap_sampler_destroy(s);
  } else {
    fprintf(stderr, "sampler unavailable here: %s\n", err);
  }
  CHECK(((volatile char*)shm)[0] == 1 || ((volatile char*)shm)[0] == 0);
  CHECK(numaheap_migrator_remove_guest(m, id) == NUMAHEAP_OK);
  numaheap_migrator_destroy(m);
  numaheap_vmm_ram_destroy(r);
  munmap(shm, kBytes);
  munmap(anon, kBytes);
  close(fd);
  numaheap_topology_free(t);
  return check_report();
}
