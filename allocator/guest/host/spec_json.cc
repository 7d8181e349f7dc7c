// Guest specs in JSON (format in numaheap/guest_spec_io.h and
// docs/guests.md). nlohmann_json parses; its SAX interface gives the byte
// offset of a syntax error. A semantic error names the value by its JSON
// path and by line:column, found by walking the (valid) text to that path.
#include <cctype>

#include <nlohmann/json.hpp>

#include "allocator/guest/host/spec_io_internal.h"

namespace numaheap::spec_io {

namespace {

using nlohmann::json;

// nlohmann's DOM builder that keeps the position of a syntax error instead
// of throwing (the host library is built without exceptions).
struct DomWithPosition : nlohmann::detail::json_sax_dom_parser<json> {
  explicit DomWithPosition(json& j) : nlohmann::detail::json_sax_dom_parser<json>(j, false) {}
  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) {
    error_at = position;
    message = ex.what();
    return false;
  }
  std::size_t error_at = std::string::npos;
  std::string message;
};

// The byte offset of the value at `want` ("$.guests[2].vcpus") in valid
// JSON, or npos. Iterative: nesting depth costs heap, not stack.
std::size_t offset_of_path(std::string_view t, const std::string& want) {
  struct Frame {
    bool array;
    std::size_t index;
    std::string path;
  };
  std::vector<Frame> stack;
  std::string cur = "$";
  std::size_t i = 0;
  const std::size_t n = t.size();
  auto ws = [&] {
    while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
  };
  auto string_at = [&]() -> std::string {  // at '"': the raw text inside
    std::string s;
    ++i;
    while (i < n && t[i] != '"') {
      if (t[i] == '\\' && i + 1 < n) s += t[i++];
      s += t[i++];
    }
    ++i;
    return s;
  };
  auto key = [&](const Frame& f) {  // at a key: sets cur to its value's path
    ws();
    std::string k = i < n && t[i] == '"' ? string_at() : std::string();
    ws();
    if (i < n && t[i] == ':') ++i;
    cur = f.path + "." + k;
  };
  while (true) {
    ws();
    if (i >= n) return std::string::npos;
    if (cur == want) return i;
    const char c = t[i];
    bool closed_value = false;
    if (c == '{' || c == '[') {
      ++i;
      stack.push_back(Frame{c == '[', 0, cur});
      ws();
      if (i < n && (t[i] == '}' || t[i] == ']')) {
        ++i;
        stack.pop_back();
        closed_value = true;
      } else if (c == '[') {
        cur = stack.back().path + "[0]";
      } else {
        key(stack.back());
      }
    } else if (c == '"') {
      string_at();
      closed_value = true;
    } else {
      while (i < n && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' && t[i] != '\n' && t[i] != '\t' &&
             t[i] != '\r')
        ++i;
      closed_value = true;
    }
    while (closed_value) {
      ws();
      if (stack.empty() || i >= n) return std::string::npos;
      Frame& f = stack.back();
      if (t[i] == ',') {
        ++i;
        if (f.array) cur = f.path + "[" + std::to_string(++f.index) + "]";
        else key(f);
        closed_value = false;
      } else if (t[i] == ']' || t[i] == '}') {
        ++i;
        stack.pop_back();
      } else {
        return std::string::npos;
      }
    }
  }
}

struct Reader {
  std::string_view text;
  std::string_view source;
  LineIndex lines;

  // An error at `path`: line:column of the value there, or of the nearest
  // enclosing value that exists (a missing key is reported at its object).
  Error fail(std::string path, const std::string& what) const {
    const std::string shown = printable(path, 300);  // keys may hold any byte
    while (true) {
      const std::size_t at = offset_of_path(text, path);
      if (at != std::string::npos)
        return spec_io::fail(source, lines.line_of(at), lines.column_of(at), shown + ": " + what);
      const std::size_t cut = path.find_last_of(".[");
      if (cut == std::string::npos || cut == 0) break;
      path.resize(cut);
    }
    return spec_io::fail(source, 1, 0, shown + ": " + what);
  }
};

bool as_uint(const json& v, std::uint64_t max, std::uint64_t& out) {
  if (v.is_number_unsigned()) out = v.get<std::uint64_t>();
  else if (v.is_number_integer() && v.get<std::int64_t>() >= 0) out = static_cast<std::uint64_t>(v.get<std::int64_t>());
  else return false;
  return out <= max;
}

// An id list: [0,1,2] or "0-2,5,^1".
bool as_id_list(const json& v, std::uint64_t limit, Vector<std::uint32_t>& out) {
  out.clear();
  std::vector<std::uint32_t> ids;
  if (v.is_string()) {
    if (!parse_id_list(v.get<std::string>(), limit, ids)) return false;
  } else if (v.is_array()) {
    for (const auto& e : v) {
      std::uint64_t c = 0;
      if (!as_uint(e, limit - 1, c)) return false;
      ids.push_back(static_cast<std::uint32_t>(c));
    }
  } else {
    return false;
  }
  // Out of memory leaves `out` !ok(): the finished spec reports it.
  (void)out.assign(ids.data(), ids.size());
  return true;
}

bool as_node_mask(const json& v, NodeMask& out) {
  std::vector<std::uint32_t> ids;
  if (!v.is_string() || !parse_id_list(v.get<std::string>(), kMaxNodes, ids)) return false;
  out = NodeMask();
  for (std::uint32_t id : ids) out.set(id);
  return true;
}

bool as_mode(const json& v, MemoryPolicy& out) {
  if (!v.is_string()) return false;
  const std::string s = v.get<std::string>();
  if (s == "bind") out = MemoryPolicy::bind;
  else if (s == "prefer") out = MemoryPolicy::prefer;
  else if (s == "interleave") out = MemoryPolicy::interleave;
  else return false;
  return true;
}

Result<void, Error> only_keys(const Reader& r, const json& j, const std::string& path,
                              std::initializer_list<const char*> known) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok |= it.key() == k;
    if (!ok) return r.fail(path + "." + it.key(), "unknown key \"" + printable(it.key()) + "\"");
  }
  return {};
}

constexpr std::uint64_t kMaxMb = 1ull << 40;
constexpr std::uint64_t kCpuLimit = 1u << 16;
constexpr const char* kModes = "expected \"bind\", \"prefer\" or \"interleave\"";

Result<VNodeSpec, Error> vnode_from_json(const Reader& r, const json& vn, const std::string& p) {
  if (!vn.is_object()) return r.fail(p, "expected an object");
  if (auto k = only_keys(r, vn, p, {"memory_mb", "vcpus", "pnode", "nodes", "memory_mode", "distances"}); !k)
    return k.error();
  VNodeSpec s;
  std::uint64_t v = 0;
  auto m = vn.find("memory_mb");
  if (m == vn.end() || !as_uint(*m, kMaxMb, v)) return r.fail(p + ".memory_mb", "expected a size in MB");
  s.memory_bytes = v << 20;
  if (auto c = vn.find("vcpus"); c != vn.end() && !as_id_list(*c, kMaxGuestVcpus, s.vcpus))
    return r.fail(p + ".vcpus", "expected a vCPU list such as [0,1] or \"0-1\"");
  if (auto pn = vn.find("pnode"); pn != vn.end()) {
    if (pn->is_string() && pn->get<std::string>() == "auto") s.pnode = kNoNode;
    else if (as_uint(*pn, kMaxNodes - 1, v)) s.pnode = static_cast<NodeId>(v);
    else return r.fail(p + ".pnode", "expected a node id or \"auto\"");
  }
  if (auto ns = vn.find("nodes"); ns != vn.end() && !as_node_mask(*ns, s.nodes))
    return r.fail(p + ".nodes", "expected a node list such as \"0-1\"");
  if (auto md = vn.find("memory_mode"); md != vn.end() && !as_mode(*md, s.memory_mode))
    return r.fail(p + ".memory_mode", kModes);
  if (auto d = vn.find("distances"); d != vn.end()) {
    if (!d->is_array()) return r.fail(p + ".distances", "expected an array");
    for (const auto& e : *d) {
      if (!as_uint(e, kMaxDistance, v) || v == 0) return r.fail(p + ".distances", "expected distances 1..255");
      s.distances.push_back(static_cast<std::uint32_t>(v));
    }
  }
  return s;
}

Result<GuestSpec, Error> guest_from_json(const Reader& r, const json& j, const std::string& path) {
  if (!j.is_object()) return r.fail(path, "expected an object");
  if (auto k = only_keys(r, j, path,
                         {"name", "memory_mb", "vcpus", "nodes", "memory_mode", "vnodes", "devices", "vcpu_pins",
                          "sharing", "cold_store", "affinity", "anti_affinity"});
      !k)
    return k.error();
  GuestSpec g;
  if (auto it = j.find("name"); it != j.end()) {
    if (!it->is_string()) return r.fail(path + ".name", "expected a string");
    g.name = it->get<std::string>();
  }
  std::uint64_t v = 0;
  auto mem = j.find("memory_mb");
  if (mem == j.end() || !as_uint(*mem, kMaxMb, v)) return r.fail(path + ".memory_mb", "expected a size in MB");
  g.memory_bytes = v << 20;
  auto vc = j.find("vcpus");
  if (vc == j.end() || !as_uint(*vc, kMaxGuestVcpus, v) || v == 0)
    return r.fail(path + ".vcpus", "expected a vCPU count 1..4096");
  g.vcpus = static_cast<std::uint32_t>(v);
  if (auto it = j.find("nodes"); it != j.end() && !as_node_mask(*it, g.allowed_nodes))
    return r.fail(path + ".nodes", "expected a node list such as \"0-1\"");
  if (auto md = j.find("memory_mode"); md != j.end() && !as_mode(*md, g.memory_mode))
    return r.fail(path + ".memory_mode", kModes);
  for (const char* flag : {"sharing", "cold_store"}) {
    auto it = j.find(flag);
    if (it == j.end()) continue;
    if (!it->is_boolean()) return r.fail(path + "." + flag, "expected true or false");
    (std::string_view(flag) == "sharing" ? g.sharing : g.cold_store) = it->get<bool>();
  }
  for (const char* group : {"affinity", "anti_affinity"}) {
    auto it = j.find(group);
    if (it == j.end()) continue;
    if (!it->is_string()) return r.fail(path + "." + group, "expected a group name");
    (std::string_view(group) == "affinity" ? g.affinity_group : g.anti_affinity_group) = it->get<std::string>();
  }
  if (auto it = j.find("devices"); it != j.end()) {
    if (!it->is_array()) return r.fail(path + ".devices", "expected an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& d = (*it)[i];
      const std::string p = path + ".devices[" + std::to_string(i) + "]";
      if (!d.is_object()) return r.fail(p, "expected an object");
      if (auto k = only_keys(r, d, p, {"name", "node"}); !k) return k.error();
      DeviceSpec dev;
      if (auto n = d.find("name"); n != d.end()) {
        if (!n->is_string()) return r.fail(p + ".name", "expected a string");
        dev.name = n->get<std::string>();
      }
      auto node = d.find("node");
      if (node == d.end() || !as_uint(*node, kMaxNodes - 1, v)) return r.fail(p + ".node", "expected a node id");
      dev.host_node = static_cast<NodeId>(v);
      g.devices.push_back(std::move(dev));
    }
  }
  if (auto it = j.find("vcpu_pins"); it != j.end()) {
    if (!it->is_array()) return r.fail(path + ".vcpu_pins", "expected an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& e = (*it)[i];
      const std::string p = path + ".vcpu_pins[" + std::to_string(i) + "]";
      if (!e.is_object()) return r.fail(p, "expected an object");
      if (auto k = only_keys(r, e, p, {"vcpu", "cpus", "nodes", "soft"}); !k) return k.error();
      VcpuPin pin;
      if (auto x = e.find("vcpu"); x != e.end()) {
        if (!as_uint(*x, kMaxGuestVcpus - 1, v)) return r.fail(p + ".vcpu", "expected a vCPU index");
        pin.vcpu = static_cast<std::uint32_t>(v);
      }
      if (auto x = e.find("cpus"); x != e.end() && !as_id_list(*x, kCpuLimit, pin.cpus))
        return r.fail(p + ".cpus", "expected a CPU list such as \"0-3\"");
      if (auto x = e.find("nodes"); x != e.end() && !as_node_mask(*x, pin.nodes))
        return r.fail(p + ".nodes", "expected a node list such as \"0-1\"");
      if (pin.cpus.ok() && pin.cpus.empty() && pin.nodes.empty()) return r.fail(p, "needs \"cpus\" or \"nodes\"");
      if (auto x = e.find("soft"); x != e.end()) {
        if (!x->is_boolean()) return r.fail(p + ".soft", "expected true or false");
        pin.soft = x->get<bool>();
      }
      g.vcpu_pins.push_back(std::move(pin));
    }
  }
  if (auto it = j.find("vnodes"); it != j.end()) {
    if (!it->is_array()) return r.fail(path + ".vnodes", "expected an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      auto s = vnode_from_json(r, (*it)[i], path + ".vnodes[" + std::to_string(i) + "]");
      if (!s) return s.error();
      g.vnodes.push_back(std::move(*s));
    }
  }
  return g;
}

}  // namespace

Result<ParsedGuests, Error> parse_json(std::string_view text, std::string_view source) {
  Reader r{text, source, LineIndex(text)};
  json doc;
  DomWithPosition sax(doc);
  const bool parsed = json::sax_parse(text.begin(), text.end(), &sax, nlohmann::detail::input_format_t::json,
                                      /*strict=*/true);
  if (!parsed || sax.error_at != std::string::npos) {
    const std::size_t at = sax.error_at == std::string::npos || sax.error_at == 0 ? 0 : sax.error_at - 1;
    // nlohmann's text: "[json.exception.parse_error.101] parse error at
    // line L, column C: <what>"; keep <what>.
    std::string what = sax.message;
    if (auto c = what.find("column "); c != std::string::npos)
      if (auto colon = what.find(": ", c); colon != std::string::npos) what = what.substr(colon + 2);
    return spec_io::fail(source, r.lines.line_of(at), r.lines.column_of(at),
                         "JSON syntax error: " + printable(what, 200));
  }
  const json* list = nullptr;
  std::string base;
  if (doc.is_array()) {
    list = &doc;
    base = "$";
  } else if (doc.is_object()) {
    if (auto k = only_keys(r, doc, "$", {"guests"}); !k) return k.error();
    auto it = doc.find("guests");
    if (it == doc.end() || !it->is_array()) return r.fail("$.guests", "expected a list of guests");
    list = &*it;
    base = "$.guests";
  } else {
    return r.fail("$", "expected a list of guests or {\"guests\": [...]}");
  }
  ParsedGuests out;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string path = base + "[" + std::to_string(i) + "]";
    auto g = guest_from_json(r, (*list)[i], path);
    if (!g) return g.error();
    if (g->name.empty()) g->name = "guest" + std::to_string(i);
    const std::size_t at = offset_of_path(text, path);
    const std::string here =
        at == std::string::npos ? std::string(source) : where(source, r.lines.line_of(at), r.lines.column_of(at));
    if (auto ok = check_parsed_spec(*g, here); !ok) return ok.error();
    out.guests.push_back(std::move(*g));
    out.lines.push_back(at == std::string::npos ? 1 : r.lines.line_of(at));
  }
  return out;
}

}  // namespace numaheap::spec_io
