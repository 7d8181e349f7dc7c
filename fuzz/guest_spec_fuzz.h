// The body of the guest-spec reader harnesses (guest_libvirt_fuzz.cc,
// guest_xl_fuzz.cc, guest_json_fuzz.cc): one format each, on arbitrary
// bytes.
//
// Properties (a violation traps): the parser returns, never crashes; an
// error is parse_error or no_memory, names the source first and holds only
// printable ASCII (other bytes appear as \xNN); a parsed list has one start
// line per guest, every guest is ok() with at least one vCPU, and
// validate_guest_spec on a small host either accepts it or explains; the
// C API gives the same guests and the same error text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "numaheap/guest_spec_io.h"
#include "numaheap/numaheap_guest_io.h"
#include "numaheap/topology.h"

namespace guest_spec_fuzz {

inline void require(bool ok) {
  if (!ok) __builtin_trap();
}

inline bool printable_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return false;
  return true;
}

inline int run(const std::uint8_t* data, std::size_t size, numaheap::GuestFormat format, int c_format) {
  using namespace numaheap;
  static const Topology topo = [] {
    auto t = TopologyBuilder("fuzz-guests")
                 .add_node(0, {0, 1}, std::uint64_t{1} << 30)
                 .add_node(1, {2, 3}, std::uint64_t{1} << 30)
                 .build();
    require(t.has_value());
    return std::move(t).value();
  }();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  GuestParseOptions o;
  o.format = format;
  o.sysfs_root = "/nonexistent-sysfs";  // no file reads that depend on the machine
  auto r = parse_guests(text, "fuzz", o);
  numaheap_guest_list* l = nullptr;
  char err[512] = "";
  const int rc = numaheap_guests_parse(text.data(), text.size(), "fuzz", c_format, "/nonexistent-sysfs", &l, err,
                                       sizeof err);
  if (!r) {
    require(r.error().code == Errc::parse_error || r.error().code == Errc::no_memory);
    require(r.error().message.rfind("fuzz", 0) == 0);
    require(printable_ascii(r.error().message));
    require(rc != NUMAHEAP_OK && l == nullptr);
    require(r.error().message.view().substr(0, sizeof err - 1) == std::string_view(err));
    return 0;
  }
  require(rc == NUMAHEAP_OK && l != nullptr);
  require(numaheap_guest_list_count(l) == r->guests.size());
  require(r->lines.size() == r->guests.size());
  for (std::size_t i = 0; i < r->guests.size(); ++i) {
    const GuestSpec& g = r->guests[i];
    require(g.ok() && g.vcpus >= 1 && r->lines[i] >= 1);
    numaheap_guest_spec cs{};
    require(numaheap_guest_list_spec(l, i, &cs) == NUMAHEAP_OK);
    require(cs.memory_bytes == g.memory_bytes && cs.vcpus == g.vcpus && cs.vnode_count == g.vnodes.size());
    auto v = validate_guest_spec(g, topo);
    if (!v) require(!v.error().message.empty());
  }
  for (const auto& w : r->warnings) require(w.rfind("fuzz", 0) == 0 && printable_ascii(w));
  numaheap_guest_list_free(l);
  return 0;
}

}  // namespace guest_spec_fuzz
