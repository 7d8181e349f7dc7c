// The `numaheap` command: topology inspection, guest placement, the workload
// simulator and per-guest NUMA statistics.
//
// Exit status, the same for every subcommand (tools/commands.h):
//   0 ok, 1 bad input (or a failure reading it), 2 usage (unknown option,
//   missing subcommand, conflicting options), 3 did not fit (place).
#include <cstdio>
#include <iostream>
#include <vector>

#include "commands.h"

#include "numaheap/version.h"

int main(int argc, char** argv) {
  using namespace numaheap::tools;
  CLI::App app{"numaheap: NUMA-aware page allocator and page migrator"};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", std::string("numaheap ") + NUMAHEAP_VERSION_STRING,
                       "Print the version and exit");
  app.footer(
      "Exit status: 0 ok, 1 bad input, 2 usage, 3 did not fit (place).\n"
      "See numaheap(1) and README.md.");
  std::vector<Runner> runners;
  runners.push_back(add_topology_command(app));
  runners.push_back(add_place_command(app));
  runners.push_back(add_sim_command(app));
  runners.push_back(add_stat_command(app));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (106, 109, ...) mean nothing to a script: every
    // command-line mistake is a usage error.
    app.exit(e);
    return kExitUsage;
  }
  if (app.get_subcommands().empty()) {
    std::cerr << app.help();
    return kExitUsage;
  }
  for (auto& run : runners)
    if (run) {
      int rc = run();
      if (rc >= 0) return rc;
    }
  return kExitOk;
}
