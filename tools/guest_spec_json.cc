// Guest specs in JSON (format in guest_spec_io.h), and the file loader.
#include <cctype>

#include <nlohmann/json.hpp>

#include "guest_spec_io.h"
#include "numaheap/topology_io.h"

namespace numaheap::tools {

namespace {

using nlohmann::json;

struct JsonReader {
  std::string source;
  Error fail(const std::string& path, const std::string& what) const {
    return Error{Errc::parse_error, source + ": " + path + ": " + what};
  }
};

bool as_uint(const json& v, std::uint64_t max, std::uint64_t& out) {
  if (v.is_number_unsigned()) out = v.get<std::uint64_t>();
  else if (v.is_number_integer() && v.get<std::int64_t>() >= 0) out = static_cast<std::uint64_t>(v.get<std::int64_t>());
  else return false;
  return out <= max;
}

// A vCPU list: [0,1,2] or "0-2,5".
bool as_vcpu_list(const json& v, Vector<std::uint32_t>& out) {
  out.clear();
  if (v.is_string()) {
    const std::string text = v.get<std::string>();
    return text.empty() || parse_id_list(text, kMaxGuestVcpus, out);
  }
  if (!v.is_array()) return false;
  for (const auto& e : v) {
    std::uint64_t c = 0;
    if (!as_uint(e, kMaxGuestVcpus - 1, c)) return false;
    out.push_back(static_cast<std::uint32_t>(c));
  }
  return true;
}

Result<GuestSpec, Error> guest_from_json(const JsonReader& r, const json& j, const std::string& path) {
  if (!j.is_object()) return r.fail(path, "expected an object");
  GuestSpec g;
  static const char* known[] = {"name", "memory_mb", "vcpus", "nodes", "vnodes", "devices",
                                "sharing", "cold_store", "affinity", "anti_affinity"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok |= it.key() == k;
    if (!ok) return r.fail(path, "unknown key \"" + it.key() + "\"");
  }
  if (auto it = j.find("name"); it != j.end()) {
    if (!it->is_string()) return r.fail(path + ".name", "expected a string");
    g.name = it->get<std::string>();
  }
  std::uint64_t v = 0;
  auto mem = j.find("memory_mb");
  if (mem == j.end() || !as_uint(*mem, 1ull << 40, v))
    return r.fail(path + ".memory_mb", "expected a size in MB");
  g.memory_bytes = v << 20;
  auto vc = j.find("vcpus");
  if (vc == j.end() || !as_uint(*vc, kMaxGuestVcpus, v))
    return r.fail(path + ".vcpus", "expected a vCPU count 1..4096");
  g.vcpus = static_cast<std::uint32_t>(v);
  if (auto it = j.find("nodes"); it != j.end()) {
    if (!it->is_string()) return r.fail(path + ".nodes", "expected a node list such as \"0-1\"");
    auto m = NodeMask::parse(it->get<std::string>());
    if (!m) return r.fail(path + ".nodes", m.error().message);
    g.allowed_nodes = *m;
  }
  for (const char* flag : {"sharing", "cold_store"}) {
    auto it = j.find(flag);
    if (it == j.end()) continue;
    if (!it->is_boolean()) return r.fail(path + "." + flag, "expected true or false");
    (std::string(flag) == "sharing" ? g.sharing : g.cold_store) = it->get<bool>();
  }
  for (const char* group : {"affinity", "anti_affinity"}) {
    auto it = j.find(group);
    if (it == j.end()) continue;
    if (!it->is_string()) return r.fail(path + "." + group, "expected a group name");
    (std::string(group) == "affinity" ? g.affinity_group : g.anti_affinity_group) = it->get<std::string>();
  }
  if (auto it = j.find("devices"); it != j.end()) {
    if (!it->is_array()) return r.fail(path + ".devices", "expected an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& d = (*it)[i];
      std::string p = path + ".devices[" + std::to_string(i) + "]";
      if (!d.is_object()) return r.fail(p, "expected an object");
      DeviceSpec dev;
      if (auto n = d.find("name"); n != d.end() && n->is_string()) dev.name = n->get<std::string>();
      auto node = d.find("node");
      if (node == d.end() || !as_uint(*node, kMaxNodes - 1, v)) return r.fail(p + ".node", "expected a node id");
      dev.host_node = static_cast<NodeId>(v);
      g.devices.push_back(std::move(dev));
    }
  }
  if (auto it = j.find("vnodes"); it != j.end()) {
    if (!it->is_array()) return r.fail(path + ".vnodes", "expected an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& vn = (*it)[i];
      std::string p = path + ".vnodes[" + std::to_string(i) + "]";
      if (!vn.is_object()) return r.fail(p, "expected an object");
      VNodeSpec s;
      auto m = vn.find("memory_mb");
      if (m == vn.end() || !as_uint(*m, 1ull << 40, v)) return r.fail(p + ".memory_mb", "expected a size in MB");
      s.memory_bytes = v << 20;
      if (auto c = vn.find("vcpus"); c != vn.end() && !as_vcpu_list(*c, s.vcpus))
        return r.fail(p + ".vcpus", "expected a vCPU list such as [0,1] or \"0-1\"");
      if (auto pn = vn.find("pnode"); pn != vn.end()) {
        if (pn->is_string() && pn->get<std::string>() == "auto") s.pnode = kNoNode;
        else if (as_uint(*pn, kMaxNodes - 1, v)) s.pnode = static_cast<NodeId>(v);
        else return r.fail(p + ".pnode", "expected a node id or \"auto\"");
      }
      if (auto d = vn.find("distances"); d != vn.end()) {
        if (!d->is_array()) return r.fail(p + ".distances", "expected an array");
        for (const auto& e : *d) {
          if (!as_uint(e, kMaxDistance, v)) return r.fail(p + ".distances", "expected distances 1..255");
          s.distances.push_back(static_cast<std::uint32_t>(v));
        }
      }
      g.vnodes.push_back(std::move(s));
    }
  }
  return g;
}

}  // namespace

Result<std::vector<GuestSpec>, Error> parse_guests_json(std::string_view text, std::string_view source) {
  JsonReader r{std::string(source)};
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return r.fail("$", "not valid JSON");
  const json* list = nullptr;
  if (doc.is_object() && doc.contains("guests")) list = &doc["guests"];
  else if (doc.is_array()) list = &doc;
  if (!list || !list->is_array()) return r.fail("$", "expected {\"guests\": [ ... ]}");
  std::vector<GuestSpec> out;
  for (std::size_t i = 0; i < list->size(); ++i) {
    auto g = guest_from_json(r, (*list)[i], "$.guests[" + std::to_string(i) + "]");
    if (!g) return g.error();
    if (g->name.empty()) g->name = "guest" + std::to_string(i);
    if (auto ok = check_parsed_spec(*g, source); !ok) return ok.error();
    out.push_back(std::move(*g));
  }
  return out;
}

Result<std::vector<GuestSpec>, Error> load_guests_file(std::string_view path) {
  auto text = read_text_file(path);
  if (!text) return text.error();
  std::size_t i = 0;
  while (i < text->size() && std::isspace(static_cast<unsigned char>((*text)[i]))) ++i;
  if (i < text->size() && (*text)[i] == '{') return parse_guests_json(*text, path);
  if (i < text->size() && (*text)[i] == '<') return parse_libvirt_xml(*text, path);
  auto g = parse_xl_cfg(*text, path);
  if (!g) return g.error();
  return std::vector<GuestSpec>{std::move(*g)};
}

}  // namespace numaheap::tools
