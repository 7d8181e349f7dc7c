// `numaheap stat [--pid PID | --qemu] [--json] [--watch S]
//                [--topology builtin|PATH] [--proc-root DIR] [--sysfs-root DIR]`
//
// For each QEMU-like process (vCPU threads named "CPU n/KVM" or "CPU n/TCG",
// or a qemu-/kvm command name; the default, --qemu) or for one given PID:
// memory per node, each vCPU thread's last CPU and its node, the guest's
// local fraction and what numaheap would move (tools/proc_stat.h). The
// CPU -> node map is this host's topology (libnuma, else sysfs; or the tree
// under --sysfs-root, or --topology). --proc-root and --sysfs-root read
// recorded trees (tests/data/proc/).
// Exit status: 0 shown (also when no guest runs), 1 bad input (no such
// process, unreadable numa_maps, bad topology), 2 usage.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "proc_stat.h"
#include "topology_json.h"

namespace numaheap::tools {

namespace {

struct StatOptions {
  int pid = 0;
  bool qemu = false;
  bool json = false;
  double watch = 0;
  int iterations = 0;  // with --watch: stop after this many reports (0: never)
  std::string topology;
  std::string proc_root = "/";
  std::string sysfs_root;
};

void fail(const std::string& msg) { std::fprintf(stderr, "numaheap stat: %s\n", msg.c_str()); }

int report_once(const StatOptions& o, const Topology& topo, const std::string& said) {
  std::vector<int> pids;
  if (o.pid > 0) pids.push_back(o.pid);
  else pids = find_qemu_processes(o.proc_root);
  std::vector<GuestStat> guests;
  for (int pid : pids) {
    auto g = read_guest_stat(o.proc_root, pid, topo);
    if (!g) {
      if (o.pid > 0) return fail(g.error().message.c_str()), kExitBadInput;
      // Unreadable (another user's qemu without root) or ended meanwhile:
      // say so, never leave it out silently.
      std::fprintf(stderr, "numaheap stat: skipped: %s\n", g.error().message.c_str());
      continue;
    }
    guests.push_back(std::move(*g));
  }
  std::string out;
  if (o.json) {
    nlohmann::ordered_json doc;
    doc["topology"] = said;
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& g : guests) list.push_back(guest_to_json(g));
    doc["guests"] = std::move(list);
    out = doc.dump(o.watch > 0 ? -1 : 2) + "\n";
  } else {
    if (guests.empty()) out = "no QEMU guests found\n";
    for (const auto& g : guests) out += render_guest_text(g);
    if (o.watch > 0) out += "\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? kExitOk : kExitBadInput;
}

int run_stat(const StatOptions& o, CLI::App* sub) {
  if (!sub->parsed()) return -1;
  std::string said;
  auto topo = resolve_topology(o.topology, o.sysfs_root, &said);
  if (!topo) return fail(topo.error().message.c_str()), kExitBadInput;
  std::fprintf(stderr, "numaheap stat: CPU -> node from %s\n", said.c_str());
  for (int n = 1;; ++n) {
    if (int rc = report_once(o, *topo, said); rc != kExitOk) return rc;
    if (o.watch <= 0 || (o.iterations > 0 && n >= o.iterations)) return kExitOk;
    ::usleep(static_cast<useconds_t>(o.watch * 1e6));
  }
}

}  // namespace

Runner add_stat_command(CLI::App& app) {
  auto o = std::make_shared<StatOptions>();
  CLI::App* sub = app.add_subcommand(
      "stat", "Show where running guests' memory is against where their vCPUs run (like numastat -p)");
  auto* pid = sub->add_option("--pid", o->pid, "One process (any VMM; vCPU threads found by name)")
                  ->check(CLI::PositiveNumber)
                  ->type_name("PID");
  auto* qemu = sub->add_flag("--qemu", o->qemu, "Every QEMU-like process (the default)");
  pid->excludes(qemu);
  qemu->excludes(pid);
  sub->add_flag("--json", o->json, "Print JSON (one line per report with --watch)");
  sub->add_option("--watch", o->watch, "Report again every S seconds")->check(CLI::PositiveNumber)->type_name("S");
  sub->add_option("--count", o->iterations, "With --watch: stop after N reports")
      ->check(CLI::PositiveNumber)
      ->type_name("N");
  sub->add_option("--topology", o->topology,
                  "CPU -> node map: numactl -H text, JSON, sysfs tree, or 'builtin' (default: this host)")
      ->type_name("PATH|builtin");
  sub->add_option("--proc-root", o->proc_root, "Read DIR/proc instead of /proc (recorded trees)")->type_name("DIR");
  sub->add_option("--sysfs-root", o->sysfs_root,
                  "Read the topology from DIR/sys/devices/system/node instead of this host")
      ->type_name("DIR");
  return [o, sub] { return run_stat(*o, sub); };
}

}  // namespace numaheap::tools
