// The topology loaders of the C API (include/numaheap/numaheap.h): host
// code (reads files, calls libnuma, renders text), in libnumaheap.a only.
#include <new>
#include <string>
#include <string_view>

#include "numaheap/numaheap.h"
#include "numaheap/topology_io.h"

#include "allocator/heap/c_handles.h"

using numaheap::capi::wrap_topology;

extern "C" {

int numaheap_topology_parse_numactl(const char* text, size_t len, numaheap_topology** out,
                                    char* err, size_t err_len) {
  if (!text || !out)
    return numaheap::capi::fail(numaheap::Errc::invalid_argument, "null argument", err, err_len);
  return wrap_topology(numaheap::parse_numactl_text(std::string_view(text, len), "c-api"), out, err,
                       err_len);
}

int numaheap_topology_builtin(numaheap_topology** out) {
  if (!out) return NUMAHEAP_E_INVALID_ARGUMENT;
  auto* t = new (std::nothrow) numaheap_topology{numaheap::builtin_default_topology()};
  if (!t) return NUMAHEAP_E_NO_MEMORY;
  *out = t;
  return NUMAHEAP_OK;
}

int numaheap_topology_load_libnuma(numaheap_topology** out, char* err, size_t err_len) {
  if (!out)
    return numaheap::capi::fail(numaheap::Errc::invalid_argument, "null argument", err, err_len);
  return wrap_topology(numaheap::load_topology_libnuma(), out, err, err_len);
}

int numaheap_topology_load_sysfs(const char* root, numaheap_topology** out, char* err,
                                 size_t err_len) {
  if (!root || !out)
    return numaheap::capi::fail(numaheap::Errc::invalid_argument, "null argument", err, err_len);
  return wrap_topology(numaheap::load_topology_sysfs(root), out, err, err_len);
}

size_t numaheap_topology_render_numactl(const numaheap_topology* t, char* out, size_t cap) {
  if (!t) return 0;
  const auto text = numaheap::render_numactl(t->topo);
  numaheap::capi::copy_text(std::string_view(text.data(), text.size()), out, cap);
  return text.size();
}

}  // extern "C"
