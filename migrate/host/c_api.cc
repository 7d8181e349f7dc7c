// The migrator C API's host part: VMM guest RAM mappings moved by the kernel
// (move_pages(2)) -- numaheap_migrator_add_mapping. libnumaheap.a only.
#include <new>

#include "numaheap/mover.h"
#include "numaheap/numaheap_migrate.h"

#include "allocator/heap/c_handles.h"
#include "migrate/c_api_migrator.h"

namespace {
void destroy_kernel_mover(numaheap::Mover* m) { delete static_cast<numaheap::KernelMover*>(m); }
}  // namespace

extern "C" {

int numaheap_migrator_add_mapping(numaheap_migrator* m, void* base, uint64_t pages, uint32_t vcpus,
                                  const numaheap_nodemask* allowed, uint32_t* guest_id) {
  if (!m || !guest_id) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto km = numaheap::KernelMover::create(base, pages);
  if (!km) return numaheap::capi::code(km.error());
  auto* mover = new (std::nothrow) numaheap::KernelMover(*km);
  auto* owned = new (std::nothrow) numaheap::capi::OwnedMover();
  if (!mover || !owned) {
    delete mover;
    delete owned;
    return NUMAHEAP_E_NO_MEMORY;
  }
  owned->mover = mover;
  owned->destroy = destroy_kernel_mover;
  numaheap::MigrateGuestOptions o;
  o.vcpus = vcpus;
  if (allowed) o.allowed = numaheap::capi::mask_of(allowed);
  numaheap::SpinGuard g(m->lock);  // with the entry: remove_guest finds it under the same lock
  auto id = m->m->add_guest(*mover, o);
  if (!id) {
    delete mover;
    delete owned;
    return numaheap::capi::code(id.error());
  }
  owned->guest = *id;
  owned->next = m->owned;
  m->owned = owned;
  *guest_id = *id;
  return NUMAHEAP_OK;
}

}  // extern "C"
