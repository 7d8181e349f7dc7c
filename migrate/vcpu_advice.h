// vCPU advice (Migrator::set_vcpu_advice / vcpu_advice): per guest and
// node with vCPUs of it, whether moving those vCPUs to the node that holds
// their hot memory is cheaper than moving the memory to them. Internal to
// the migrator; core (freestanding): no allocation after set_vcpu_advice
// except the advice list and scratch, both from the migrator's metadata
// hooks (out of memory: the advice that did not fit is dropped, never a
// crash).
//
// Contract:
//  * Everything here runs with Migrator::Impl::lock held: examine() from
//    step_at() after the guest's vCPUs were recounted and before the policy
//    scan (so the memory it weighs has not moved yet this step), letting it
//    go only across its mover queries (step_lock stays held); the queries
//    from Migrator's const methods, which therefore read the last whole
//    step's `advice` while examine() fills `pending`.
//  * Reporting only: nothing here moves a page or touches the tracker --
//    except when the embedder's on_advice says it follows the advice: then
//    the group's hot pages have their sample streaks reset (hold_group), so
//    this step's policy leaves them where they are. The callbacks (room,
//    on_advice) must not call the Migrator but its lock-free inputs (its
//    lock is held).
#pragma once

#include "migrate/migrator_impl.h"

namespace numaheap {

class VcpuAdvisor {
 public:
  NUMAHEAP_METADATA_NEW_DELETE
  explicit VcpuAdvisor(const MetadataHooks* meta) noexcept : advice(meta), pending(meta), row_of(meta), hot(meta) {}

  // Empty Status when every number is finite and in range.
  static Status validate(const VcpuAdviceConfig& c) noexcept;
  // A new step: its advice is gathered in `pending`; end_step() makes it
  // the advice readers see (they may read between the step's mover calls,
  // and must see the last whole step's advice, not part of this one).
  void begin_step() noexcept { pending.clear(); }
  void end_step() noexcept { advice.swap(pending); }
  // Advice turned off: none is given.
  void forget() noexcept {
    pending.clear();
    advice.clear();
  }
  // Guest `id` was removed: its advice goes (Impl::lock and step_lock held).
  void forget_guest(std::uint32_t id) noexcept {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < advice.size(); ++i)
      if (advice[i].guest != id) advice[kept++] = advice[i];
    while (advice.size() > kept) advice.pop_back();
  }
  // Weighs guest g (lock held; see the top).
  void examine(Migrator::Impl& m, GuestSlot& g);

  VcpuAdviceConfig config;  // guarded by Impl::lock
  // The last whole step's advice, by guest then vCPU. Guarded by Impl::lock.
  Vector<VcpuAdvice> advice;
  // The running step's, moved to `advice` at its end. Guarded by Impl::step_lock.
  Vector<VcpuAdvice> pending;

 private:
  // The embedder follows the advice for the vCPUs on dense node x: this
  // step leaves their hot pages where they are.
  void hold_group(Migrator::Impl& m, GuestSlot& g, std::size_t x, std::uint16_t vcpu_bits) noexcept;
  // Scratch of examine: per dense node, its row in `hot` (-1: no vCPU of
  // the guest there); hot[row * nodes + page node] = hot pages of that
  // node's vCPUs on that node.
  Vector<std::int32_t> row_of;
  Vector<std::uint64_t> hot;
};

}  // namespace numaheap
