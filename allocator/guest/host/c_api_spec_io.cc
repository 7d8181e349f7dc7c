// The guest-spec readers of the C API (include/numaheap/numaheap_guest_io.h):
// host code over numaheap/guest_spec_io.h. A list owns the parsed specs and
// the C views of them (arrays the numaheap_guest_spec pointers point into).
#include <deque>
#include <new>
#include <string>
#include <vector>

#include "numaheap/guest_spec_io.h"
#include "numaheap/numaheap_guest_io.h"

#include "allocator/heap/c_handles.h"

struct numaheap_guest_list {
  numaheap::ParsedGuests parsed;
  // C views, one entry per guest; deques keep element addresses stable.
  struct View {
    std::vector<numaheap_vnode_spec> vnodes;
    std::vector<numaheap_device_spec> devices;
    std::vector<numaheap_vcpu_pin> pins;
    std::deque<numaheap_nodemask> masks;
    numaheap_guest_spec spec{};
  };
  std::deque<View> views;
};

namespace {

using numaheap::capi::fail;
using numaheap::capi::mask_out;

const numaheap_nodemask* keep_mask(numaheap_guest_list::View& v, const numaheap::NodeMask& m) {
  if (m.empty()) return nullptr;
  numaheap_nodemask& c = v.masks.emplace_back();
  mask_out(m, &c);
  return &c;
}

void build_view(const numaheap::GuestSpec& g, numaheap_guest_list::View& v) {
  for (const auto& vn : g.vnodes) {
    numaheap_vnode_spec c{};
    c.memory_bytes = vn.memory_bytes;
    c.pnode = vn.pnode;
    c.vcpus = vn.vcpus.data();
    c.vcpu_count = vn.vcpus.size();
    c.distances = vn.distances.empty() ? nullptr : vn.distances.data();
    c.distance_count = vn.distances.size();
    c.memory_mode = static_cast<int>(vn.memory_mode);
    c.nodes = keep_mask(v, vn.nodes);
    v.vnodes.push_back(c);
  }
  for (const auto& d : g.devices) v.devices.push_back(numaheap_device_spec{d.name.c_str(), d.host_node});
  for (const auto& p : g.vcpu_pins) {
    numaheap_vcpu_pin c{};
    c.vcpu = p.vcpu;
    c.cpus = p.cpus.empty() ? nullptr : p.cpus.data();
    c.cpu_count = p.cpus.size();
    c.nodes = keep_mask(v, p.nodes);
    c.soft = p.soft ? 1 : 0;
    v.pins.push_back(c);
  }
  numaheap_guest_spec& s = v.spec;
  s.name = g.name.c_str();
  s.memory_bytes = g.memory_bytes;
  s.vcpus = g.vcpus;
  s.vnodes = v.vnodes.empty() ? nullptr : v.vnodes.data();
  s.vnode_count = v.vnodes.size();
  s.devices = v.devices.empty() ? nullptr : v.devices.data();
  s.device_count = v.devices.size();
  s.allowed_nodes = keep_mask(v, g.allowed_nodes);
  s.sharing = g.sharing ? 1 : 0;
  s.cold_store = g.cold_store ? 1 : 0;
  s.affinity_group = g.affinity_group.empty() ? nullptr : g.affinity_group.c_str();
  s.anti_affinity_group = g.anti_affinity_group.empty() ? nullptr : g.anti_affinity_group.c_str();
  s.memory_mode = static_cast<int>(g.memory_mode);
  s.vcpu_pins = v.pins.empty() ? nullptr : v.pins.data();
  s.vcpu_pin_count = v.pins.size();
}

numaheap::GuestParseOptions options_of(int format, const char* sysfs_root) {
  numaheap::GuestParseOptions o;
  o.format = static_cast<numaheap::GuestFormat>(format);
  if (sysfs_root) o.sysfs_root = sysfs_root;
  return o;
}

int wrap(numaheap::Result<numaheap::ParsedGuests, numaheap::Error> r, numaheap_guest_list** out, char* err,
         std::size_t err_len) {
  if (!r) return fail(r.error(), err, err_len);
  auto* l = new (std::nothrow) numaheap_guest_list{};
  if (!l) return fail(numaheap::Errc::no_memory, "out of memory", err, err_len);
  l->parsed = std::move(*r);
  for (const auto& g : l->parsed.guests) build_view(g, l->views.emplace_back());
  *out = l;
  return NUMAHEAP_OK;
}

bool valid_format(int f) { return f >= NUMAHEAP_GUEST_FORMAT_DETECT && f <= NUMAHEAP_GUEST_FORMAT_XL; }

}  // namespace

extern "C" {

int numaheap_guest_format_detect(const char* source, const char* text, size_t len) {
  return static_cast<int>(numaheap::detect_guest_format(source ? source : "", text ? std::string_view(text, len) : ""));
}

int numaheap_guests_parse(const char* text, size_t len, const char* source, int format, const char* sysfs_root,
                          numaheap_guest_list** out, char* err, size_t err_len) {
  if ((!text && len) || !out || !valid_format(format))
    return fail(numaheap::Errc::invalid_argument, "null argument or unknown format", err, err_len);
  return wrap(numaheap::parse_guests(std::string_view(text ? text : "", len), source ? source : "input",
                                     options_of(format, sysfs_root)),
              out, err, err_len);
}

int numaheap_guests_load(const char* path, int format, const char* sysfs_root, numaheap_guest_list** out, char* err,
                         size_t err_len) {
  if (!path || !out || !valid_format(format))
    return fail(numaheap::Errc::invalid_argument, "null argument or unknown format", err, err_len);
  return wrap(numaheap::load_guests_file(path, options_of(format, sysfs_root)), out, err, err_len);
}

size_t numaheap_guest_list_count(const numaheap_guest_list* l) { return l ? l->parsed.guests.size() : 0; }

int numaheap_guest_list_spec(const numaheap_guest_list* l, size_t index, numaheap_guest_spec* out) {
  if (!l || !out || index >= l->views.size()) return NUMAHEAP_E_INVALID_ARGUMENT;
  *out = l->views[index].spec;
  return NUMAHEAP_OK;
}

size_t numaheap_guest_list_warning_count(const numaheap_guest_list* l) { return l ? l->parsed.warnings.size() : 0; }

const char* numaheap_guest_list_warning(const numaheap_guest_list* l, size_t index) {
  if (!l || index >= l->parsed.warnings.size()) return nullptr;
  return l->parsed.warnings[index].c_str();
}

void numaheap_guest_list_free(numaheap_guest_list* l) { delete l; }

int numaheap_libvirt_size(uint64_t value, const char* unit, uint64_t* bytes) {
  if (!bytes) return NUMAHEAP_E_INVALID_ARGUMENT;
  return numaheap::scale_libvirt_size(value, unit ? unit : "", *bytes) ? NUMAHEAP_OK : NUMAHEAP_E_PARSE_ERROR;
}

int numaheap_id_list_parse(const char* text, uint64_t limit, uint32_t* out, size_t cap, size_t* count) {
  if (!text || !count || (cap && !out)) return NUMAHEAP_E_INVALID_ARGUMENT;
  std::vector<std::uint32_t> ids;
  if (!numaheap::parse_id_list(text, limit, ids)) return NUMAHEAP_E_PARSE_ERROR;
  for (std::size_t i = 0; i < ids.size() && i < cap; ++i) out[i] = ids[i];
  *count = ids.size();
  return NUMAHEAP_OK;
}

}  // extern "C"
