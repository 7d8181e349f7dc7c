#include "topology_json.h"

namespace numaheap::tools {

namespace {

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

nlohmann::json topology_to_json(const Topology& topo) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& n : topo.nodes()) {
    nodes.push_back({{"id", n.id},
                     {"cpus", n.cpus},
                     {"memory_mb", mb_or_null(n.memory_bytes)},
                     {"free_mb", mb_or_null(n.free_bytes)}});
  }
  nlohmann::json out;
  out["nodes"] = std::move(nodes);
  if (!topo.distances_given()) {
    out["distances"] = nullptr;
  } else {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& a : topo.nodes()) {
      nlohmann::json row = nlohmann::json::array();
      for (const auto& b : topo.nodes()) row.push_back(topo.raw_distance(a.id, b.id));
      rows.push_back(std::move(row));
    }
    out["distances"] = std::move(rows);
  }
  return out;
}

std::string render_topology_json(const Topology& topo, int indent) {
  return topology_to_json(topo).dump(indent);
}

Result<Topology, Error> parse_topology_json(std::string_view text, std::string_view source) {
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

Result<Topology, Error> load_topology_path(std::string_view path) {
  struct stat st {};
  std::string p(path);
  if (::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return load_topology_sysfs(path);
  auto text = read_text_file(path);
  if (!text) return text.error();
  for (char c : *text) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
    if (c == '{') return parse_topology_json(*text, path);
    break;
  }
  return parse_numactl_text(*text, path);
}

}  // namespace numaheap::tools
