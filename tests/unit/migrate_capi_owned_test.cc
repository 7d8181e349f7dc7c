// What the migrator's C handle owns per guest goes with the guest: the
// kernel mover numaheap_migrator_add_mapping makes for a mapping is freed
// by numaheap_migrator_remove_guest, not kept until the handle dies (a host
// that adds and removes mappings -- reboots, hotplug, migration in and out
// -- must not grow without bound). Counted with metadata hooks installed
// as the process default (the handle, its movers and the migrator's
// tracking all come from them).
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>

#include "numaheap/numaheap_migrate.h"
#include "unit/guest_oom_hooks.h"

namespace {

constexpr std::uint64_t kPages = 512;  // one 2 MiB mapping

numaheap_topology* two_nodes() {
  numaheap_topology_builder* b = numaheap_topology_builder_new();
  const uint32_t cpus0[] = {0, 1}, cpus1[] = {2, 3};
  numaheap_topology* t = nullptr;
  if (!b || numaheap_topology_builder_add_node(b, 0, cpus0, 2, 64u << 20) != NUMAHEAP_OK ||
      numaheap_topology_builder_add_node(b, 1, cpus1, 2, 64u << 20) != NUMAHEAP_OK ||
      numaheap_topology_builder_build(b, &t, nullptr, 0) != NUMAHEAP_OK)
    t = nullptr;
  numaheap_topology_builder_free(b);
  return t;
}

struct Mapping {
  void* base = mmap(nullptr, kPages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ~Mapping() {
    if (base != MAP_FAILED) munmap(base, kPages * 4096);
  }
};

}  // namespace

TEST(MigrateCapiOwned, RemoveGuestFreesTheMappingsMover) {
  numaheap::test::OomHooks hooks;
  numaheap::test::DefaultMetadataScope scope(hooks.hooks());
  numaheap_topology* t = two_nodes();
  ASSERT_NE(t, nullptr);
  numaheap_migrator* m = nullptr;
  ASSERT_EQ(numaheap_migrator_create(t, nullptr, &m), NUMAHEAP_OK);
  Mapping map;
  ASSERT_NE(map.base, MAP_FAILED);
  const auto cycle = [&] {
    uint32_t id = ~0u;
    if (numaheap_migrator_add_mapping(m, map.base, kPages, 2, nullptr, &id) != NUMAHEAP_OK) return false;
    return numaheap_migrator_remove_guest(m, id) == NUMAHEAP_OK;
  };
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(cycle());
  const long live = hooks.live(), bytes = hooks.live_bytes();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(cycle());
  EXPECT_EQ(hooks.live(), live) << "allocations kept per add_mapping/remove_guest cycle";
  EXPECT_EQ(hooks.live_bytes(), bytes);

  // A failed removal (unknown guest) frees nothing, and the live guests'
  // movers stay: the migrator still steps them.
  uint32_t a = ~0u, b = ~0u;
  ASSERT_EQ(numaheap_migrator_add_mapping(m, map.base, kPages, 2, nullptr, &a), NUMAHEAP_OK);
  ASSERT_EQ(numaheap_migrator_add_mapping(m, map.base, kPages, 2, nullptr, &b), NUMAHEAP_OK);
  const long with_two = hooks.live();
  EXPECT_EQ(numaheap_migrator_remove_guest(m, 1000), NUMAHEAP_E_INVALID_ARGUMENT);
  EXPECT_EQ(hooks.live(), with_two);
  ASSERT_EQ(numaheap_migrator_remove_guest(m, a), NUMAHEAP_OK);
  EXPECT_EQ(numaheap_migrator_remove_guest(m, a), NUMAHEAP_E_INVALID_ARGUMENT);  // twice: nothing more
  EXPECT_EQ(numaheap_migrator_step_at(m, 1'000'000'000, nullptr), NUMAHEAP_OK);  // b's mover is alive
  EXPECT_EQ(numaheap_migrator_check(m), NUMAHEAP_OK);
  // Its id is reused: the new guest's mover is its own, and b's stays.
  uint32_t c = ~0u;
  ASSERT_EQ(numaheap_migrator_add_mapping(m, map.base, kPages, 2, nullptr, &c), NUMAHEAP_OK);
  EXPECT_EQ(c, a);
  EXPECT_EQ(hooks.live(), with_two);
  ASSERT_EQ(numaheap_migrator_remove_guest(m, b), NUMAHEAP_OK);
  EXPECT_EQ(numaheap_migrator_step_at(m, 2'000'000'000, nullptr), NUMAHEAP_OK);
  ASSERT_EQ(numaheap_migrator_remove_guest(m, c), NUMAHEAP_OK);
  EXPECT_EQ(hooks.live(), live);
  numaheap_migrator_destroy(m);
  numaheap_topology_free(t);
}
