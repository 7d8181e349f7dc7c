// Page-allocator checks inside the guest: filled in once host-memory mode
// lands (allocator/platform).
#include "vm_checks.h"

namespace numaheap::vmtest {

void run_heap_checks(const Topology&) {}

}  // namespace numaheap::vmtest
