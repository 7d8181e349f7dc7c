// `numaheap topology [--live | --sysfs-root DIR | --numactl-file FILE |
//                     --json-file FILE | --builtin] [--json]`
//
// Prints the topology as `numactl -H` would, or as JSON. Without a source it
// reads the live host through libnuma, unless the host has a single node (or
// no usable libnuma), in which case it shows the built-in seed 4-node
// machine. Which source was used is said on stderr, never on stdout.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "numaheap/topology_io.h"
#include "topology_json.h"

namespace numaheap::tools {

namespace {

struct TopologyOptions {
  bool live = false;
  bool builtin = false;
  std::string sysfs_root;
  std::string numactl_file;
  std::string json_file;
  bool json = false;
};

int run_topology(const TopologyOptions& o, CLI::App* sub) {
  if (!sub->parsed()) return -1;
  Result<Topology, Error> topo = Error{Errc::invalid_argument, "no source"};
  if (o.live) {
    topo = load_topology_libnuma();
  } else if (o.builtin) {
    topo = builtin_default_topology();
  } else if (!o.sysfs_root.empty()) {
    topo = load_topology_sysfs(o.sysfs_root);
  } else if (!o.numactl_file.empty()) {
    topo = load_topology_numactl_file(o.numactl_file);
  } else if (!o.json_file.empty()) {
    auto text = read_text_file(o.json_file);
    if (!text) topo = text.error();
    else topo = parse_topology_json(*text, o.json_file);
  } else {
    topo = load_topology_libnuma();
    if (!topo) {
      std::fprintf(stderr, "numaheap: live host unavailable (%s)\n", topo.error().message.c_str());
      topo = builtin_default_topology();
      std::fprintf(stderr, "numaheap: showing the built-in default topology (seed 4-node machine)\n");
    } else if (topo->node_count() <= 1) {
      std::fprintf(stderr,
                   "numaheap: this host has one NUMA node; showing the built-in default "
                   "topology (seed 4-node machine). Use --live for the host itself.\n");
      topo = builtin_default_topology();
    } else {
      std::fprintf(stderr, "numaheap: topology of the live host (libnuma)\n");
    }
  }
  if (!topo) {
    std::fprintf(stderr, "numaheap topology: %s\n", topo.error().message.c_str());
    return 1;
  }
  if (o.live || !o.sysfs_root.empty() || !o.numactl_file.empty() || !o.json_file.empty() ||
      o.builtin)
    std::fprintf(stderr, "numaheap: topology from %s\n", topo->source().c_str());
  std::string out = o.json ? render_topology_json(*topo) + "\n" : render_numactl(*topo);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace

Runner add_topology_command(CLI::App& app) {
  auto opts = std::make_shared<TopologyOptions>();
  CLI::App* sub = app.add_subcommand("topology", "Show a NUMA topology (numactl -H text or JSON)");
  auto* live = sub->add_flag("--live", opts->live, "Read the live host through libnuma");
  auto* builtin = sub->add_flag("--builtin", opts->builtin,
                                "Use the built-in seed 4-node machine");
  auto* sysfs = sub->add_option("--sysfs-root", opts->sysfs_root,
                                "Read a sysfs tree (DIR/sys/devices/system/node)");
  auto* numactl = sub->add_option("--numactl-file", opts->numactl_file,
                                  "Read what `numactl -H` printed");
  auto* json_file = sub->add_option("--json-file", opts->json_file,
                                    "Read the JSON form printed by --json");
  sub->add_flag("--json", opts->json, "Print JSON instead of numactl -H text");
  live->excludes(builtin, sysfs, numactl, json_file);
  builtin->excludes(sysfs, numactl, json_file);
  sysfs->excludes(numactl, json_file);
  numactl->excludes(json_file);
  return [opts, sub] { return run_topology(*opts, sub); };
}

}  // namespace numaheap::tools
