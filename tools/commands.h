// Subcommands of the `numaheap` command. Each registers its options on the
// CLI11 app and returns the function that runs it (exit status, or -1 when
// its subcommand was not the one given).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace numaheap::tools {

// Exit status of every subcommand (README "The command", numaheap(1)).
inline constexpr int kExitOk = 0;
inline constexpr int kExitBadInput = 1;  // bad file, bad value, unreadable source
inline constexpr int kExitUsage = 2;     // command-line errors (CLI11 parse errors)
inline constexpr int kExitNoFit = 3;     // place: some guest did not fit

using Runner = std::function<int()>;

Runner add_topology_command(CLI::App& app);
Runner add_place_command(CLI::App& app);
Runner add_sim_command(CLI::App& app);
Runner add_stat_command(CLI::App& app);

}  // namespace numaheap::tools
