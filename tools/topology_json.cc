#include "topology_json.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "numaheap/topology_io.h"

namespace numaheap::tools {

namespace {

namespace fs = std::filesystem;

// The directory holding node<id>/ under a sysfs root (see load_topology_sysfs).
fs::path node_dir(std::string_view root) {
  fs::path r{std::string(root)};
  std::error_code ec;
  fs::path full = r / "sys/devices/system/node";
  if (fs::is_directory(full, ec)) return full;
  return r;
}

bool read_counter(const fs::path& file, std::uint64_t& out) {
  std::ifstream f(file);
  std::uint64_t v = 0;
  if (!(f >> v)) return false;
  out = v;
  return true;
}

nlohmann::json mb_or_null(std::uint64_t bytes) {
  if (bytes == kUnknownBytes) return nullptr;
  return bytes >> 20;
}

Error json_error(std::string_view source, const std::string& path, const std::string& what) {
  return Error{Errc::parse_error, std::string(source) + ": " + path + ": " + what};
}

// Reads an unsigned integer member, or null (-> kUnknownBytes) when allowed.
bool read_uint(const nlohmann::json& v, std::uint64_t max, std::uint64_t& out) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
    return false;
  out = v.get<std::uint64_t>();
  return out <= max;
}

}  // namespace

HugePageMap read_hugepages_sysfs(const Topology& topo, std::string_view root) {
  HugePageMap out;
  const fs::path base = node_dir(root);
  for (const auto& n : topo.nodes()) {
    std::vector<HugePagePool> pools;
    std::error_code ec;
    fs::path dir = base / ("node" + std::to_string(n.id)) / "hugepages";
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();  // hugepages-2048kB
      constexpr std::string_view kPrefix = "hugepages-";
      if (name.size() <= kPrefix.size() + 2 || name.compare(0, kPrefix.size(), kPrefix) != 0 ||
          name.compare(name.size() - 2, 2, "kB") != 0)
        continue;
      const std::string digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - 2);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      HugePagePool p;
      p.size_kb = std::stoull(digits);
      if (!read_counter(it->path() / "nr_hugepages", p.total)) continue;
      if (!read_counter(it->path() / "free_hugepages", p.free)) continue;
      pools.push_back(p);
    }
    std::sort(pools.begin(), pools.end(),
              [](const HugePagePool& a, const HugePagePool& b) { return a.size_kb < b.size_kb; });
    out[n.id] = std::move(pools);
  }
  return out;
}

nlohmann::ordered_json topology_to_json(const Topology& topo, const HugePageMap* hugepages) {
  nlohmann::ordered_json nodes = nlohmann::ordered_json::array();
  for (const auto& n : topo.nodes()) {
    nlohmann::ordered_json node;
    node["id"] = n.id;
    node["cpus"] = n.cpu_vector();
    node["memory_mb"] = mb_or_null(n.memory_bytes);
    node["free_mb"] = mb_or_null(n.free_bytes);
    auto hp = hugepages ? hugepages->find(n.id) : HugePageMap::const_iterator{};
    if (!hugepages || hp == hugepages->end()) {
      node["hugepages"] = nullptr;
    } else {
      nlohmann::ordered_json pools = nlohmann::ordered_json::array();
      for (const auto& p : hp->second)
        pools.push_back({{"size_kb", p.size_kb}, {"total", p.total}, {"free", p.free}});
      node["hugepages"] = std::move(pools);
    }
    nodes.push_back(std::move(node));
  }
  nlohmann::ordered_json out;
  out["nodes"] = std::move(nodes);  // sorted by id: Topology keeps nodes in id order
  if (!topo.distances_given()) {
    out["distances"] = nullptr;
  } else {
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const auto& a : topo.nodes()) {
      nlohmann::ordered_json row = nlohmann::ordered_json::array();
      for (const auto& b : topo.nodes()) row.push_back(topo.raw_distance(a.id, b.id));
      rows.push_back(std::move(row));
    }
    out["distances"] = std::move(rows);
  }
  return out;
}

std::string render_topology_json(const Topology& topo, int indent, const HugePageMap* hugepages) {
  return topology_to_json(topo, hugepages).dump(indent);
}

Result<Topology, Error> parse_topology_json(std::string_view text, std::string_view source,
                                            HugePageMap* hugepages) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return json_error(source, "$", "not valid JSON");
  if (!doc.is_object()) return json_error(source, "$", "expected an object");
  auto nodes_it = doc.find("nodes");
  if (nodes_it == doc.end() || !nodes_it->is_array())
    return json_error(source, "$.nodes", "expected an array of nodes");
  TopologyBuilder b{"json:" + std::string(source)};
  std::vector<NodeId> ids;
  std::size_t i = 0;
  for (const auto& node : *nodes_it) {
    std::string path = "$.nodes[" + std::to_string(i++) + "]";
    if (!node.is_object()) return json_error(source, path, "expected an object");
    std::uint64_t id = 0;
    auto id_it = node.find("id");
    if (id_it == node.end() || !read_uint(*id_it, kMaxNodes - 1, id))
      return json_error(source, path + ".id", "expected a node id 0..1023");
    std::vector<CpuId> cpus;
    if (auto c = node.find("cpus"); c != node.end()) {
      if (!c->is_array()) return json_error(source, path + ".cpus", "expected an array");
      for (const auto& cpu : *c) {
        std::uint64_t v = 0;
        if (!read_uint(cpu, kMaxCpus - 1, v))
          return json_error(source, path + ".cpus", "expected cpu ids 0..65535");
        cpus.push_back(static_cast<CpuId>(v));
      }
    }
    std::uint64_t mem[2] = {kUnknownBytes, kUnknownBytes};
    const char* keys[2] = {"memory_mb", "free_mb"};
    for (int k = 0; k < 2; ++k) {
      auto it = node.find(keys[k]);
      if (it == node.end() || it->is_null()) continue;
      std::uint64_t mb = 0;
      if (!read_uint(*it, (1ull << 40), mb))
        return json_error(source, path + "." + keys[k], "expected a size in MB or null");
      mem[k] = mb << 20;
    }
    if (auto h = node.find("hugepages"); h != node.end() && !h->is_null()) {
      if (!h->is_array()) return json_error(source, path + ".hugepages", "expected an array or null");
      std::vector<HugePagePool> pools;
      for (const auto& pool : *h) {
        HugePagePool p;
        if (!pool.is_object() || !pool.contains("size_kb") || !pool.contains("total") ||
            !pool.contains("free") || !read_uint(pool["size_kb"], 1ull << 40, p.size_kb) ||
            p.size_kb == 0 || !read_uint(pool["total"], 1ull << 48, p.total) ||
            !read_uint(pool["free"], p.total, p.free))
          return json_error(source, path + ".hugepages",
                            "expected {\"size_kb\":n,\"total\":n,\"free\":n<=total} entries");
        pools.push_back(p);
      }
      if (hugepages) (*hugepages)[static_cast<NodeId>(id)] = std::move(pools);
    }
    b.add_node(static_cast<NodeId>(id), std::move(cpus), mem[0], mem[1]);
    ids.push_back(static_cast<NodeId>(id));
  }
  auto d = doc.find("distances");
  if (d != doc.end() && !d->is_null()) {
    if (!d->is_array() || d->size() != ids.size())
      return json_error(source, "$.distances", "expected one row per node");
    for (std::size_t r = 0; r < ids.size(); ++r) {
      const auto& row = (*d)[r];
      std::string path = "$.distances[" + std::to_string(r) + "]";
      if (!row.is_array() || row.size() != ids.size())
        return json_error(source, path, "expected one entry per node");
      for (std::size_t c = 0; c < ids.size(); ++c) {
        std::uint64_t v = 0;
        if (!read_uint(row[c], kMaxDistance, v))
          return json_error(source, path, "expected distances 0..255");
        if (v != 0) b.set_distance(ids[r], ids[c], static_cast<std::uint32_t>(v));
      }
    }
  }
  return b.build();
}

}  // namespace numaheap::tools

#include <sys/stat.h>

#include "numaheap/topology_io.h"

namespace numaheap::tools {

Result<Topology, Error> load_topology_path(std::string_view path, HugePageMap* hugepages) {
  struct stat st {};
  std::string p(path);
  if (::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    auto topo = load_topology_sysfs(path);
    if (topo && hugepages) *hugepages = read_hugepages_sysfs(*topo, path);
    return topo;
  }
  auto text = read_text_file(path);
  if (!text) return text.error();
  for (char c : *text) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
    if (c == '{') return parse_topology_json(*text, path, hugepages);
    break;
  }
  return parse_numactl_text(*text, path);
}

Result<Topology, Error> resolve_topology(const std::string& spec, const std::string& sysfs_root,
                                         std::string* said, HugePageMap* hugepages) {
  auto say = [&](const std::string& s) {
    if (said) *said = s;
  };
  if (spec == "builtin") {
    say("the built-in seed 4-node machine (not this host)");
    return builtin_default_topology();
  }
  if (!spec.empty()) {
    say(spec);
    return load_topology_path(spec, hugepages);
  }
  if (!sysfs_root.empty()) {
    say("sysfs tree " + sysfs_root);
    auto topo = load_topology_sysfs(sysfs_root);
    if (topo && hugepages) *hugepages = read_hugepages_sysfs(*topo, sysfs_root);
    return topo;
  }
  auto topo = load_topology_libnuma();
  if (topo) {
    say("the live host (libnuma)");
  } else {
    // No usable libnuma (a container without the syscalls, numa=off): the
    // kernel's own tree still describes the host, one node or many.
    Error why = topo.error();
    topo = load_topology_sysfs("/");
    if (!topo)
      return Error{Errc::unsupported, "cannot read this host's topology: libnuma: " +
                                          std::string(why.message.c_str()) + "; sysfs: " +
                                          std::string(topo.error().message.c_str())};
    say("the live host (sysfs; libnuma: " + std::string(why.message.c_str()) + ")");
  }
  if (hugepages) *hugepages = read_hugepages_sysfs(*topo, "/");
  return topo;
}

}  // namespace numaheap::tools
