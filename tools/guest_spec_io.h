// Guest specs from what admins already write: libvirt domain XML, xl.cfg
// and JSON. Parsers return an Error naming the file, the element or line,
// and the problem; they never throw out of this interface.
//
// JSON:   {"guests":[{"name":"g0","memory_mb":4096,"vcpus":4,
//           "nodes":"0-1",                      (allowed host nodes, optional)
//           "vnodes":[{"memory_mb":2048,"vcpus":"0-1","pnode":0|"auto",
//                      "distances":[10,21]}],   (optional)
//           "devices":[{"name":"nvme0","node":2}],
//           "sharing":false,"cold_store":false,
//           "affinity":"web","anti_affinity":"db"}]}
// libvirt: <vcpu>, <memory unit=…>, <cpu><numa><cell id cpus memory unit>
//          with <distances><sibling id value/>, <numatune><memory nodeset>
//          and <memnode cellid nodeset>; numaheap's own hints in
//          <metadata><numaheap xmlns="urn:numaheap:1"> with <device name node/>,
//          <affinity group/>, <anti-affinity group/>, <sharing/>, <cold-store/>.
//          A file may hold one <domain> or several inside any root element.
// xl.cfg:  name, memory (MB), vcpus, and
//          vnuma = [ ["pnode=0","size=2048","vcpus=0-1","vdistances=10,20"], … ]
//          or one string per vnode: [ "pnode=0, size=2048, vcpus=0-1, vdistances=10,20" ].
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "numaheap/guest_spec.h"
#include "numaheap/result.h"

namespace numaheap::tools {

Result<std::vector<GuestSpec>, Error> parse_guests_json(std::string_view text,
                                                        std::string_view source);
Result<std::vector<GuestSpec>, Error> parse_libvirt_xml(std::string_view text,
                                                        std::string_view source);
Result<GuestSpec, Error> parse_xl_cfg(std::string_view text, std::string_view source);

// Reads a file and picks the parser from its first non-blank character:
// '{' JSON, '<' libvirt XML, anything else xl.cfg.
Result<std::vector<GuestSpec>, Error> load_guests_file(std::string_view path);

// Refuses a parsed spec whose names were cut (longer than kGuestNameMax
// bytes) or whose lists ran out of memory; every parser ends with it.
inline Result<void, Error> check_parsed_spec(const GuestSpec& g, std::string_view source) {
  auto cut = [](const GuestName& n) { return n.truncated(); };
  bool any_cut = cut(g.name) || cut(g.affinity_group) || cut(g.anti_affinity_group);
  for (const DeviceSpec& d : g.devices) any_cut |= cut(d.name);
  if (any_cut)
    return Error{Errc::parse_error, std::string(source) + ": guest '" + g.name.str() +
                                        "': a name is longer than " + std::to_string(kGuestNameMax) + " bytes"};
  if (!g.ok()) return Error{Errc::no_memory, std::string(source) + ": out of memory"};
  return {};
}

// A list of ids in Linux list syntax ("0-3,8"), each below `limit`; the
// vCPU lists of all three formats use it.
bool parse_id_list(std::string_view text, std::uint64_t limit, std::vector<std::uint32_t>& out);
// The same into a spec's list (false also when it runs out of memory).
bool parse_id_list(std::string_view text, std::uint64_t limit, Vector<std::uint32_t>& out);

// Memory size with a libvirt unit ("KiB" default, b/bytes, KB, k/KiB, MB,
// M/MiB, GB, G/GiB, TB, T/TiB); false on an unknown unit or overflow.
bool scale_libvirt_size(std::uint64_t value, std::string_view unit, std::uint64_t& bytes);

}  // namespace numaheap::tools
