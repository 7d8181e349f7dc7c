// Negative tests: GuestRam's move helper broken on purpose (numaheap_faulty,
// allocator/platform/fault_injection.h). The checks that the real helper
// passes in vmm_guest_ram_test.cc (GuestRamHelper.*) must catch each.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace numaheap
