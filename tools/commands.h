// Subcommands of the `numaheap` command. Each registers its options on the
// CLI11 app and returns the function that runs it (exit status).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace numaheap::tools {

using Runner = std::function<int()>;

Runner add_topology_command(CLI::App& app);
Runner add_place_command(CLI::App& app);
Runner add_sim_command(CLI::App& app);

}  // namespace numaheap::tools
