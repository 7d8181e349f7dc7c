// Negative tests: GuestRam's move helper broken on purpose (numaheap_faulty,
// allocator/platform/fault_injection.h). The checks that the real helper
// passes in vmm_guest_ram_test.cc (GuestRamHelper.*) must catch each.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include <vector>

#include "allocator/platform/fault_injection.h"
#include "unit/vmm_helper_checks.h"

namespace numaheap {
namespace {

TEST(vmm_helper_broken, AHelperKeepingTheVmmsPrivateMemoryIsCaught) {
  fault::Scope broken(fault::helper_keeps_private);
  const test::HelperFootprint r = test::helper_footprint();
  if (!r.set_up) GTEST_SKIP() << r.skip;
  EXPECT_GT(r.private_buffer_mapped, 0) << "a helper holding the VMM's private memory was not caught";
  EXPECT_GT(r.private_mappings, 2);
  EXPECT_GE(r.writes_faulted, static_cast<long>(r.pages / 8)) << "inherited guest RAM's write faults were not seen";
  EXPECT_TRUE(r.helper_moved);  // it still works: only its footprint is wrong
}

TEST(vmm_helper_broken, ALateRefusalLeavingPagesZappedIsCaught) {
  fault::Scope broken(fault::helper_refusal_leaves_zapped);
  for (bool with_sampler : {false, true}) {
    SCOPED_TRACE(with_sampler ? "with a sampler" : "no sampler");
    const test::LateRefusal r = test::late_refusal(with_sampler);
    if (!r.set_up) GTEST_SKIP() << r.skip;
    EXPECT_LT(r.moved, r.asked) << "pages left unmoved were not caught";
    EXPECT_LT(r.present_here, static_cast<long>(r.pages)) << "pages left unmapped were not caught";
    EXPECT_TRUE(r.data_ok);  // nothing is lost either way: the memfd holds the data
  }
}

TEST(vmm_helper_broken, TheRealHelperPassesTheSameChecks) {
  const test::HelperFootprint f = test::helper_footprint();
  if (!f.set_up) GTEST_SKIP() << f.skip;
  EXPECT_EQ(f.private_buffer_mapped, 0);
  EXPECT_LE(f.private_mappings, 2);
  EXPECT_LT(f.writes_faulted, static_cast<long>(f.pages / 8));
  const test::LateRefusal r = test::late_refusal();
  if (!r.set_up) GTEST_SKIP() << r.skip;
  EXPECT_EQ(r.moved, r.asked);
  EXPECT_EQ(r.present_here, static_cast<long>(r.pages));
}

// Not a broken step but a simulated failure: the helper answers that it
// could not map a run (its MADV_POPULATE_READ failed). Its pages must then
// move the old way, never be zapped here and moved through a helper that
// does not map them (not present, left unmapped). (Before: the answer was
// ignored and the move went through the helper.)
TEST(vmm_helper_faults, AHelperThatCannotMapLeavesThePagesToTheOldWay) {
  auto topo = load_topology_libnuma();
  if (!topo) GTEST_SKIP() << "no libnuma topology";
  constexpr std::uint64_t kPages = 64, kBytes = kPages * 4096;
  const int fd = memfd_create("numaheap-cannot-map", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, kBytes), 0);
  auto* shm = static_cast<unsigned char*>(mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(shm, MAP_FAILED);
  for (std::uint64_t i = 0; i < kPages; ++i) shm[i * 4096] = static_cast<unsigned char>(i + 3);
  {
    const GuestRamRegion rs[] = {{shm, kBytes, 0, RamBacking::memfd, true}};
    auto r = GuestRam::create(*topo, rs, {});
    ASSERT_TRUE(r.has_value()) << r.error().message.c_str();
    const NodeId node = topo->memory_nodes().first();
    std::vector<Gfn> gfns;
    for (Gfn g = 0; g < kPages; g += 3) gfns.push_back(g);
    std::vector<MoveOutcome> out(gfns.size());
    {
      fault::Scope failing(fault::helper_cannot_map);
      ASSERT_TRUE((*r)->move(gfns, node, MoveGranularity::pages, out).has_value());
    }
    for (std::size_t i = 0; i < gfns.size(); ++i) EXPECT_EQ(out[i], MoveOutcome::moved) << "gfn " << gfns[i];
    EXPECT_EQ((*r)->stats().moves_via_helper, 0u) << "moved through a helper that said it could not map them";
    EXPECT_EQ((*r)->stats().moves_all, 1u) << "moved the old way (MPOL_MF_MOVE_ALL from the VMM's mapping)";
    EXPECT_EQ((*r)->stats().helper_refusals, 1u);
    EXPECT_EQ((*r)->stats().helper_last_errno, static_cast<std::uint32_t>(ENOMEM));
    std::vector<void*> addrs(kPages);
    std::vector<int> st(kPages);
    for (std::uint64_t i = 0; i < kPages; ++i) addrs[i] = shm + i * 4096;
    ASSERT_EQ(move_pages(0, kPages, addrs.data(), nullptr, st.data(), 0), 0);
    for (std::uint64_t i = 0; i < kPages; ++i) EXPECT_GE(st[i], 0) << "gfn " << i << " left unmapped here";
    // The helper is kept: the next move (it maps) goes through it.
    ASSERT_TRUE((*r)->move(gfns, node, MoveGranularity::pages, out).has_value());
    EXPECT_EQ((*r)->stats().moves_via_helper, 1u);
  }
  for (std::uint64_t i = 0; i < kPages; ++i) ASSERT_EQ(shm[i * 4096], static_cast<unsigned char>(i + 3)) << i;
  munmap(shm, kBytes);
  close(fd);
}

}  // namespace
}  // namespace numaheap
