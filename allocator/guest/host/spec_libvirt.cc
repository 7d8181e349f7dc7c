// Guest specs from libvirt domain XML, read as libvirt reads them (what is
// accepted and how it maps: docs/guests.md). pugixml parses; element
// offsets become line numbers. What a domain holds that has no bearing on
// placement is listed in the warnings, never refused.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>

#include <pugixml.hpp>

#include "allocator/guest/host/spec_io_internal.h"

namespace numaheap::spec_io {

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kMaxBytes = 1ull << 62;
constexpr std::uint64_t kCpuLimit = 1u << 16;
constexpr std::size_t kMaxCells = 256;  // the distance matrix is cells^2

struct Ctx {
  std::string_view source;
  const LineIndex& lines;
  const GuestParseOptions& options;
  std::vector<std::string>& warnings;

  std::size_t line(const pugi::xml_node& n) const {
    const std::ptrdiff_t off = n.offset_debug();
    return off < 0 ? 0 : lines.line_of(static_cast<std::size_t>(off));
  }
  Error fail(const pugi::xml_node& n, const std::string& what) const { return spec_io::fail(source, line(n), 0, what); }
  void warn(const pugi::xml_node& n, const std::string& what) const {
    warnings.push_back(where(source, line(n)) + ": " + what);
  }
};

std::string attr(const pugi::xml_node& n, const char* name) { return n.attribute(name).value(); }

// A libvirt size: the value in `value`, the unit in `unit` (empty = KiB),
// rounded up to whole KiB as libvirt does, then to the 4 KiB frame.
Result<std::uint64_t, Error> sized(const Ctx& c, const pugi::xml_node& at, std::string_view what,
                                   std::string_view value, std::string_view unit) {
  std::uint64_t v = 0, bytes = 0;
  if (!parse_u64(value, v))
    return c.fail(at, std::string(what) + ": expected a size, got '" + printable(value) + "'");
  if (!scale_libvirt_size(v, unit, bytes) || bytes > kMaxBytes)
    return c.fail(at, std::string(what) + ": unknown unit '" + printable(unit) + "' or size too large");
  return (bytes + kPage - 1) / kPage * kPage;
}

Result<NodeMask, Error> nodeset(const Ctx& c, const pugi::xml_node& at, std::string_view text) {
  std::vector<std::uint32_t> ids;
  if (!parse_id_list(text, kMaxNodes, ids))
    return c.fail(at, "bad nodeset '" + printable(text) + "' (expected host nodes such as 0-3,^2)");
  NodeMask m;
  for (std::uint32_t id : ids) m.set(id);
  return m;
}

Result<MemoryPolicy, Error> mode_of(const Ctx& c, const pugi::xml_node& at) {
  const std::string m = attr(at, "mode");
  if (m.empty() || m == "strict" || m == "restrictive") return MemoryPolicy::bind;
  if (m == "preferred") return MemoryPolicy::prefer;
  if (m == "interleave") return MemoryPolicy::interleave;
  return c.fail(at, "mode '" + printable(m) + "': expected strict, preferred, interleave or restrictive");
}

// A PCI address attribute: libvirt reads it with base 0 ("0x06", "6").
bool pci_field(const pugi::xml_node& a, const char* name, unsigned long max, unsigned long& out) {
  const char* s = a.attribute(name).value();
  if (!*s) {
    out = 0;
    return std::strcmp(name, "domain") == 0 || std::strcmp(name, "function") == 0;
  }
  char* end = nullptr;
  out = std::strtoul(s, &end, 0);
  return end && *end == '\0' && out <= max;
}

// A PCI host device (<hostdev type='pci'> or <interface type='hostdev'>):
// a DeviceSpec on the device's node, or a warning when sysfs gives none.
Result<void, Error> pci_device(const Ctx& c, const pugi::xml_node& dev, GuestSpec& g) {
  pugi::xml_node a = dev.child("source").child("address");
  if (!a) {
    c.warn(dev, "<" + std::string(dev.name()) + "> without a PCI <source><address>: not placed near it");
    return {};
  }
  unsigned long dom = 0, bus = 0, slot = 0, fn = 0;
  if (!pci_field(a, "domain", 0xffff, dom) || !pci_field(a, "bus", 0xff, bus) || !pci_field(a, "slot", 0x1f, slot) ||
      !pci_field(a, "function", 7, fn))
    return c.fail(a, "<address>: expected a PCI address (domain, bus, slot, function)");
  char bdf[32];
  std::snprintf(bdf, sizeof bdf, "%04lx:%02lx:%02lx.%lx", dom, bus, slot, fn);
  const long node = pci_numa_node(c.options.sysfs_root, bdf);
  if (node < 0 || node >= static_cast<long>(kMaxNodes)) {
    c.warn(dev, std::string("PCI device ") + bdf +
                    ": sysfs gives no NUMA node (numa_node missing or -1): not placed near it");
    return {};
  }
  DeviceSpec d;
  d.name = std::string("pci-") + bdf;
  d.host_node = static_cast<NodeId>(node);
  g.devices.push_back(std::move(d));
  return {};
}

Result<void, Error> read_cells(const Ctx& c, const pugi::xml_node& numa, GuestSpec& g) {
  std::vector<pugi::xml_node> cells;
  for (pugi::xml_node cell = numa.child("cell"); cell; cell = cell.next_sibling("cell")) cells.push_back(cell);
  const std::size_t n = cells.size();
  if (n == 0) return {};
  if (n > kMaxCells) return c.fail(numa, "more than " + std::to_string(kMaxCells) + " cells");
  std::vector<VNodeSpec> vn(n);
  std::vector<bool> seen(n, false);
  std::vector<std::vector<std::uint32_t>> dist(n, std::vector<std::uint32_t>(n, 0));
  for (std::size_t i = 0; i < n; ++i) {
    const pugi::xml_node cell = cells[i];
    std::uint64_t id = i;  // cells without id are numbered in order
    if (const char* s = cell.attribute("id").value(); *s && !parse_u64(s, id))
      return c.fail(cell, "<cell> id '" + printable(s) + "' is not a number");
    if (id >= n)
      return c.fail(cell, "<cell> id " + std::to_string(id) + ": ids must be 0.." + std::to_string(n - 1) +
                              " (one per cell)");
    if (seen[id]) return c.fail(cell, "<cell> id " + std::to_string(id) + " appears twice");
    seen[id] = true;
    VNodeSpec& v = vn[id];
    auto bytes = sized(c, cell, "<cell> memory", attr(cell, "memory"), attr(cell, "unit"));
    if (!bytes) return bytes.error();
    v.memory_bytes = *bytes;
    if (const std::string cpus = attr(cell, "cpus"); !cpus.empty()) {
      std::vector<std::uint32_t> ids;
      if (!parse_id_list(cpus, kMaxGuestVcpus, ids))
        return c.fail(cell, "<cell> cpus '" + printable(cpus) + "' is not a vCPU list");
      if (!v.vcpus.assign(ids.data(), ids.size())) return out_of_memory(c.source);
    }
    for (pugi::xml_node s = cell.child("distances").child("sibling"); s; s = s.next_sibling("sibling")) {
      std::uint64_t sib = 0, val = 0;
      if (!parse_u64(attr(s, "id"), sib) || sib >= n)
        return c.fail(s, "<sibling> id '" + printable(attr(s, "id")) + "' names no cell");
      if (!parse_u64(attr(s, "value"), val) || val < kLocalDistance || val > kMaxDistance)
        return c.fail(s, "<sibling> value '" + printable(attr(s, "value")) + "': expected 10..255");
      if ((sib == id) != (val == kLocalDistance))
        return c.fail(s, "<sibling> value " + std::to_string(val) + ": 10 is the distance of a cell to itself only");
      dist[id][sib] = static_cast<std::uint32_t>(val);
    }
  }
  // Like libvirt: an unset distance takes its mirror's value, else 10 to
  // itself and 20 to others -- but only when the domain gives distances.
  bool any = false;
  for (const auto& row : dist)
    for (std::uint32_t d : row) any |= d != 0;
  for (std::size_t i = 0; any && i < n; ++i)
    for (std::size_t k = 0; k < n; ++k) {
      std::uint32_t& d = dist[i][k];
      if (d == 0) d = dist[k][i] ? dist[k][i] : (i == k ? kLocalDistance : kRemoteDistance);
    }
  for (std::size_t i = 0; i < n; ++i) {
    if (any && !vn[i].distances.assign(dist[i].data(), n)) return out_of_memory(c.source);
    if (!g.vnodes.push_back(std::move(vn[i]))) return out_of_memory(c.source);
  }
  return {};
}

// numaheap's own hints: the <metadata> child that declares our namespace.
Result<void, Error> read_hints(const Ctx& c, const pugi::xml_node& dom, GuestSpec& g) {
  pugi::xml_node nh = dom.child("metadata").find_child([](const pugi::xml_node& n) {
    for (pugi::xml_attribute a = n.first_attribute(); a; a = a.next_attribute())
      if (std::string_view(a.name()).starts_with("xmlns") && std::strcmp(a.value(), "urn:numaheap:1") == 0)
        return true;
    return false;
  });
  for (pugi::xml_node e = nh.first_child(); e; e = e.next_sibling()) {
    if (e.type() != pugi::node_element) continue;
    std::string_view tag = e.name();
    if (auto colon = tag.find(':'); colon != std::string_view::npos) tag = tag.substr(colon + 1);
    if (tag == "device") {
      DeviceSpec d;
      d.name = attr(e, "name");
      std::uint64_t node = 0;
      if (!parse_u64(attr(e, "node"), node) || node >= kMaxNodes)
        return c.fail(e, "<numaheap:device> needs node=\"<host node id>\"");
      d.host_node = static_cast<NodeId>(node);
      g.devices.push_back(std::move(d));
    } else if (tag == "affinity") {
      g.affinity_group = attr(e, "group");
    } else if (tag == "anti-affinity") {
      g.anti_affinity_group = attr(e, "group");
    } else if (tag == "sharing") {
      g.sharing = true;
    } else if (tag == "cold-store") {
      g.cold_store = true;
    } else {
      return c.fail(e, "unknown numaheap hint <" + printable(tag) + ">");
    }
  }
  return {};
}

Result<GuestSpec, Error> domain_to_spec(const Ctx& c, const pugi::xml_node& dom) {
  GuestSpec g;
  g.name = trim(dom.child_value("name"));
  const std::string label = "domain '" + (g.name.empty() ? std::string("?") : printable(g.name.view())) + "'";
  std::map<std::string, int> ignored;  // element -> count, for one warning

  // vCPUs: <vcpu placement cpuset current>N</vcpu>; libvirt's default is 1.
  g.vcpus = 1;
  bool auto_placement = false;
  if (pugi::xml_node vcpu = dom.child("vcpu")) {
    std::uint64_t v = 0;
    if (!parse_u64(vcpu.child_value(), v) || v == 0 || v > kMaxGuestVcpus)
      return c.fail(vcpu, label + ": <vcpu> must hold a count 1..4096, not '" + printable(vcpu.child_value()) + "'");
    g.vcpus = static_cast<std::uint32_t>(v);
    auto_placement = attr(vcpu, "placement") == "auto";
    if (const std::string cpuset = attr(vcpu, "cpuset"); !cpuset.empty()) {
      std::vector<std::uint32_t> ids;
      if (!parse_id_list(cpuset, kCpuLimit, ids))
        return c.fail(vcpu, label + ": <vcpu> cpuset '" + printable(cpuset) + "' is not a CPU list");
      VcpuPin pin;
      if (!pin.cpus.assign(ids.data(), ids.size()) || !g.vcpu_pins.push_back(std::move(pin)))
        return out_of_memory(c.source);
    }
    if (!attr(vcpu, "current").empty())
      c.warn(vcpu, label + ": <vcpu current> is not used: numaheap places all " + std::to_string(g.vcpus) +
                       " vCPUs (the maximum)");
  }

  // vNUMA cells, then the guest's memory: libvirt makes it the cells' sum.
  pugi::xml_node cpu = dom.child("cpu");
  if (pugi::xml_node numa = cpu.child("numa")) {
    if (auto r = read_cells(c, numa, g); !r) return r.error();
  }
  pugi::xml_node mem = dom.child("memory");
  std::uint64_t mem_bytes = 0;
  if (mem) {
    auto b = sized(c, mem, label + ": <memory>", mem.child_value(), attr(mem, "unit"));
    if (!b) return b.error();
    mem_bytes = *b;
  }
  if (!g.vnodes.empty()) {
    for (const VNodeSpec& v : g.vnodes) {
      g.memory_bytes += v.memory_bytes;
      if (g.memory_bytes < v.memory_bytes || g.memory_bytes > kMaxBytes)
        return c.fail(cpu, label + ": the cells' sizes sum to more than 2^62 bytes");
    }
    if (mem && mem_bytes != g.memory_bytes)
      c.warn(mem, label + ": <memory> is " + std::to_string(mem_bytes >> 10) + " KiB but the cells sum to " +
                      std::to_string(g.memory_bytes >> 10) + " KiB; the cells' sum is used, as libvirt does");
  } else if (mem) {
    g.memory_bytes = mem_bytes;
  } else {
    return c.fail(dom, label + ": no <memory> and no <cpu><numa> cells to derive it from");
  }
  if (pugi::xml_node mm = dom.child("maxMemory"))
    c.warn(mm, label + ": <maxMemory> (memory hotplug) is not placed; numaheap places the boot memory");

  // <numatune>: the guest's mode and nodes, and per-cell <memnode>.
  if (pugi::xml_node tune = dom.child("numatune")) {
    if (pugi::xml_node m = tune.child("memory")) {
      auto mode = mode_of(c, m);
      if (!mode) return mode.error();
      g.memory_mode = *mode;
      const std::string placement = attr(m, "placement");
      const std::string ns = attr(m, "nodeset");
      if (!placement.empty() && placement != "static" && placement != "auto")
        return c.fail(m, label + ": placement '" + printable(placement) + "': expected static or auto");
      const bool is_auto = placement == "auto" || (placement.empty() && ns.empty() && auto_placement);
      if (is_auto) {
        if (!ns.empty()) c.warn(m, label + ": nodeset ignored: placement='auto' lets numaheap choose the nodes");
      } else if (!ns.empty()) {
        auto mask = nodeset(c, m, ns);
        if (!mask) return mask.error();
        g.allowed_nodes = *mask;
      }
    }
    for (pugi::xml_node mn = tune.child("memnode"); mn; mn = mn.next_sibling("memnode")) {
      std::uint64_t cell = 0;
      if (!parse_u64(attr(mn, "cellid"), cell) || cell >= g.vnodes.size())
        return c.fail(mn, label + ": <memnode> cellid '" + printable(attr(mn, "cellid")) + "' names no <cell>");
      auto mode = mode_of(c, mn);
      if (!mode) return mode.error();
      auto mask = nodeset(c, mn, attr(mn, "nodeset"));
      if (!mask) return mask.error();
      VNodeSpec& v = g.vnodes[cell];
      v.memory_mode = *mode;
      v.nodes = *mask;
      v.pnode = mask->count() == 1 ? mask->first() : kNoNode;
    }
    for (pugi::xml_node e = tune.first_child(); e; e = e.next_sibling())
      if (e.type() == pugi::node_element && std::strcmp(e.name(), "memory") && std::strcmp(e.name(), "memnode"))
        ++ignored["<numatune><" + std::string(e.name()) + ">"];
  }

  // <cputune>: vcpupin are kept as constraints; the rest is the scheduler's.
  if (pugi::xml_node tune = dom.child("cputune")) {
    for (pugi::xml_node e = tune.first_child(); e; e = e.next_sibling()) {
      if (e.type() != pugi::node_element) continue;
      if (std::strcmp(e.name(), "vcpupin") != 0) {
        ++ignored["<cputune><" + std::string(e.name()) + ">"];
        continue;
      }
      std::uint64_t v = 0;
      if (!parse_u64(attr(e, "vcpu"), v) || v >= g.vcpus)
        return c.fail(e, label + ": <vcpupin> vcpu '" + printable(attr(e, "vcpu")) + "': the guest has " +
                             std::to_string(g.vcpus) + " vCPUs");
      std::vector<std::uint32_t> ids;
      if (!parse_id_list(attr(e, "cpuset"), kCpuLimit, ids))
        return c.fail(e, label + ": <vcpupin> cpuset '" + printable(attr(e, "cpuset")) + "' is not a CPU list");
      VcpuPin pin;
      pin.vcpu = static_cast<std::uint32_t>(v);
      if (!pin.cpus.assign(ids.data(), ids.size()) || !g.vcpu_pins.push_back(std::move(pin)))
        return out_of_memory(c.source);
    }
  }

  // <devices>: PCI passthrough has a node; the rest is listed as ignored.
  for (pugi::xml_node d = dom.child("devices").first_child(); d; d = d.next_sibling()) {
    if (d.type() != pugi::node_element) continue;
    const std::string kind = d.name();
    const std::string type = attr(d, "type");
    if (kind == "hostdev" && type == "pci") {
      if (auto r = pci_device(c, d, g); !r) return r.error();
    } else if (kind == "hostdev") {
      c.warn(d, label + ": <hostdev type='" + printable(type) + "'> ignored: only PCI devices have a NUMA node");
    } else if (kind == "interface" && type == "hostdev") {
      if (auto r = pci_device(c, d, g); !r) return r.error();
    } else if (kind == "interface") {
      c.warn(d, label + ": <interface type='" + printable(type) +
                    "'> ignored: an emulated or virtio NIC has no host node of its own (only PCI passthrough does)");
    } else if (kind == "memory") {
      c.warn(d, label + ": <memory model='" + printable(attr(d, "model")) +
                    "'> device ignored: numaheap places the boot memory (<memory> / the cells)");
    } else {
      ++ignored["<devices><" + kind + ">"];
    }
  }

  if (auto r = read_hints(c, dom, g); !r) return r.error();

  for (pugi::xml_node e = cpu.first_child(); e; e = e.next_sibling())
    if (e.type() == pugi::node_element && std::strcmp(e.name(), "numa") != 0)
      ++ignored["<cpu><" + std::string(e.name()) + ">"];
  for (pugi::xml_node e = cpu.child("numa").first_child(); e; e = e.next_sibling()) {
    if (e.type() != pugi::node_element) continue;
    if (std::strcmp(e.name(), "cell") != 0) {
      ++ignored["<numa><" + std::string(e.name()) + ">"];  // e.g. HMAT <interconnects>
      continue;
    }
    for (pugi::xml_node k = e.first_child(); k; k = k.next_sibling())
      if (k.type() == pugi::node_element && std::strcmp(k.name(), "distances") != 0)
        ++ignored["<cell><" + std::string(k.name()) + ">"];  // e.g. HMAT <cache>
  }
  static const char* const used[] = {"name",     "uuid",    "title", "description", "memory",   "currentMemory",
                                     "maxMemory", "vcpu",   "cpu",   "numatune",    "cputune",  "devices",
                                     "metadata"};
  for (pugi::xml_node e = dom.first_child(); e; e = e.next_sibling()) {
    if (e.type() != pugi::node_element) continue;
    bool known = false;
    for (const char* u : used) known |= std::strcmp(e.name(), u) == 0;
    if (!known) ++ignored["<" + std::string(e.name()) + ">"];
  }
  if (!ignored.empty()) {
    std::string list;
    for (const auto& [name, count] : ignored)
      list += (list.empty() ? "" : ", ") + printable(name) + (count > 1 ? " x" + std::to_string(count) : "");
    c.warn(dom, label + ": ignored, no bearing on memory placement: " + list);
  }
  return g;
}

}  // namespace

Result<ParsedGuests, Error> parse_libvirt(std::string_view text, std::string_view source,
                                          const GuestParseOptions& options) {
  LineIndex lines(text);
  pugi::xml_document doc;
  pugi::xml_parse_result res = doc.load_buffer(text.data(), text.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!res) {
    const std::size_t at = res.offset < 0 ? 0 : static_cast<std::size_t>(res.offset);
    return fail(source, lines.line_of(at), lines.column_of(at), std::string("XML syntax error: ") + res.description());
  }
  ParsedGuests out;
  Ctx c{source, lines, options, out.warnings};
  auto add = [&](const pugi::xml_node& d) -> Result<void, Error> {
    auto g = domain_to_spec(c, d);
    if (!g) return g.error();
    if (auto ok = check_parsed_spec(*g, where(source, c.line(d))); !ok) return ok.error();
    out.guests.push_back(std::move(*g));
    out.lines.push_back(std::max<std::size_t>(c.line(d), 1));
    return {};
  };
  pugi::xml_node root = doc.document_element();
  if (std::strcmp(root.name(), "domain") == 0) {
    if (auto r = add(root); !r) return r.error();
  } else {
    for (pugi::xml_node d = root.child("domain"); d; d = d.next_sibling("domain"))
      if (auto r = add(d); !r) return r.error();
  }
  if (out.guests.empty())
    return fail(source, root ? c.line(root) : 1, 0,
                "no <domain> element (root is <" + printable(root ? root.name() : "") + ">)");
  for (std::size_t i = 0; i < out.guests.size(); ++i)
    if (out.guests[i].name.empty()) out.guests[i].name = "domain" + std::to_string(i);
  return out;
}

}  // namespace numaheap::spec_io
