// Guest specs from libvirt domain XML (see guest_spec_io.h for what is read).
#include <charconv>
#include <cstring>

#include <pugixml.hpp>

#include "guest_spec_io.h"

namespace numaheap::tools {

namespace {

Error xml_error(std::string_view source, const std::string& where, const std::string& what) {
  return Error{Errc::parse_error, std::string(source) + ": " + where + ": " + what};
}

bool parse_u64(std::string_view s, std::uint64_t& out) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t')) s.remove_suffix(1);
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out, 10);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

Result<std::uint64_t, Error> sized(std::string_view source, const std::string& where,
                                   std::string_view value, std::string_view unit) {
  std::uint64_t v = 0, bytes = 0;
  if (!parse_u64(value, v)) return xml_error(source, where, "expected a size, got '" + std::string(value) + "'");
  if (!scale_libvirt_size(v, unit.empty() ? "KiB" : unit, bytes))
    return xml_error(source, where, "unknown unit '" + std::string(unit) + "' or size too large");
  return bytes;
}

Result<GuestSpec, Error> domain_to_spec(std::string_view source, const pugi::xml_node& dom) {
  GuestSpec g;
  g.name = dom.child_value("name");
  std::string where = "domain '" + (g.name.empty() ? std::string("?") : g.name.str()) + "'";
  pugi::xml_node mem = dom.child("memory");
  if (!mem) return xml_error(source, where, "no <memory>");
  auto bytes = sized(source, where + " <memory>", mem.child_value(), mem.attribute("unit").value());
  if (!bytes) return bytes.error();
  g.memory_bytes = *bytes;
  std::uint64_t v = 0;
  pugi::xml_node vcpu = dom.child("vcpu");
  if (!vcpu || !parse_u64(vcpu.child_value(), v) || v == 0 || v > kMaxGuestVcpus)
    return xml_error(source, where, "<vcpu> must hold a count 1..4096");
  g.vcpus = static_cast<std::uint32_t>(v);

  pugi::xml_node tune = dom.child("numatune");
  if (pugi::xml_node m = tune.child("memory")) {
    if (const char* ns = m.attribute("nodeset").value(); *ns) {
      auto mask = NodeMask::parse(ns);
      if (!mask) return xml_error(source, where + " <numatune><memory>", mask.error().message);
      g.allowed_nodes = *mask;
    }
  }
  // vNUMA cells, in id order as libvirt requires (ids 0..n-1).
  pugi::xml_node numa = dom.child("cpu").child("numa");
  std::size_t index = 0;
  for (pugi::xml_node cell = numa.child("cell"); cell; cell = cell.next_sibling("cell"), ++index) {
    std::string cw = where + " <cell> #" + std::to_string(index);
    if (!parse_u64(cell.attribute("id").value(), v) || v != index)
      return xml_error(source, cw, "cell ids must be 0, 1, 2... in order");
    VNodeSpec vn;
    auto cb = sized(source, cw, cell.attribute("memory").value(), cell.attribute("unit").value());
    if (!cb) return cb.error();
    vn.memory_bytes = *cb;
    if (const char* cpus = cell.attribute("cpus").value(); *cpus &&
        !parse_id_list(cpus, kMaxGuestVcpus, vn.vcpus))
      return xml_error(source, cw, "bad cpus list '" + std::string(cpus) + "'");
    if (pugi::xml_node dist = cell.child("distances")) {
      std::vector<std::pair<std::uint64_t, std::uint64_t>> sib;
      for (pugi::xml_node s = dist.child("sibling"); s; s = s.next_sibling("sibling")) {
        std::uint64_t id = 0, val = 0;
        if (!parse_u64(s.attribute("id").value(), id) || !parse_u64(s.attribute("value").value(), val) ||
            val == 0 || val > kMaxDistance || id >= 4096)
          return xml_error(source, cw, "<sibling> needs id and a value 1..255");
        sib.emplace_back(id, val);
      }
      for (const auto& [id, val] : sib) {
        if (vn.distances.size() <= id) vn.distances.resize(id + 1, 0);
        vn.distances[id] = static_cast<std::uint32_t>(val);
      }
    }
    g.vnodes.push_back(std::move(vn));
  }
  // Missing siblings: libvirt fills 10 local / 20 remote.
  for (std::size_t i = 0; i < g.vnodes.size(); ++i) {
    auto& d = g.vnodes[i].distances;
    if (d.empty()) continue;
    if (d.size() > g.vnodes.size())
      return xml_error(source, where, "a <sibling> names a cell that does not exist");
    d.resize(g.vnodes.size(), 0);
    for (std::size_t k = 0; k < d.size(); ++k)
      if (d[k] == 0) d[k] = i == k ? kLocalDistance : kRemoteDistance;
  }
  for (pugi::xml_node mn = tune.child("memnode"); mn; mn = mn.next_sibling("memnode")) {
    std::uint64_t cell = 0;
    if (!parse_u64(mn.attribute("cellid").value(), cell) || cell >= g.vnodes.size())
      return xml_error(source, where + " <memnode>", "cellid names no <cell>");
    auto mask = NodeMask::parse(mn.attribute("nodeset").value());
    if (!mask || mask->count() != 1)
      return xml_error(source, where + " <memnode>", "nodeset must name exactly one host node");
    g.vnodes[cell].pnode = mask->first();
  }
  // numaheap's hints: the metadata child that declares our namespace.
  if (pugi::xml_node nh = dom.child("metadata").find_child([](const pugi::xml_node& n) {
        for (pugi::xml_attribute a = n.first_attribute(); a; a = a.next_attribute())
          if (std::string_view(a.name()).starts_with("xmlns") &&
              std::strcmp(a.value(), "urn:numaheap:1") == 0)
            return true;
        return false;
      })) {
    for (pugi::xml_node c = nh.first_child(); c; c = c.next_sibling()) {
      std::string_view tag = c.name();
      if (auto colon = tag.find(':'); colon != std::string_view::npos) tag = tag.substr(colon + 1);
      if (tag == "device") {
        DeviceSpec d;
        d.name = c.attribute("name").value();
        std::uint64_t node = 0;
        if (!parse_u64(c.attribute("node").value(), node) || node >= kMaxNodes)
          return xml_error(source, where + " <numaheap:device>", "needs node=\"<host node id>\"");
        d.host_node = static_cast<NodeId>(node);
        g.devices.push_back(std::move(d));
      } else if (tag == "affinity") {
        g.affinity_group = c.attribute("group").value();
      } else if (tag == "anti-affinity") {
        g.anti_affinity_group = c.attribute("group").value();
      } else if (tag == "sharing") {
        g.sharing = true;
      } else if (tag == "cold-store") {
        g.cold_store = true;
      } else {
        return xml_error(source, where + " <numaheap>", "unknown element <" + std::string(tag) + ">");
      }
    }
  }
  return g;
}

}  // namespace

bool scale_libvirt_size(std::uint64_t value, std::string_view unit, std::uint64_t& bytes) {
  struct U {
    const char* name;
    std::uint64_t scale;
  };
  static const U units[] = {{"b", 1},           {"bytes", 1},         {"KB", 1000},
                            {"k", 1024},        {"KiB", 1024},        {"MB", 1000000},
                            {"M", 1ull << 20},  {"MiB", 1ull << 20},  {"GB", 1000000000},
                            {"G", 1ull << 30},  {"GiB", 1ull << 30},  {"TB", 1000000000000ull},
                            {"T", 1ull << 40},  {"TiB", 1ull << 40}};
  for (const auto& u : units)
    if (unit == u.name) {
      if (value > (1ull << 52) / u.scale) return false;
      bytes = value * u.scale;
      return true;
    }
  return false;
}

bool parse_id_list(std::string_view s, std::uint64_t limit, std::vector<std::uint32_t>& out) {
  out.clear();
  std::size_t i = 0;
  auto num = [&](std::uint64_t& x) {
    std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > start && parse_u64(s.substr(start, i - start), x) && x < limit;
  };
  if (s.empty()) return false;
  while (true) {
    std::uint64_t lo, hi;
    if (!num(lo)) return false;
    hi = lo;
    if (i < s.size() && s[i] == '-') {
      ++i;
      if (!num(hi) || hi < lo) return false;
    }
    for (std::uint64_t c = lo; c <= hi; ++c) out.push_back(static_cast<std::uint32_t>(c));
    if (i == s.size()) return true;
    if (s[i++] != ',') return false;
  }
}

bool parse_id_list(std::string_view s, std::uint64_t limit, Vector<std::uint32_t>& out) {
  std::vector<std::uint32_t> ids;
  out.clear();
  return parse_id_list(s, limit, ids) && out.assign(ids.data(), ids.size());
}

Result<std::vector<GuestSpec>, Error> parse_libvirt_xml(std::string_view text, std::string_view source) {
  pugi::xml_document doc;
  pugi::xml_parse_result res = doc.load_buffer(text.data(), text.size());
  if (!res) {
    // Report a line number rather than a byte offset.
    std::size_t line = 1;
    for (std::size_t i = 0; i < static_cast<std::size_t>(res.offset) && i < text.size(); ++i)
      line += text[i] == '\n';
    return Error{Errc::parse_error, std::string(source) + ":" + std::to_string(line) +
                                        ": XML error: " + res.description()};
  }
  std::vector<GuestSpec> out;
  auto add = [&](const pugi::xml_node& d) -> Result<void, Error> {
    auto g = domain_to_spec(source, d);
    if (!g) return g.error();
    if (auto ok = check_parsed_spec(*g, source); !ok) return ok.error();
    out.push_back(std::move(*g));
    return {};
  };
  pugi::xml_node root = doc.document_element();
  if (std::string_view(root.name()) == "domain") {
    if (auto r = add(root); !r) return r.error();
  } else {
    for (pugi::xml_node d = root.child("domain"); d; d = d.next_sibling("domain"))
      if (auto r = add(d); !r) return r.error();
  }
  if (out.empty()) return Error{Errc::parse_error, std::string(source) + ": no <domain> element"};
  for (std::size_t i = 0; i < out.size(); ++i)
    if (out[i].name.empty()) out[i].name = "domain" + std::to_string(i);
  return out;
}

}  // namespace numaheap::tools
