// `numaheap place --topology PATH|builtin --guests FILE... [--sysfs-root DIR]
//                 [--json | --emit libvirt|xl]
//                 [--load idle|auto] [--proc-root DIR] [--interval-ms N]`
//
// Places a list of guests onto a topology, in order, each seeing the memory
// and vCPUs the earlier ones took and its affinity groups (a
// PlacementSession), and prints per guest the nodes, memory per node, vCPU
// -> node and the reason (or why it does not fit).
//   --json         adds per placement the guest as placed: "vnodes": [{"id",
//                  "memory_mb", "memory_bytes", "vcpus", "distances", "node"}]
//                  (the guest's own vnodes, or one per host node of a guest
//                  without vNUMA; distances to every vnode, in vnode order).
//   --emit libvirt per guest a <domain> holding the <numatune>/<memnode>,
//                  <cputune>/<vcpupin> and <cpu><numa> to paste in;
//   --emit xl      per guest its name, memory, vcpus, vnuma = [...] and
//                  cpus = "..." lines.
//   --load auto    per-node CPU utilization measured from /proc/stat (two
//                  samples --interval-ms apart; --proc-root DIR reads
//                  DIR/proc/stat) instead of an idle host;
//                  --stat-samples T0 T1 takes it from two recorded files.
// Exit status: 0 all placed, 3 some valid guest did not fit, 1 bad input
// (a file, or a guest spec that is invalid for this host: on stderr naming
// FILE:LINE; every spec is checked before anything is placed), 2 usage.
// Parser warnings go to stderr.
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "numaheap/guest_spec_io.h"
#include "numaheap/placement.h"
#include "numaheap/topology_io.h"
#include "topology_json.h"

namespace numaheap::tools {

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

struct PlaceOptions {
  std::string topology;
  std::vector<std::string> guests;
  std::string sysfs_root;
  bool json = false;
  std::string emit;
  std::string load = "idle";
  std::string proc_root;
  unsigned interval_ms = 500;
  std::vector<std::string> stat_samples;  // two recorded /proc/stat files
};

// A size for people: "1536 MB", or "1536 MB + 8 KiB" off the MiB grid.
std::string size_text(std::uint64_t bytes) {
  std::string s = std::to_string(bytes / kMiB) + " MB";
  if (bytes % kMiB) s += " + " + std::to_string(bytes % kMiB / 1024) + " KiB";
  return s;
}

// "0-3,8,10-11" from a sorted list.
template <typename Range>
std::string list_text(const Range& ids) {
  std::string out;
  bool first = true;
  long start = -2, prev = -2;
  auto flush = [&] {
    if (start < 0) return;
    out += (first ? "" : ",") + std::to_string(start);
    if (prev != start) out += "-" + std::to_string(prev);
    first = false;
  };
  for (auto raw : ids) {
    const long id = static_cast<long>(raw);
    if (id == prev + 1) {
      prev = id;
      continue;
    }
    flush();
    start = prev = id;
  }
  flush();
  return out;
}

// The guest as placed, one cell per vnode: its own vNUMA layout, or for a
// guest without one, one cell per host node of its placement holding the
// vCPUs that run there (host distances between the cells).
struct Cell {
  std::uint64_t bytes = 0;
  std::vector<std::uint32_t> vcpus;
  std::vector<std::uint32_t> distances;
  NodeId node = kNoNode;               // home node (most of its memory)
  std::vector<NodeId> nodes;           // every node holding its memory (interleave: several)
  MemoryPolicy mode = MemoryPolicy::bind;
};

MemoryPolicy effective(MemoryPolicy m) { return m == MemoryPolicy::unset ? MemoryPolicy::bind : m; }

const char* mode_text(MemoryPolicy m) {
  switch (effective(m)) {
    case MemoryPolicy::prefer: return "prefer";
    case MemoryPolicy::interleave: return "interleave";
    default: return "bind";
  }
}

// libvirt's name of a mode.
const char* libvirt_mode(MemoryPolicy m) {
  switch (effective(m)) {
    case MemoryPolicy::prefer: return "preferred";
    case MemoryPolicy::interleave: return "interleave";
    default: return "strict";
  }
}

// The host CPUs of vCPU `cpu`'s pin (hard or soft as asked): a pin naming
// the vCPU wins over one for all vCPUs, a later one over an earlier one.
// Empty when it has none.
std::vector<CpuId> pin_cpus(const Topology& t, const GuestSpec& g, std::uint32_t cpu, bool soft) {
  const VcpuPin* found = nullptr;
  for (const VcpuPin& pin : g.vcpu_pins)
    if (pin.soft == soft && (pin.vcpu == cpu || (pin.vcpu == kAllVcpus && (!found || found->vcpu == kAllVcpus))))
      found = &pin;
  std::vector<CpuId> out;
  if (!found) return out;
  for (CpuId c : found->cpus)
    if (t.node_of_cpu(c) != kNoNode) out.push_back(c);
  for (NodeId n : found->nodes)
    if (const NodeInfo* info = t.find(n)) out.insert(out.end(), info->cpus.begin(), info->cpus.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<Cell> cells_of(const Topology& t, const GuestSpec& g, const Placement& p) {
  std::vector<Cell> cells;
  if (!g.vnodes.empty()) {
    for (std::size_t v = 0; v < g.vnodes.size(); ++v) {
      const VNodeSpec& vn = g.vnodes[v];
      Cell c;
      c.bytes = vn.memory_bytes;
      c.vcpus.assign(vn.vcpus.begin(), vn.vcpus.end());
      std::sort(c.vcpus.begin(), c.vcpus.end());
      for (std::size_t w = 0; w < g.vnodes.size(); ++w)
        c.distances.push_back(vn.distances.size() == g.vnodes.size() ? vn.distances[w]
                              : v == w ? kLocalDistance : 20u);
      c.node = p.vnode_pnodes[v];
      for (const VNodeShare& piece : p.vnode_memory)
        if (piece.vnode == v) c.nodes.push_back(piece.node);
      if (c.nodes.empty()) c.nodes.push_back(c.node);
      c.mode = effective(vn.memory_mode != MemoryPolicy::unset ? vn.memory_mode : g.memory_mode);
      cells.push_back(std::move(c));
    }
    return cells;
  }
  for (const auto& s : p.memory) cells.push_back(Cell{s.bytes, {}, {}, s.node, {s.node}, effective(g.memory_mode)});
  for (std::uint32_t cpu = 0; cpu < p.vcpu_nodes.size(); ++cpu) {
    // The cell on the vCPU's node, else the nearest one.
    std::size_t best = 0;
    for (std::size_t k = 0; k < cells.size(); ++k)
      if (t.distance(p.vcpu_nodes[cpu], cells[k].node) < t.distance(p.vcpu_nodes[cpu], cells[best].node))
        best = k;
    cells[best].vcpus.push_back(cpu);
  }
  for (auto& c : cells)
    for (const auto& o : cells) c.distances.push_back(t.distance(c.node, o.node));
  return cells;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '\'': out += "&apos;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string node_cpus(const Topology& t, NodeId node) {
  const NodeInfo* n = t.find(node);
  if (!n || !n->has_cpus()) return "";
  std::vector<CpuId> cpus(n->cpus.begin(), n->cpus.end());
  std::sort(cpus.begin(), cpus.end());
  return list_text(cpus);
}

// Host CPUs a vCPU may run on: its node's, or all CPUs when the node has none.
std::string vcpu_cpuset(const Topology& t, NodeId node) {
  std::string s = node_cpus(t, node);
  if (!s.empty()) return s;
  std::vector<CpuId> all;
  for (const auto& n : t.nodes()) all.insert(all.end(), n.cpus.begin(), n.cpus.end());
  std::sort(all.begin(), all.end());
  return list_text(all);
}

std::string emit_libvirt(const Topology& t, const GuestSpec& g, const Placement& p) {
  const std::vector<Cell> cells = cells_of(t, g, p);
  std::string label = xml_escape(g.name.str());  // "--" may not appear in a comment
  for (std::size_t at; (at = label.find("--")) != std::string::npos;) label.replace(at, 2, "- -");
  std::string x = "<!-- numaheap place: " + label + " -->\n<domain>\n";
  x += "  <name>" + xml_escape(g.name.str()) + "</name>\n";
  x += "  <memory unit='KiB'>" + std::to_string(g.memory_bytes / 1024) + "</memory>\n";
  x += "  <vcpu placement='static'>" + std::to_string(g.vcpus) + "</vcpu>\n";
  // The guest's mode over the nodes it got; each cell's own mode over its
  // node(s); a hard-pinned vCPU keeps its pinned CPUs, others get their node's.
  x += "  <numatune>\n    <memory mode='" + std::string(libvirt_mode(g.memory_mode)) + "' nodeset='" +
       list_text(p.nodes) + "'/>\n";
  for (std::size_t k = 0; k < cells.size(); ++k)
    x += "    <memnode cellid='" + std::to_string(k) + "' mode='" + libvirt_mode(cells[k].mode) + "' nodeset='" +
         list_text(cells[k].nodes) + "'/>\n";
  x += "  </numatune>\n  <cputune>\n";
  for (std::uint32_t cpu = 0; cpu < p.vcpu_nodes.size(); ++cpu) {
    const std::vector<CpuId> pinned = pin_cpus(t, g, cpu, false);
    x += "    <vcpupin vcpu='" + std::to_string(cpu) + "' cpuset='" +
         (pinned.empty() ? vcpu_cpuset(t, p.vcpu_nodes[cpu]) : list_text(pinned)) + "'/>\n";
  }
  x += "  </cputune>\n  <cpu>\n    <numa>\n";
  for (std::size_t k = 0; k < cells.size(); ++k) {
    const Cell& c = cells[k];
    x += "      <cell id='" + std::to_string(k) + "'";
    if (!c.vcpus.empty()) x += " cpus='" + list_text(c.vcpus) + "'";
    x += " memory='" + std::to_string(c.bytes / 1024) + "' unit='KiB'>\n        <distances>\n";
    for (std::size_t w = 0; w < c.distances.size(); ++w)
      x += "          <sibling id='" + std::to_string(w) + "' value='" + std::to_string(c.distances[w]) +
           "'/>\n";
    x += "        </distances>\n      </cell>\n";
  }
  x += "    </numa>\n  </cpu>\n</domain>\n";
  return x;
}

std::string emit_xl(const Topology& t, const GuestSpec& g, const Placement& p) {
  const std::vector<Cell> cells = cells_of(t, g, p);
  std::string x = "# numaheap place: " + g.name.str() + "\n";
  std::string warn;
  for (std::size_t k = 0; k < cells.size(); ++k)
    if (cells[k].bytes % kMiB)
      warn += "# warning: vnode " + std::to_string(k) + " is " + size_text(cells[k].bytes) +
              "; xl sizes are whole MiB (rounded down here)\n";
  for (std::size_t k = 0; k < cells.size(); ++k)
    if (cells[k].nodes.size() > 1 && !g.vnodes.empty())
      warn += "# warning: vnode " + std::to_string(k) + " spans nodes " + list_text(cells[k].nodes) + " (" +
              mode_text(cells[k].mode) + "); xl's vnuma has one pnode per vnode (its home, " +
              std::to_string(cells[k].node) + ", here)\n";
  x += warn;
  std::string name;  // xl strings: double quotes, no escapes
  for (char ch : g.name.str()) name += ch == '"' ? '\'' : ch;
  std::uint64_t total_mb = 0;
  for (const auto& c : cells) total_mb += c.bytes / kMiB;
  x += "name = \"" + name + "\"\nmemory = " + std::to_string(total_mb) + "\nvcpus = " +
       std::to_string(g.vcpus) + "\nvnuma = [ ";
  for (std::size_t k = 0; k < cells.size(); ++k) {
    const Cell& c = cells[k];
    std::string d;
    for (auto v : c.distances) d += (d.empty() ? "" : ",") + std::to_string(v);
    // A cell without vCPUs (a CPU-less node's memory) lists none.
    const std::string vcpus = c.vcpus.empty() ? "" : "\"vcpus=" + list_text(c.vcpus) + "\", ";
    x += std::string(k ? ",\n          " : "") + "[ \"pnode=" + std::to_string(c.node) + "\", \"size=" +
         std::to_string(c.bytes / kMiB) + "\", " + vcpus + "\"vdistances=" + d + "\" ]";
  }
  x += " ]\n";
  // cpus: one string for every vCPU (the CPUs of the guest's vCPU nodes),
  // or, when some vCPU has a hard pin, xl's list form: vCPU i's pinned CPUs,
  // or its node's. cpus_soft likewise from soft pins.
  bool hard = false, soft = false;
  for (const VcpuPin& pin : g.vcpu_pins) (pin.soft ? soft : hard) = true;
  if (hard) {
    x += "cpus = [ ";
    for (std::uint32_t cpu = 0; cpu < p.vcpu_nodes.size(); ++cpu) {
      const std::vector<CpuId> pinned = pin_cpus(t, g, cpu, false);
      x += std::string(cpu ? ", " : "") + "\"" + (pinned.empty() ? vcpu_cpuset(t, p.vcpu_nodes[cpu]) : list_text(pinned)) + "\"";
    }
    x += " ]\n";
  } else {
    std::vector<CpuId> cpus;
    for (NodeId n : p.vcpu_nodes)
      if (const NodeInfo* info = t.find(n)) cpus.insert(cpus.end(), info->cpus.begin(), info->cpus.end());
    std::sort(cpus.begin(), cpus.end());
    cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
    if (!cpus.empty()) x += "cpus = \"" + list_text(cpus) + "\"\n";
  }
  if (soft) {
    x += "cpus_soft = [ ";
    for (std::uint32_t cpu = 0; cpu < p.vcpu_nodes.size(); ++cpu) {
      const std::vector<CpuId> pinned = pin_cpus(t, g, cpu, true);
      x += std::string(cpu ? ", " : "") + "\"" + (pinned.empty() ? "all" : list_text(pinned)) + "\"";
    }
    x += " ]\n";
  }
  return x;
}

nlohmann::json vnodes_json(const Topology& t, const GuestSpec& g, const Placement& p) {
  nlohmann::json out = nlohmann::json::array();
  const std::vector<Cell> cells = cells_of(t, g, p);
  for (std::size_t k = 0; k < cells.size(); ++k)
    out.push_back({{"id", k},
                   {"memory_mb", cells[k].bytes / kMiB},
                   {"memory_bytes", cells[k].bytes},
                   {"vcpus", cells[k].vcpus},
                   {"distances", cells[k].distances},
                   {"node", cells[k].node},
                   {"nodes", cells[k].nodes},
                   {"memory_mode", mode_text(cells[k].mode)}});
  return out;
}

int run_place(const PlaceOptions& o, CLI::App* sub) {
  if (!sub->parsed()) return -1;
  if (o.json && !o.emit.empty()) {
    std::fprintf(stderr, "numaheap place: --json and --emit exclude each other\n");
    return 2;
  }
  auto topo = resolve_topology(o.topology, "");
  if (!topo) {
    std::fprintf(stderr, "numaheap place: %s\n", topo.error().message.c_str());
    return 1;
  }
  std::vector<GuestSpec> guests;
  GuestParseOptions parse_options;
  parse_options.sysfs_root = o.sysfs_root;
  for (const auto& file : o.guests) {
    auto g = load_guests_file(file, parse_options);
    if (!g) {
      std::fprintf(stderr, "numaheap place: %s\n", g.error().message.c_str());
      return 1;
    }
    for (const auto& w : g->warnings) std::fprintf(stderr, "numaheap place: warning: %s\n", w.c_str());
    // A spec that is wrong for this host is bad input (exit 1), not a
    // guest that did not fit (exit 3).
    for (std::size_t i = 0; i < g->guests.size(); ++i)
      if (auto ok = validate_guest_spec(g->guests[i], *topo); !ok) {
        std::fprintf(stderr, "numaheap place: %s:%zu: %s\n", file.c_str(), g->lines[i], ok.error().message.c_str());
        return 1;
      }
    for (auto& spec : g->guests) guests.push_back(std::move(spec));
  }
  PlacementSession session(*topo);
  if (!o.stat_samples.empty()) {
    CpuTimes sample[2];
    for (int k = 0; k < 2; ++k) {
      auto text = read_text_file(o.stat_samples[static_cast<std::size_t>(k)]);
      auto parsed = text ? parse_proc_stat(*text, o.stat_samples[static_cast<std::size_t>(k)])
                         : Result<CpuTimes, Error>(text.error());
      if (!parsed) {
        std::fprintf(stderr, "numaheap place: --stat-samples: %s\n", parsed.error().message.c_str());
        return 1;
      }
      sample[k] = std::move(*parsed);
    }
    const std::vector<double> u = node_utilization(*topo, sample[0], sample[1]);
    for (std::size_t i = 0; i < u.size(); ++i) session.mutable_usage()[i].utilization = u[i];
  } else if (o.load == "auto") {
    auto r = measure_node_utilization(*topo, session.mutable_usage(),
                                      std::chrono::milliseconds(o.interval_ms), o.proc_root);
    if (!r) {
      std::fprintf(stderr, "numaheap place: --load auto: %s\n", r.error().message.c_str());
      return 1;
    }
  }
  nlohmann::json placements = nlohmann::json::array(), unplaced = nlohmann::json::array();
  std::string text, emitted;
  for (const auto& g : guests) {
    auto p = session.place(g);
    if (!p) {
      unplaced.push_back({{"name", g.name}, {"error", p.error().message}});
      text += g.name + ": not placed: " + p.error().message + "\n";
      emitted += (o.emit == "xl" ? "# " : "<!-- ") + g.name.str() + ": not placed: " +
                 p.error().message + (o.emit == "xl" ? "\n" : " -->\n");
      continue;
    }
    nlohmann::json mem = nlohmann::json::object(), mem_bytes = nlohmann::json::object();
    std::string mem_text;
    for (const auto& s : p->memory) {
      mem[std::to_string(s.node)] = s.bytes / kMiB;
      mem_bytes[std::to_string(s.node)] = s.bytes;
      mem_text += (mem_text.empty() ? "" : ", ") + std::string("node ") + std::to_string(s.node) + " " +
                  size_text(s.bytes);
    }
    std::vector<NodeId> nodes(p->nodes.begin(), p->nodes.end());
    nlohmann::json entry = {{"name", g.name},
                            {"nodes", nodes},
                            {"memory_mb", mem},
                            {"memory_bytes", mem_bytes},
                            {"vcpu_nodes", p->vcpu_nodes},
                            {"vnodes", vnodes_json(*topo, g, *p)},
                            {"vnuma", !g.vnodes.empty()},
                            {"memory_mode", mode_text(g.memory_mode)},
                            {"reason", p->reason}};
    if (!p->vnode_pnodes.empty()) entry["vnode_pnodes"] = p->vnode_pnodes;
    placements.push_back(std::move(entry));
    std::string vcpus;
    for (NodeId n : p->vcpu_nodes) vcpus += (vcpus.empty() ? "" : " ") + std::to_string(n);
    text += g.name + ": nodes " + p->nodes.to_string() + "\n  memory: " + mem_text +
            "\n  vcpu nodes: " + vcpus + "\n  reason: " + p->reason + "\n";
    if (o.emit == "libvirt") emitted += emit_libvirt(*topo, g, *p);
    if (o.emit == "xl") emitted += emit_xl(*topo, g, *p);
  }
  std::string out = o.json           ? nlohmann::json{{"placements", placements}, {"unplaced", unplaced}}.dump(2) + "\n"
                    : !o.emit.empty() ? emitted
                                      : text;
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (std::fflush(stdout) != 0) return 1;
  return unplaced.empty() ? 0 : 3;
}

}  // namespace

Runner add_place_command(CLI::App& app) {
  auto opts = std::make_shared<PlaceOptions>();
  CLI::App* sub = app.add_subcommand("place", "Place guests onto a topology, in order");
  sub->add_option("--topology", opts->topology,
                  "numactl -H text, JSON topology, a sysfs tree directory, or 'builtin' "
                  "(the seed 4-node machine)")
      ->required();
  sub->add_option("--guests", opts->guests, "Guests: JSON list, libvirt domain XML or xl.cfg")
      ->required();
  sub->add_option("--sysfs-root", opts->sysfs_root,
                  "Where <hostdev> PCI devices' numa_node is read (default /)");
  sub->add_flag("--json", opts->json, "Print JSON (with each guest's vnodes as placed)");
  sub->add_option("--emit", opts->emit,
                  "Print what to apply: libvirt (numatune, cputune, cpu/numa) or xl (vnuma, cpus)")
      ->check(CLI::IsMember({"libvirt", "xl"}));
  sub->add_option("--load", opts->load,
                  "idle (default) or auto: per-node CPU utilization from /proc/stat")
      ->check(CLI::IsMember({"idle", "auto"}));
  sub->add_option("--proc-root", opts->proc_root,
                  "Read DIR/proc/stat for --load auto (a recorded tree); default: this machine");
  sub->add_option("--interval-ms", opts->interval_ms, "Sampling interval for --load auto (default 500)")
      ->check(CLI::Range(0u, 60000u));
  sub->add_option("--stat-samples", opts->stat_samples,
                  "Utilization from two recorded /proc/stat files (before, after) instead of sampling")
      ->expected(2);
  return [opts, sub] { return run_place(*opts, sub); };
}

}  // namespace numaheap::tools
