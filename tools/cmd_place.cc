// `numaheap place --topology PATH --guests FILE... [--sysfs-root DIR] [--json]`
//
// Places a list of guests onto a topology, in order, each seeing the memory
// and vCPUs the earlier ones took, and prints per guest the nodes, memory
// per node, vCPU -> node and the reason (or why it does not fit).
// Exit status: 0 all placed, 3 some did not fit, 1 bad input (a file that
// does not parse, or a guest spec that is wrong for the topology: nothing is
// placed then). Parser warnings go to stderr.
#include <cstdio>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "numaheap/guest_spec_io.h"
#include "numaheap/placement.h"
#include "topology_json.h"

namespace numaheap::tools {

namespace {

struct PlaceOptions {
  std::string topology;
  std::vector<std::string> guests;
  std::string sysfs_root;
  bool json = false;
};

int run_place(const PlaceOptions& o, CLI::App* sub) {
  if (!sub->parsed()) return -1;
  auto topo = load_topology_path(o.topology);
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
  Placer placer(*topo);
  auto usage = placer.idle_usage();
  std::map<std::string, NodeMask> affinity, anti;
  nlohmann::json placements = nlohmann::json::array(), unplaced = nlohmann::json::array();
  std::string text;
  for (const auto& g : guests) {
    PlacementHints hints;
    if (!g.affinity_group.empty()) hints.affinity_nodes = affinity[g.affinity_group];
    if (!g.anti_affinity_group.empty()) hints.anti_affinity_nodes = anti[g.anti_affinity_group];
    auto p = placer.place(g, usage, hints);
    if (!p) {
      unplaced.push_back({{"name", g.name}, {"error", p.error().message}});
      text += g.name + ": not placed: " + p.error().message + "\n";
      continue;
    }
    placer.commit(*p, usage);
    if (!g.affinity_group.empty()) affinity[g.affinity_group] |= p->nodes;
    if (!g.anti_affinity_group.empty()) anti[g.anti_affinity_group] |= p->nodes;
    nlohmann::json mem = nlohmann::json::object();
    std::string mem_text;
    for (const auto& s : p->memory) {
      mem[std::to_string(s.node)] = s.bytes >> 20;
      mem_text += (mem_text.empty() ? "" : ", ") + std::string("node ") + std::to_string(s.node) +
                  " " + std::to_string(s.bytes >> 20) + " MB";
    }
    std::vector<NodeId> nodes(p->nodes.begin(), p->nodes.end());
    nlohmann::json entry = {{"name", g.name}, {"nodes", nodes}, {"memory_mb", mem},
                            {"vcpu_nodes", p->vcpu_nodes}, {"reason", p->reason}};
    if (!p->vnode_pnodes.empty()) entry["vnode_pnodes"] = p->vnode_pnodes;
    placements.push_back(std::move(entry));
    std::string vcpus;
    for (NodeId n : p->vcpu_nodes) vcpus += (vcpus.empty() ? "" : " ") + std::to_string(n);
    text += g.name + ": nodes " + p->nodes.to_string() + "\n  memory: " + mem_text +
            "\n  vcpu nodes: " + vcpus + "\n  reason: " + p->reason + "\n";
  }
  std::string out = o.json ? nlohmann::json{{"placements", placements}, {"unplaced", unplaced}}.dump(2) + "\n"
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
                  "numactl -H text, JSON topology, or a sysfs tree directory")
      ->required();
  sub->add_option("--guests", opts->guests, "Guests: JSON list, libvirt domain XML or xl.cfg")
      ->required();
  sub->add_option("--sysfs-root", opts->sysfs_root,
                  "Where <hostdev> PCI devices' numa_node is read (default /)");
  sub->add_flag("--json", opts->json, "Print JSON");
  return [opts, sub] { return run_place(*opts, sub); };
}

}  // namespace numaheap::tools
