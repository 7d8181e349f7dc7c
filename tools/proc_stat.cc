#include "proc_stat.h"

#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "numaheap/topology_io.h"

namespace numaheap::tools {

namespace {

bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = v;
  return true;
}

std::string trim_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == '\0')) s.pop_back();
  return s;
}

// Numeric entries of a directory, ascending; empty when it cannot be read.
std::vector<int> numeric_entries(const std::string& dir) {
  std::vector<int> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::uint64_t v = 0;
    if (parse_u64(e->d_name, v) && v > 0 && v < (1u << 31)) out.push_back(static_cast<int>(v));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string proc_dir(const std::string& proc_root) {
  std::string r = proc_root.empty() ? "/" : proc_root;
  if (r.back() != '/') r += '/';
  return r + "proc/";
}

double round2(double v) { return std::round(v * 100.0) / 100.0; }
double mb(std::uint64_t bytes) { return round2(static_cast<double>(bytes) / 1048576.0); }

// qemu's guest name from its command line: "-name guest=NAME,..." or
// "-name NAME,...".
std::string guest_name_from_cmdline(const std::string& cmdline) {
  std::vector<std::string> args;
  std::string cur;
  for (char c : cmdline) {
    if (c == '\0') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) args.push_back(cur);
  for (std::size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] != "-name" && args[i] != "--name") continue;
    std::string v = args[i + 1];
    // Options are comma-separated; ",," is an escaped comma (rare: ignored).
    std::size_t start = 0;
    while (start <= v.size()) {
      std::size_t end = v.find(',', start);
      std::string part = v.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (part.rfind("guest=", 0) == 0) return part.substr(6);
      if (start == 0 && part.find('=') == std::string::npos) return part;
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  return {};
}

}  // namespace

std::uint64_t ProcessMemory::total_bytes() const {
  std::uint64_t t = 0;
  for (const auto& [id, m] : nodes) t += m.bytes;
  return t;
}

Result<ProcessMemory, Error> parse_numa_maps(std::string_view text, std::string_view name) {
  ProcessMemory out;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    std::vector<std::pair<NodeId, std::uint64_t>> counts;
    std::uint64_t page_kb = 4;
    bool huge = false;
    std::size_t t = 0;
    while (t < line.size()) {
      while (t < line.size() && (line[t] == ' ' || line[t] == '\t' || line[t] == '\r')) ++t;
      std::size_t e = t;
      while (e < line.size() && line[e] != ' ' && line[e] != '\t' && line[e] != '\r') ++e;
      std::string_view tok = line.substr(t, e - t);
      t = e;
      if (tok.empty()) continue;
      auto bad = [&](const char* what) {
        return Error{Errc::parse_error, std::string(name) + ":" + std::to_string(line_no) + ": " +
                                            what + ", got '" + std::string(tok) + "'"};
      };
      if (tok == "huge") {
        huge = true;
      } else if (tok.rfind("kernelpagesize_kB=", 0) == 0) {
        if (!parse_u64(tok.substr(18), page_kb) || page_kb == 0 || page_kb > (1ull << 24))
          return bad("expected kernelpagesize_kB=<size>");
      } else if (tok.size() > 1 && tok[0] == 'N' && tok[1] >= '0' && tok[1] <= '9') {
        std::size_t eq = tok.find('=');
        std::uint64_t node = 0, pages = 0;
        if (eq == std::string_view::npos || !parse_u64(tok.substr(1, eq - 1), node) ||
            node >= kMaxNodes || !parse_u64(tok.substr(eq + 1), pages) || pages > (1ull << 40))
          return bad("expected N<node>=<pages>");
        counts.emplace_back(static_cast<NodeId>(node), pages);
      }
    }
    for (auto [node, pages] : counts) {
      NodeMemory& m = out.nodes[node];
      m.bytes += pages * page_kb * 1024;
      if (huge) m.huge[page_kb] += pages;
    }
  }
  return out;
}

std::optional<unsigned> vcpu_index_of(std::string_view comm) {
  while (!comm.empty() && (comm.back() == '\n' || comm.back() == '\0')) comm.remove_suffix(1);
  if (comm.rfind("CPU ", 0) != 0) return std::nullopt;
  std::size_t slash = comm.find('/', 4);
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view accel = comm.substr(slash + 1);
  if (accel != "KVM" && accel != "TCG") return std::nullopt;
  std::uint64_t n = 0;
  if (!parse_u64(comm.substr(4, slash - 4), n) || n > 65535) return std::nullopt;
  return static_cast<unsigned>(n);
}

Result<int, Error> last_cpu_of_stat(std::string_view stat, std::string_view name) {
  std::size_t close = stat.rfind(')');
  if (close == std::string_view::npos)
    return Error{Errc::parse_error, std::string(name) + ": no ')' after the command name"};
  // Fields after ')': the first is field 3 (state), so field 39 is the 37th.
  std::string_view rest = stat.substr(close + 1);
  int field = 2;
  std::size_t t = 0;
  while (t < rest.size()) {
    while (t < rest.size() && (rest[t] == ' ' || rest[t] == '\n')) ++t;
    if (t >= rest.size()) break;
    std::size_t e = t;
    while (e < rest.size() && rest[e] != ' ' && rest[e] != '\n') ++e;
    ++field;
    if (field == 39) {
      std::uint64_t cpu = 0;
      if (!parse_u64(rest.substr(t, e - t), cpu) || cpu >= kMaxCpus)
        return Error{Errc::parse_error, std::string(name) + ": field 39 (processor): expected a cpu id, got '" +
                                            std::string(rest.substr(t, e - t)) + "'"};
      return static_cast<int>(cpu);
    }
    t = e;
  }
  return Error{Errc::parse_error,
               std::string(name) + ": " + std::to_string(field) + " fields, expected at least 39"};
}

void summarise(GuestStat& g) {
  g.local_fraction.reset();
  g.move.reset();
  if (g.vcpus.empty()) return;
  std::map<NodeId, unsigned> per_node;
  for (const auto& v : g.vcpus)
    if (v.node != kNoNode) ++per_node[v.node];
  const std::uint64_t total = g.memory.total_bytes();
  if (total > 0) {
    double sum = 0;
    for (const auto& v : g.vcpus) {
      auto it = g.memory.nodes.find(v.node);
      if (v.node != kNoNode && it != g.memory.nodes.end())
        sum += static_cast<double>(it->second.bytes) / static_cast<double>(total);
    }
    g.local_fraction = sum / static_cast<double>(g.vcpus.size());
  }
  MovePlan plan;
  for (const auto& [node, m] : g.memory.nodes)
    if (!per_node.count(node) && m.bytes > 0) {
      plan.from[node] = m.bytes;
      plan.bytes += m.bytes;
    }
  if (!per_node.empty() && plan.bytes > 0) {
    unsigned placed_vcpus = 0;
    for (const auto& [node, n] : per_node) placed_vcpus += n;
    const std::uint64_t pages = plan.bytes / 4096;
    std::uint64_t given = 0;
    NodeId most = per_node.begin()->first;
    for (const auto& [node, n] : per_node) {
      if (n > per_node[most]) most = node;
      std::uint64_t share = pages * n / placed_vcpus;
      plan.to[node] = share * 4096;
      given += share * 4096;
    }
    plan.to[most] += plan.bytes - given;
  } else if (per_node.empty()) {
    plan.from.clear();
    plan.bytes = 0;  // no vCPU on a known node: nowhere to move to
  }
  g.move = std::move(plan);
}

Result<GuestStat, Error> read_guest_stat(const std::string& proc_root, int pid, const Topology& topo) {
  GuestStat g;
  g.pid = pid;
  const std::string dir = proc_dir(proc_root) + std::to_string(pid) + "/";
  auto maps = read_text_file(dir + "numa_maps");
  if (!maps) {
    std::string why = maps.error().message.c_str();
    return Error{Errc::io_error, "process " + std::to_string(pid) + ": " + why +
                                     " (is it running, and may this user read it?)"};
  }
  auto mem = parse_numa_maps(*maps, dir + "numa_maps");
  if (!mem) return mem.error();
  g.memory = std::move(*mem);
  if (auto c = read_text_file(dir + "comm")) g.comm = trim_newline(*c);
  if (auto c = read_text_file(dir + "cmdline")) g.name = guest_name_from_cmdline(*c);
  if (g.name.empty()) g.name = g.comm;
  for (int tid : numeric_entries(dir + "task")) {
    const std::string tdir = dir + "task/" + std::to_string(tid) + "/";
    auto comm = read_text_file(tdir + "comm");
    if (!comm) continue;  // the thread ended meanwhile
    auto idx = vcpu_index_of(*comm);
    if (!idx) continue;
    auto stat = read_text_file(tdir + "stat");
    if (!stat) continue;
    auto cpu = last_cpu_of_stat(*stat, tdir + "stat");
    if (!cpu) return cpu.error();
    VcpuThread v;
    v.index = *idx;
    v.tid = tid;
    std::string c = trim_newline(*comm);
    v.accel = c.substr(c.find('/') + 1);
    v.cpu = *cpu;
    v.node = topo.node_of_cpu(static_cast<CpuId>(*cpu));
    g.vcpus.push_back(std::move(v));
  }
  std::sort(g.vcpus.begin(), g.vcpus.end(),
            [](const VcpuThread& a, const VcpuThread& b) { return a.index < b.index || (a.index == b.index && a.tid < b.tid); });
  summarise(g);
  return g;
}

std::vector<int> find_qemu_processes(const std::string& proc_root) {
  std::vector<int> out;
  const std::string pdir = proc_dir(proc_root);
  for (int pid : numeric_entries(pdir)) {
    const std::string dir = pdir + std::to_string(pid) + "/";
    auto comm = read_text_file(dir + "comm");
    if (!comm) continue;
    std::string c = trim_newline(*comm);
    bool qemu = c.rfind("qemu-", 0) == 0 || c.rfind("kvm", 0) == 0;
    if (!qemu) {
      for (int tid : numeric_entries(dir + "task")) {
        auto t = read_text_file(dir + "task/" + std::to_string(tid) + "/comm");
        if (t && vcpu_index_of(*t)) {
          qemu = true;
          break;
        }
      }
    }
    if (qemu) out.push_back(pid);
  }
  return out;
}

nlohmann::ordered_json guest_to_json(const GuestStat& g) {
  nlohmann::ordered_json j;
  j["pid"] = g.pid;
  j["name"] = g.name;
  j["comm"] = g.comm;
  nlohmann::ordered_json vcpus = nlohmann::ordered_json::array();
  std::map<NodeId, unsigned> per_node;
  for (const auto& v : g.vcpus) {
    nlohmann::ordered_json e;
    e["index"] = v.index;
    e["tid"] = v.tid;
    e["accel"] = v.accel;
    e["cpu"] = v.cpu;
    e["node"] = v.node == kNoNode ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(v.node);
    vcpus.push_back(std::move(e));
    if (v.node != kNoNode) ++per_node[v.node];
  }
  j["vcpus"] = std::move(vcpus);
  std::set<NodeId> ids;
  for (const auto& [id, m] : g.memory.nodes) ids.insert(id);
  for (const auto& [id, n] : per_node) ids.insert(id);
  nlohmann::ordered_json nodes = nlohmann::ordered_json::array();
  for (NodeId id : ids) {
    auto it = g.memory.nodes.find(id);
    const std::uint64_t bytes = it == g.memory.nodes.end() ? 0 : it->second.bytes;
    nlohmann::ordered_json n;
    n["id"] = id;
    n["memory_bytes"] = bytes;
    n["memory_mb"] = mb(bytes);
    n["vcpus"] = per_node.count(id) ? per_node[id] : 0u;
    nlohmann::ordered_json huge = nlohmann::ordered_json::array();
    if (it != g.memory.nodes.end())
      for (const auto& [kb, pages] : it->second.huge) huge.push_back({{"size_kb", kb}, {"pages", pages}});
    n["hugepages"] = std::move(huge);
    nodes.push_back(std::move(n));
  }
  j["nodes"] = std::move(nodes);
  j["total_bytes"] = g.memory.total_bytes();
  j["total_mb"] = mb(g.memory.total_bytes());
  j["local_fraction"] = g.local_fraction ? nlohmann::ordered_json(round2(*g.local_fraction * 100) / 100)
                                         : nlohmann::ordered_json(nullptr);
  if (!g.move) {
    j["move"] = nullptr;
  } else {
    nlohmann::ordered_json from = nlohmann::ordered_json::object(), to = nlohmann::ordered_json::object();
    for (const auto& [id, b] : g.move->from) from[std::to_string(id)] = b;
    for (const auto& [id, b] : g.move->to) to[std::to_string(id)] = b;
    j["move"] = {{"bytes", g.move->bytes}, {"from", std::move(from)}, {"to", std::move(to)}};
  }
  return j;
}

std::string render_guest_text(const GuestStat& g) {
  char line[256];
  std::string out;
  std::snprintf(line, sizeof line, "guest %s (pid %d, %s): %zu vCPU thread%s, %.2f MB\n", g.name.c_str(), g.pid,
                g.comm.c_str(), g.vcpus.size(), g.vcpus.size() == 1 ? "" : "s",
                static_cast<double>(g.memory.total_bytes()) / 1048576.0);
  out += line;
  std::map<NodeId, unsigned> per_node;
  for (const auto& v : g.vcpus)
    if (v.node != kNoNode) ++per_node[v.node];
  std::set<NodeId> ids;
  for (const auto& [id, m] : g.memory.nodes) ids.insert(id);
  for (const auto& [id, n] : per_node) ids.insert(id);
  out += "  node        memory MB   vCPUs  huge pages\n";
  for (NodeId id : ids) {
    auto it = g.memory.nodes.find(id);
    std::string huge;
    if (it != g.memory.nodes.end())
      for (const auto& [kb, pages] : it->second.huge)
        huge += (huge.empty() ? "" : ", ") + std::to_string(pages) + " x " + std::to_string(kb) + " kB";
    std::snprintf(line, sizeof line, "  %4u  %15.2f  %6u  %s\n", id,
                  it == g.memory.nodes.end() ? 0.0 : static_cast<double>(it->second.bytes) / 1048576.0,
                  per_node.count(id) ? per_node[id] : 0u, huge.empty() ? "-" : huge.c_str());
    out += line;
  }
  if (g.vcpus.empty()) {
    out += "  no vCPU threads found (qemu names them \"CPU n/KVM\" only with -name ...,debug-threads=on)\n";
    return out;
  }
  out += "  vCPUs:";
  for (const auto& v : g.vcpus) {
    if (v.node == kNoNode)
      std::snprintf(line, sizeof line, " %u@cpu%d(node ?)", v.index, v.cpu);
    else
      std::snprintf(line, sizeof line, " %u@cpu%d(node %u)", v.index, v.cpu, v.node);
    out += line;
  }
  out += "\n";
  if (g.local_fraction) {
    std::snprintf(line, sizeof line, "  local: %.1f%% of memory is on its vCPUs' nodes (vCPU-weighted)\n",
                  100.0 * *g.local_fraction);
    out += line;
  }
  if (g.move && g.move->bytes > 0) {
    std::string from, to;
    for (const auto& [id, b] : g.move->from)
      from += (from.empty() ? "" : ", ") + std::string("node ") + std::to_string(id) + " " +
              std::to_string(b >> 20) + " MB";
    for (const auto& [id, b] : g.move->to)
      to += (to.empty() ? "" : ", ") + std::string("node ") + std::to_string(id) + " " + std::to_string(b >> 20) + " MB";
    std::snprintf(line, sizeof line, "  would move %.2f MB: from %s; to %s\n",
                  static_cast<double>(g.move->bytes) / 1048576.0, from.c_str(), to.c_str());
    out += line;
  } else {
    out += "  would move nothing: all memory is on nodes where its vCPUs run\n";
  }
  return out;
}

}  // namespace numaheap::tools
