// The `numaheap` command: topology inspection, guest placement and the
// workload simulator.
#include <cstdio>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"numaheap: NUMA-aware page allocator and page migrator"};
  app.require_subcommand(1);
  std::vector<numaheap::tools::Runner> runners;
  runners.push_back(numaheap::tools::add_topology_command(app));
  runners.push_back(numaheap::tools::add_place_command(app));
  runners.push_back(numaheap::tools::add_sim_command(app));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& run : runners)
    if (run) {
      int rc = run();
      if (rc >= 0) return rc;
    }
  return 0;
}
