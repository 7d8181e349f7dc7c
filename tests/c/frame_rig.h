/* The C tests' simulated machine memory: two nodes of FRAMES_PER_NODE
 * 4 KiB frames each, mfn BASE .. BASE + 2 * FRAMES_PER_NODE, held in one
 * calloc'd array, with the scrub and copy hooks a frame-only heap needs.
 * rig_heap() allocates the memory and creates the heap on a topology the
 * test built (its nodes 0 and 1 must own those frames). Include after
 * check.h and numaheap.h. */
#ifndef NUMAHEAP_TESTS_C_FRAME_RIG_H
#define NUMAHEAP_TESTS_C_FRAME_RIG_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FRAMES_PER_NODE 8192u /* 32 MiB */
#define PAGE 4096u
#define BASE 256u /* first mfn (mfn 0 is never a frame) */
#define MIB (1024u * 1024u)

static unsigned char* g_mem; /* the machine's frames, mfn BASE .. BASE + 2 * FRAMES_PER_NODE */

/* The bytes of frame `mfn`; NULL outside the machine. */
static unsigned char* frame(void* ctx, uint64_t mfn) {
  (void)ctx;
  return mfn >= BASE && mfn - BASE < 2u * FRAMES_PER_NODE ? g_mem + (mfn - BASE) * PAGE : NULL;
}
static void scrub(void* ctx, uint64_t first, uint64_t count) { memset(frame(ctx, first), 0, count * PAGE); }
static void copy(void* ctx, uint64_t dst, uint64_t src) { memcpy(frame(ctx, dst), frame(ctx, src), PAGE); }

/* The machine's memory (once) and a heap on `t` with the hooks above;
 * every failure ends the test through CHECK. */
static numaheap_heap* rig_heap(numaheap_topology* t) {
  if (!g_mem) g_mem = calloc(2u * FRAMES_PER_NODE, PAGE);
  CHECK(g_mem);
  CHECK(t);
  numaheap_config cfg;
  numaheap_config_init(&cfg);
  cfg.hooks.scrub = scrub;
  cfg.hooks.copy = copy;
  numaheap_heap* h = NULL;
  char err[256] = "";
  int rc = numaheap_create(t, &cfg, &h, err, sizeof err);
  if (rc != NUMAHEAP_OK) fprintf(stderr, "numaheap_create: %s\n", err);
  CHECK(rc == NUMAHEAP_OK);
  return h;
}

#endif
