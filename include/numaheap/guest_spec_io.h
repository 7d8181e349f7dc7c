// numaheap: guest specs from what admins already write -- libvirt domain
// XML, xl.cfg and JSON -- read as libvirt and xl mean them. Host library
// only (allocator/guest/host/spec_*.cc); the C twin is numaheap_guest_io.h.
//
// Contract: a parser never throws and never crashes on any input. It
// returns every guest of the text, or the first error, whose message starts
// with "SOURCE:LINE:" (and "COLUMN:" where the format gives one) and prints
// bytes that are not printable ASCII as \xNN. What a parser reads but does
// not use (an <interface>, a <disk>, an xl key with no bearing on
// placement) is listed in `warnings`, never dropped silently. A parsed spec
// is not yet checked against a host: validate_guest_spec does that.
// Every form accepted, and the mapping to GuestSpec, is in docs/guests.md.
//
// JSON:    a list of guests, or {"guests": [...]}; a guest is
//          {"name", "memory_mb", "vcpus", "nodes", "memory_mode",
//           "vnodes": [{"memory_mb", "vcpus", "pnode", "nodes", "memory_mode",
//                       "distances"}],
//           "devices": [{"name", "node"}], "vcpu_pins": [{"vcpu", "cpus", "soft"}],
//           "sharing", "cold_store", "affinity", "anti_affinity"}.
// libvirt: <domain> (one, or several under any root element): <memory>,
//          <vcpu>, <cpu><numa><cell>, <numatune>, <cputune><vcpupin>,
//          <devices><hostdev> (PCI, node from sysfs), and numaheap's hints in
//          <metadata><numaheap xmlns="urn:numaheap:1">.
// xl.cfg:  name, memory, maxmem, vcpus, maxvcpus, vnuma, cpus, cpus_soft.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "numaheap/guest_spec.h"
#include "numaheap/result.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

enum class GuestFormat : std::uint8_t {
  detect = 0,   // by the source's extension, then by the content
  json,
  libvirt_xml,
  xl_cfg,
};

struct GuestParseOptions {
  GuestFormat format = GuestFormat::detect;
  // Where <hostdev> PCI addresses are looked up:
  // <sysfs_root>/sys/bus/pci/devices/DDDD:BB:DD.F/numa_node ("" = "/").
  std::string sysfs_root;
};

struct ParsedGuests {
  std::vector<GuestSpec> guests;
  std::vector<std::size_t> lines;     // the line each guest starts on (1-based)
  std::vector<std::string> warnings;  // "SOURCE:LINE: what was ignored and why"
};

// The format by the extension of `source` (.xml, .json, .cfg / .xl /
// .xlcfg), else by the first character after a byte-order mark and blanks
// ('<' XML, '{' or '[' JSON, anything else xl.cfg).
GuestFormat detect_guest_format(std::string_view source, std::string_view text);

// Parses `text` (named `source` in messages); a UTF-8 byte-order mark is
// skipped.
Result<ParsedGuests, Error> parse_guests(std::string_view text, std::string_view source,
                                         const GuestParseOptions& options = {});
// Reads the file `path` and parses it.
Result<ParsedGuests, Error> load_guests_file(std::string_view path, const GuestParseOptions& options = {});

// A memory size with a libvirt unit, as libvirt scales it: case-insensitive
// b / byte / bytes; k, KiB (1024) and KB (1000); likewise m, g, t, p, e.
// An empty unit is KiB. False on an unknown unit or when the size does not
// fit in 64 bits.
bool scale_libvirt_size(std::uint64_t value, std::string_view unit, std::uint64_t& bytes);

// A list of ids in Linux / libvirt syntax ("0-3,8,^2": ranges, and ^id
// exclusions), each below `limit`, into ascending unique ids. False on bad
// syntax, an id at or above the limit, or an empty result.
bool parse_id_list(std::string_view text, std::uint64_t limit, std::vector<std::uint32_t>& out);

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
