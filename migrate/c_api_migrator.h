// The migrator C API's handle, shared by the core C API (migrate/c_api.cc)
// and its host part (migrate/host/c_api.cc: kernel-moved mappings). Internal.
#pragma once

#include <memory>

#include "numaheap/metadata.h"
#include "numaheap/migrator.h"
#include "numaheap/numaheap_migrate.h"

#include "allocator/platform/spin_lock.h"

namespace numaheap::capi {

// A mover the migrator handle owns (the host's kernel movers): destroyed
// with the handle, after the Migrator.
struct OwnedMover {
  NUMAHEAP_METADATA_NEW_DELETE
  Mover* mover = nullptr;
  void (*destroy)(Mover*) = nullptr;
  OwnedMover* next = nullptr;
};

}  // namespace numaheap::capi

struct numaheap_migrator {
  NUMAHEAP_METADATA_NEW_DELETE
  std::unique_ptr<numaheap::Migrator> m;
  numaheap::SpinLock lock;                     // guards owned
  numaheap::capi::OwnedMover* owned = nullptr;  // movers living as long as the migrator
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
