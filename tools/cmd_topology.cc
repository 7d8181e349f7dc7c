// `numaheap topology [-H] [--live | --builtin | --sysfs-root DIR |
//                     --numactl-file FILE | --json-file FILE] [--json]`
//
// Prints a topology as `numactl -H` would (the default rendering; -H says so
// explicitly), or as JSON (topology_json.h). Without a source it shows the
// host this runs on, one node or many: libnuma, else the kernel's sysfs
// tree. The seed 4-node machine appears only when asked for with --builtin.
// Which source was used is said on stderr, never on stdout.
// Exit status: 0 shown, 1 the source is unreadable or malformed, 2 usage.
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
  bool numactl_text = false;  // -H: the default rendering, named
  std::string sysfs_root;
  std::string numactl_file;
  std::string json_file;
  bool json = false;
};

int run_topology(const TopologyOptions& o, CLI::App* sub) {
  if (!sub->parsed()) return -1;
  Result<Topology, Error> topo = Error{Errc::invalid_argument, "no source"};
  HugePageMap hugepages;
  bool have_hugepages = false;
  std::string said;
  if (!o.numactl_file.empty()) {
    topo = load_topology_numactl_file(o.numactl_file);
    said = "numactl text " + o.numactl_file;
  } else if (!o.json_file.empty()) {
    auto text = read_text_file(o.json_file);
    if (!text) topo = text.error();
    else topo = parse_topology_json(*text, o.json_file, &hugepages);
    have_hugepages = true;  // as the file says (null entries stay unknown)
    said = "JSON " + o.json_file;
  } else {
    // --builtin, --sysfs-root, or the live host (--live or nothing).
    topo = resolve_topology(o.builtin ? "builtin" : "", o.sysfs_root, &said, &hugepages);
    have_hugepages = !o.builtin;
  }
  if (!topo) {
    std::fprintf(stderr, "numaheap topology: %s\n", topo.error().message.c_str());
    return kExitBadInput;
  }
  std::fprintf(stderr, "numaheap: topology of %s\n", said.c_str());
  std::string out = o.json ? render_topology_json(*topo, -1, have_hugepages ? &hugepages : nullptr) + "\n"
                           : render_numactl(*topo);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? kExitOk : kExitBadInput;
}

}  // namespace

Runner add_topology_command(CLI::App& app) {
  auto opts = std::make_shared<TopologyOptions>();
  CLI::App* sub = app.add_subcommand(
      "topology",
      "Show a NUMA topology: this host by default (one node or many), as numactl -H text or JSON");
  auto* live = sub->add_flag("--live", opts->live,
                             "This host: libnuma, else /sys (the default)");
  auto* builtin = sub->add_flag("--builtin", opts->builtin,
                                "The built-in seed 4-node machine (demos; not this host)");
  auto* sysfs = sub->add_option("--sysfs-root", opts->sysfs_root,
                                "Read a sysfs tree (DIR/sys/devices/system/node)")->type_name("DIR");
  auto* numactl = sub->add_option("--numactl-file", opts->numactl_file,
                                  "Read what `numactl -H` printed")->type_name("FILE");
  auto* json_file = sub->add_option("--json-file", opts->json_file,
                                    "Read the JSON form printed by --json")->type_name("FILE");
  auto* hardware = sub->add_flag("-H,--hardware", opts->numactl_text,
                                 "Print numactl -H text (the default rendering)");
  auto* json = sub->add_flag("--json", opts->json,
                             "Print JSON: nodes (cpus, memory, huge pages) and distances");
  live->excludes(builtin, sysfs, numactl, json_file);
  builtin->excludes(sysfs, numactl, json_file);
  sysfs->excludes(numactl, json_file);
  numactl->excludes(json_file);
  hardware->excludes(json);
  return [opts, sub] { return run_topology(*opts, sub); };
}

}  // namespace numaheap::tools
