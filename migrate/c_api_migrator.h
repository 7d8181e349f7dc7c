// The migrator C API's handle, shared by the core C API (migrate/c_api.cc)
// and its host part (migrate/host/c_api.cc: kernel-moved mappings). Internal.
#pragma once

#include <cstdint>
#include <memory>

#include "numaheap/metadata.h"
#include "numaheap/migrator.h"
#include "numaheap/numaheap_migrate.h"

#include "allocator/platform/spin_lock.h"

namespace numaheap::capi {

// A mover the migrator handle made for one guest (the host's kernel movers,
// numaheap_migrator_add_mapping): destroyed when that guest is removed
// (numaheap_migrator_remove_guest), or with the handle, after the Migrator.
struct OwnedMover {
  NUMAHEAP_METADATA_NEW_DELETE
  Mover* mover = nullptr;
  void (*destroy)(Mover*) = nullptr;
  std::uint32_t guest = 0;  // the guest id it moves for
  OwnedMover* next = nullptr;
};

}  // namespace numaheap::capi

struct numaheap_migrator {
  NUMAHEAP_METADATA_NEW_DELETE
  std::unique_ptr<numaheap::Migrator> m;
  // Guards owned. Held across the Migrator's add_guest and remove_guest
  // that go with a change of the list, so an entry's guest id is always
  // that of a live guest of its own (an id is reused once removed).
  numaheap::SpinLock lock;
  numaheap::capi::OwnedMover* owned = nullptr;  // guarded by lock: movers of live guests
  // The C on_advice hook, called through a trampoline with this handle as
  // its context: written by set_vcpu_advice, read by the trampoline in a
  // step (the migrator's lock held, then this one: never the other way).
  numaheap::SpinLock advice_lock;
  int (*on_advice)(void* ctx, const numaheap_vcpu_advice* advice) = nullptr;  // guarded by advice_lock
  void* on_advice_ctx = nullptr;                                               // guarded by advice_lock

  ~numaheap_migrator() {
    m.reset();  // stops the thread; nothing uses the movers after this
    while (owned) {
      numaheap::capi::OwnedMover* o = owned;
      owned = o->next;
      o->destroy(o->mover);
      delete o;
    }
  }
};
