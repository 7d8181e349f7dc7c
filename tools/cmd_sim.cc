// `numaheap sim [--topology PATH] (--scenario NAME | --trace FILE)
//               [--policy P]... [--seconds S] [--json] [--csv FILE]
//               [--plot FILE.svg|.png] [model options]`
//
// Runs the workload simulator (bench/sim, docs/simulator.md) and prints one
// line per policy: final and mean local-access ratio, mean access cost,
// pages migrated and bounced. Exit status: 0 done, 1 bad input or failure,
// 2 usage. Without --topology it simulates this host (`builtin` for the seed
// 4-node machine).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "bench/sim/sim.h"
#include "commands.h"
#include "numaheap/topology_io.h"
#include "topology_json.h"

namespace numaheap::tools {

namespace {

struct SimOptions {
  std::string topology;
  std::string scenario;
  std::string trace;
  std::vector<std::string> policies;
  std::string csv, plot;
  bool json = false;
  bool no_progress = false;
  bool sweep = false;
  bool follow_advice = false;
  sim::SimConfig config;
};

std::string model_footer(const sim::SimConfig& c);

void fail(const std::string& msg) { std::fprintf(stderr, "numaheap sim: %s\n", msg.c_str()); }

// Feeds a script to gnuplot (both plots); 0, or 1 with the reason on stderr.
int run_gnuplot(const std::string& script) {
  FILE* g = popen("gnuplot 2>&1", "w");
  if (!g) return fail("--plot: cannot run gnuplot"), 1;
  std::fwrite(script.data(), 1, script.size(), g);
  const int rc = pclose(g);
  if (rc != 0) return fail("--plot: gnuplot failed (exit status " + std::to_string(rc) + ")"), 1;
  return 0;
}

// A one-line bar on stderr, redrawn when the percentage changes.
class ProgressBar {
 public:
  explicit ProgressBar(bool on) : on_(on) {}
  void operator()(std::uint64_t done, std::uint64_t total) {
    if (!on_) return;
    const int pct = static_cast<int>(100 * done / total);
    if (pct == last_) return;
    last_ = pct;
    constexpr int kWidth = 40;
    const int fill = pct * kWidth / 100;
    std::fprintf(stderr, "\r  [%.*s%*s] %3d%%  period %llu/%llu", fill, "########################################",
                 kWidth - fill, "", pct, static_cast<unsigned long long>(done), static_cast<unsigned long long>(total));
    if (done == total) std::fprintf(stderr, "\r%*s\r", kWidth + 40, "");
    std::fflush(stderr);
  }

 private:
  bool on_;
  int last_ = -1;
};

nlohmann::json to_json(const sim::SimReport& r, const std::string& description) {
  nlohmann::json j;
  j["topology"] = r.topology;
  j["workload"] = r.workload;
  if (!description.empty()) j["description"] = description;
  j["periods"] = r.periods;
  j["guest_pages"] = r.guest_pages;
  j["config"] = {{"seconds", r.config.seconds},          {"period_ms", r.config.period_ms},
                 {"access_rate", r.config.access_rate},  {"local_ns", r.config.local_ns},
                 {"bandwidth_gb_s", r.config.bandwidth_gb_s}, {"page_overhead_us", r.config.page_overhead_us},
                 {"sample_us", r.config.sample_us},      {"node_bandwidth_gb_s", r.config.node_bandwidth_gb_s},
                 {"trace_weight", r.config.trace_weight},
                 {"split_page_cost", r.config.split_page_cost},
                 {"guest_scale", r.config.guest_scale},  {"seed", r.config.seed},
                 {"vcpu_move_us", r.config.vcpu_move_us}};
  nlohmann::json moves = nlohmann::json::array();
  for (const auto& m : r.vcpu_moves) moves.push_back({{"at_s", m.at_s}, {"guest", m.guest}, {"vcpu", m.vcpu}, {"node", m.node}});
  j["vcpu_moves"] = moves;
  nlohmann::json pol = nlohmann::json::object();
  for (const auto& p : r.policies)
    pol[p.name] = {{"local_ratio_final", p.local_ratio_final},
                   {"local_ratio_mean", p.local_ratio_mean},
                   {"access_cost_mean", p.access_cost_mean},
                   {"pages_migrated", p.pages_migrated},
                   {"bytes_migrated", p.bytes_migrated},
                   {"pages_bounced", p.pages_bounced},
                   {"moves_failed", p.moves_failed},
                   {"samples_used", p.samples_used},
                   {"migration_seconds", p.migration_seconds},
                   {"move_ops", p.move_ops},
                   {"cost_placement", p.cost_placement},
                   {"cost_moves", p.cost_moves},
                   {"cost_samples", p.cost_samples},
                   {"cost_contention", p.cost_contention},
                   {"cost_split", p.cost_split},
                   {"blocks_moved_whole", p.blocks_moved_whole},
                   {"blocks_split", p.blocks_split},
                   {"blocks_coalesced", p.blocks_coalesced},
                   {"split_pages_final", p.split_pages_final},
                   {"min_free_pages", p.min_free_pages},
                   {"vcpu_advice", p.vcpu_advice},
                   {"vcpus_moved", p.vcpus_moved},
                   {"local_ratio", p.local_ratio},
                   {"access_cost", p.access_cost},
                   {"mib_moved", p.mib_moved}};
  j["policies"] = pol;
  return j;
}

std::string to_csv(const sim::SimReport& r) {
  std::ostringstream o;
  o << "time_s";
  for (const auto& p : r.policies) o << ',' << p.name << "_local_ratio";
  for (const auto& p : r.policies) o << ',' << p.name << "_access_cost";
  for (const auto& p : r.policies) o << ',' << p.name << "_mib_moved";
  o << '\n';
  const double period_s = r.config.period_ms / 1000.0;
  for (std::uint64_t k = 0; k < r.periods; ++k) {
    o << static_cast<double>(k + 1) * period_s;
    for (const auto& p : r.policies) o << ',' << p.local_ratio[k];
    for (const auto& p : r.policies) o << ',' << p.access_cost[k];
    for (const auto& p : r.policies) o << ',' << p.mib_moved[k];
    o << '\n';
  }
  return o.str();
}

// One line: who is cheapest among the real policies, and how far numaheap
// is from it and from the oracle.
std::string verdict(const sim::SimReport& r) {
  const sim::PolicyResult *best = nullptr, *nh = nullptr, *oracle = nullptr;
  for (const auto& p : r.policies) {
    if (p.name == "oracle") { oracle = &p; continue; }
    if (p.name == "numaheap") nh = &p;
    if (!best || p.access_cost_mean < best->access_cost_mean - 1e-12 ||
        (p.name == "numaheap" && p.access_cost_mean <= best->access_cost_mean + 1e-12))
      best = &p;
  }
  if (!best) return {};
  char line[320];
  if (nh && best == nh) {
    const sim::PolicyResult* second = nullptr;
    for (const auto& p : r.policies)
      if (&p != nh && p.name != "oracle" && (!second || p.access_cost_mean < second->access_cost_mean)) second = &p;
    std::snprintf(line, sizeof line, "\n  verdict: numaheap is cheapest (%.3f per access", nh->access_cost_mean);
    std::string out = line;
    if (second) {
      std::snprintf(line, sizeof line, "; next %s at %.3f", second->name.c_str(), second->access_cost_mean);
      out += line;
    }
    out += ")";
    if (oracle) {
      std::snprintf(line, sizeof line, ", %.1f%% above the oracle's bound", 100 * (nh->access_cost_mean / oracle->access_cost_mean - 1));
      out += line;
    }
    return out + "\n";
  }
  std::snprintf(line, sizeof line, "\n  verdict: %s is cheapest here (%.3f per access)", best->name.c_str(), best->access_cost_mean);
  std::string out = line;
  if (nh) {
    std::snprintf(line, sizeof line, "; numaheap %.3f, %.1f%% more", nh->access_cost_mean,
                  100 * (nh->access_cost_mean / best->access_cost_mean - 1));
    out += line;
  }
  return out + "\n";
}

// The migrator's vCPU advice (Migrator::set_vcpu_advice), one line per
// numaheap lane that got any: how many records, and with numaheap-follow
// what following them cost in the same model.
std::string advice_lines(const sim::SimReport& r) {
  std::string out;
  char line[320];
  const sim::PolicyResult* follow = nullptr;
  for (const auto& p : r.policies)
    if (p.name == sim::kFollowPolicy) follow = &p;
  for (const auto& p : r.policies) {
    if (p.vcpu_advice == 0) continue;
    if (&p == follow) {
      std::snprintf(line, sizeof line,
                    "  vCPU advice: %s followed it -- %llu vCPU moves at %g us each instead of the memory moves; "
                    "cost/access %.3f\n",
                    p.name.c_str(), static_cast<unsigned long long>(p.vcpus_moved), r.config.vcpu_move_us,
                    p.access_cost_mean);
    } else {
      std::snprintf(line, sizeof line,
                    "  vCPU advice: %s advised moving vCPUs to their memory %llu times (reported, not followed%s)\n",
                    p.name.c_str(), static_cast<unsigned long long>(p.vcpu_advice),
                    follow ? "" : "; --follow-advice adds a lane that follows it");
    }
    out += line;
  }
  return out;
}

std::string text_report(const sim::SimReport& r, const std::string& description) {
  char line[256];
  std::string out;
  std::snprintf(line, sizeof line, "numaheap sim: %s on %s: %llu periods of %g ms, %llu MiB of guest memory\n",
                r.workload.c_str(), r.topology.c_str(), static_cast<unsigned long long>(r.periods), r.config.period_ms,
                static_cast<unsigned long long>(r.guest_pages >> 8));
  out += line;
  if (!description.empty()) out += "  " + description + "\n";
  // One line per (time, guest, node): "t=30s: guest 0 vCPUs 0,1,2,3 -> node 2".
  for (std::size_t i = 0; i < r.vcpu_moves.size();) {
    const auto& m = r.vcpu_moves[i];
    std::string vcpus;
    std::size_t j = i;
    for (; j < r.vcpu_moves.size() && r.vcpu_moves[j].at_s == m.at_s && r.vcpu_moves[j].guest == m.guest &&
           r.vcpu_moves[j].node == m.node;
         ++j)
      vcpus += (vcpus.empty() ? "" : ",") + std::to_string(r.vcpu_moves[j].vcpu);
    std::snprintf(line, sizeof line, "  t=%gs: guest %u vCPU%s %s -> node %u\n", m.at_s, m.guest,
                  j - i > 1 ? "s" : "", vcpus.c_str(), m.node);
    out += line;
    i = j;
  }
  int width = 9;  // the policy column: its longest name (numaheap-follow)
  for (const auto& p : r.policies) width = std::max(width, static_cast<int>(p.name.size()));
  std::snprintf(line, sizeof line, "\n  %-*s  local(final)  local(mean)  cost/access  pages moved  MiB moved  bounced  refused  min free MiB\n",
                width, "policy");
  out += line;
  out += "  (higher is better: local, min free; lower is better: cost/access, pages and MiB moved, bounced, refused)\n";
  for (const auto& p : r.policies) {
    std::snprintf(line, sizeof line, "  %-*s  %11.1f%%  %10.1f%%  %11.3f  %11llu  %9.1f  %7llu  %7llu  %12.1f\n",
                  width, p.name.c_str(), 100 * p.local_ratio_final, 100 * p.local_ratio_mean, p.access_cost_mean,
                  static_cast<unsigned long long>(p.pages_migrated), static_cast<double>(p.bytes_migrated) / 1048576.0,
                  static_cast<unsigned long long>(p.pages_bounced), static_cast<unsigned long long>(p.moves_failed),
                  static_cast<double>(p.min_free_pages) / 256.0);
    out += line;
  }
  out += verdict(r);
  out += advice_lines(r);
  out += "\n  cost/access: distance/10 per access (1 = local) plus moves, samples and contention, in local accesses;\n"
         "  bounced: pages moved more than once; refused: moves asked for that the host refused (no free frame\n"
         "  on the target, page busy); min free: the fullest node's free memory during the run;\n"
         "  oracle: knows each period's accesses in advance and moves for free -- a bound, not a policy\n";
  out += model_footer(r.config);
  return out;
}

// Every parameter of the cost model, so a table can be reproduced.
std::string model_footer(const sim::SimConfig& c) {
  char line[512];
  std::snprintf(line, sizeof line,
                "  model: local access %g ns, copy %g GB/s, per-page overhead %g us, sample (hinting fault) %g us,\n"
                "         node memory bandwidth %g GB/s, split-page cost %g, period %g ms, %g accesses/vCPU/s,\n"
                "         guest scale %g, seed %llu, vCPU move %g us (vCPU advice)\n",
                c.local_ns, c.bandwidth_gb_s, c.page_overhead_us, c.sample_us, c.node_bandwidth_gb_s, c.split_page_cost,
                c.period_ms, c.access_rate, c.guest_scale, static_cast<unsigned long long>(c.seed), c.vcpu_move_us);
  return line;
}

bool write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
  f.close();
  return static_cast<bool>(f);
}

// Draws the local-access ratio over time per policy with gnuplot; the data
// goes inline (a datablock), so no temporary file.
int plot(const sim::SimReport& r, const std::string& path) {
  const bool png = path.size() > 4 && path.compare(path.size() - 4, 4, ".png") == 0;
  const bool svg = path.size() > 4 && path.compare(path.size() - 4, 4, ".svg") == 0;
  if (!png && !svg) return fail("--plot: the file name must end in .svg or .png"), 1;
  if (path.find_first_of("'\n\r\\") != std::string::npos)
    return fail("--plot: the file name may not contain quotes, backslashes or line breaks"), 1;
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    return fail("--plot needs gnuplot (Debian: apt-get install gnuplot-nox)"), 1;
  std::string title = r.workload + " on " + r.topology;
  for (char& c : title)
    if (c == '"' || c == '\\' || c == '\n') c = ' ';
  // Three panels over time: local ratio, cumulative MiB moved, cost per
  // access; a dashed line at each vCPU move; white background.
  std::ostringstream s;
  const std::size_t n = r.policies.size();
  s << "set terminal " << (png ? "pngcairo size 1000,900 background '#ffffff'" : "svg size 1000,900 dynamic background '#ffffff'")
    << " font 'sans,12'\n"
    << "set output '" << path << "'\n"
    << "set datafile separator ','\n$data << EOD\n"
    << to_csv(r) << "EOD\n"
    << "set multiplot layout 3,1 title \"" << title << "\" noenhanced\n"
    << "set key outside right\nset grid\nset lmargin 12\nset rmargin 20\n";
  std::vector<double> marks;
  for (const auto& m : r.vcpu_moves)
    if (marks.empty() || marks.back() != m.at_s) marks.push_back(m.at_s);
  auto markers = [&](const char* label) {
    s << "unset arrow\nunset label\n";
    for (double t : marks)
      s << "set arrow from " << t << ", graph 0 to " << t << ", graph 1 nohead dt 2 lc rgb '#444444'\n"
        << "set label '" << label << "' at " << t << ", graph 0.95 offset 0.5,0 font 'sans,10'\n";
  };
  auto panel = [&](const char* ylabel, std::size_t column0, const char* scale, const char* extra, bool xlabel) {
    s << "set ylabel '" << ylabel << "'\n" << extra << (xlabel ? "set xlabel 'simulated time (s)'\n" : "unset xlabel\n");
    markers("vCPU move");
    s << "plot ";
    for (std::size_t i = 0; i < n; ++i)
      s << (i ? ", " : "") << "$data using 1:($" << column0 + i << scale << ") with lines lw 2 title '"
        << r.policies[i].name << "'";
    s << "\n";
  };
  panel("local, higher is better", 2, "*100", "set yrange [0:105]\nset format y '%.0f%%'\n", false);
  panel("MiB moved, lower is better", 2 + 2 * n, "", "set autoscale y\nset format y '%g'\n", false);
  panel("cost/access, lower is better", 2 + n, "", "set autoscale y\nset format y '%.2f'\n", true);
  s << "unset multiplot\n";
  return run_gnuplot(s.str());
}

// ---- --sweep: where each policy wins over the cost model's two main knobs ----

struct SweepPoint {
  std::string scenario;
  double bandwidth_gb_s = 0, page_overhead_us = 0;
  std::vector<std::pair<std::string, double>> cost;  // per policy, mean access cost
  std::string winner;                                 // cheapest real policy (not the oracle)
};

const std::vector<double>& sweep_bandwidths() {
  static const std::vector<double> v{1, 2, 5, 10, 20};
  return v;
}
const std::vector<double>& sweep_overheads() {
  static const std::vector<double> v{0.5, 1, 2, 4, 8};
  return v;
}

std::string sweep_table(const std::vector<SweepPoint>& pts, const std::string& topology, const sim::SimConfig& c) {
  std::string out = "numaheap sim --sweep on " + topology +
                    ": the cheapest policy (mean access cost, lower is better; the oracle left out)\n"
                    "  cell: winner, then numaheap's cost relative to the winner's (+0.0% = numaheap wins or ties)\n";
  char line[256];
  std::string scenario;
  for (std::size_t i = 0; i < pts.size(); ++i) {
    const SweepPoint& p = pts[i];
    if (p.scenario != scenario) {
      scenario = p.scenario;
      out += "\n  " + scenario + "\n  overhead \\ copy GB/s";
      for (double b : sweep_bandwidths()) {
        std::snprintf(line, sizeof line, " %17g", b);
        out += line;
      }
    }
    if (p.bandwidth_gb_s == sweep_bandwidths().front()) {
      std::snprintf(line, sizeof line, "\n  %8g us          ", p.page_overhead_us);
      out += line;
    }
    double nh = 0, best = 0;
    for (const auto& [n, v] : p.cost) {
      if (n == "numaheap") nh = v;
      if (n == p.winner) best = v;
    }
    std::snprintf(line, sizeof line, " %9s %+6.1f%%", p.winner.c_str(), best > 0 ? 100 * (nh / best - 1) : 0.0);
    out += line;
  }
  std::uint64_t wins = 0;
  for (const auto& p : pts) wins += p.winner == "numaheap";
  std::snprintf(line, sizeof line, "\n\n  numaheap is cheapest (or tied) at %llu of %zu points\n",
                static_cast<unsigned long long>(wins), pts.size());
  out += line;
  char foot[512];
  std::snprintf(foot, sizeof foot,
                "  model: local access %g ns, copy and per-page overhead swept, sample (hinting fault) %g us,\n"
                "         node memory bandwidth %g GB/s, split-page cost %g, period %g ms, %g s, %g accesses/vCPU/s,\n"
                "         guest scale %g, seed %llu\n",
                c.local_ns, c.sample_us, c.node_bandwidth_gb_s, c.split_page_cost, c.period_ms, c.seconds, c.access_rate,
                c.guest_scale, static_cast<unsigned long long>(c.seed));
  out += foot;
  return out;
}

nlohmann::json sweep_json(const std::vector<SweepPoint>& pts, const std::string& topology, const sim::SimConfig& c) {
  nlohmann::json j;
  j["topology"] = topology;
  j["config"] = {{"seconds", c.seconds},       {"period_ms", c.period_ms},       {"access_rate", c.access_rate},
                 {"local_ns", c.local_ns},     {"sample_us", c.sample_us},       {"node_bandwidth_gb_s", c.node_bandwidth_gb_s},
                 {"split_page_cost", c.split_page_cost},
                 {"guest_scale", c.guest_scale}, {"seed", c.seed}};
  j["bandwidths_gb_s"] = sweep_bandwidths();
  j["page_overheads_us"] = sweep_overheads();
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& p : pts) {
    nlohmann::json cost = nlohmann::json::object();
    for (const auto& [n, v] : p.cost) cost[n] = v;
    arr.push_back({{"scenario", p.scenario},
                   {"bandwidth_gb_s", p.bandwidth_gb_s},
                   {"page_overhead_us", p.page_overhead_us},
                   {"access_cost_mean", cost},
                   {"winner", p.winner}});
  }
  j["points"] = arr;
  return j;
}

// One panel per scenario: the grid on log axes, a point per cell coloured
// by the winner and labelled with numaheap's cost relative to it.
int sweep_plot(const std::vector<SweepPoint>& pts, const std::vector<std::string>& scenarios,
               const std::vector<std::string>& policies, const std::string& path) {
  if (path.size() <= 4 || path.compare(path.size() - 4, 4, ".svg") != 0)
    return fail("--plot with --sweep: the file name must end in .svg"), 1;
  if (path.find_first_of("'\n\r\\") != std::string::npos)
    return fail("--plot: the file name may not contain quotes, backslashes or line breaks"), 1;
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    return fail("--plot needs gnuplot (Debian: apt-get install gnuplot-nox)"), 1;
  static const char* colours[] = {"#999999", "#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd"};
  std::ostringstream s;
  const std::size_t cols = scenarios.size() > 1 ? 2 : 1, rows = (scenarios.size() + cols - 1) / cols;
  s << "set terminal svg size " << 560 * cols << "," << 440 * rows + 40 << " dynamic background '#ffffff' font 'sans,11'\n"
    << "set output '" << path << "'\n"
    << "set multiplot layout " << rows << "," << cols
    << " title 'Cheapest policy per point (label: numaheap vs the winner, lower is better)'\n"
    << "set logscale xy\nset xrange [0.7:28]\nset yrange [0.35:11.5]\n"
    << "set xlabel 'migration copy bandwidth (GB/s)'\nset ylabel 'per-page overhead (us)'\n"
    << "set xtics (1, 2, 5, 10, 20)\nset ytics (0.5, 1, 2, 4, 8)\nset key outside bottom center horizontal\n";
  for (const std::string& sc : scenarios) {
    s << "set title '" << sc << "'\n$d << EOD\n";
    for (const auto& p : pts) {
      if (p.scenario != sc) continue;
      std::size_t wi = 0;
      for (std::size_t i = 0; i < policies.size(); ++i)
        if (policies[i] == p.winner) wi = i;
      double nh = 0, best = 0;
      for (const auto& [n, v] : p.cost) {
        if (n == "numaheap") nh = v;
        if (n == p.winner) best = v;
      }
      char line[160];
      std::snprintf(line, sizeof line, "%g %g %zu %+.1f%%\n", p.bandwidth_gb_s, p.page_overhead_us, wi,
                    best > 0 ? 100 * (nh / best - 1) : 0.0);
      s << line;
    }
    s << "EOD\nplot ";
    bool first = true;
    for (std::size_t i = 0; i < policies.size(); ++i) {
      if (policies[i] == "oracle") continue;
      s << (first ? "" : ", ") << "$d using 1:($3==" << i << "?$2:1/0) with points pt 5 ps 3.5 lc rgb '"
        << colours[i % 6] << "' title '" << policies[i] << "'";
      first = false;
    }
    s << ", $d using 1:2:4 with labels offset 0,-1.6 font 'sans,9' notitle\n";
  }
  s << "unset multiplot\n";
  return run_gnuplot(s.str());
}

int run_sweep(SimOptions& o, const Topology& topo) {
  std::vector<std::string> scenarios;
  if (!o.scenario.empty())
    scenarios.push_back(o.scenario);
  else
    scenarios = sim::scenario_names();
  std::vector<SweepPoint> pts;
  const std::size_t total = scenarios.size() * sweep_bandwidths().size() * sweep_overheads().size();
  ProgressBar bar(!o.no_progress && isatty(STDERR_FILENO));
  for (const std::string& sc : scenarios) {
    for (double ov : sweep_overheads()) {
      for (double bw : sweep_bandwidths()) {
        sim::SimConfig c = o.config;
        c.bandwidth_gb_s = bw;
        c.page_overhead_us = ov;
        auto w = sim::make_scenario(sc, topo, c);
        if (!w) return fail(w.error().message), 1;
        auto rep = sim::run(topo, **w, c, o.policies);
        if (!rep) return fail(rep.error().message), 1;
        SweepPoint p;
        p.scenario = sc;
        p.bandwidth_gb_s = bw;
        p.page_overhead_us = ov;
        double best = 0;
        for (const auto& r : rep->policies) {
          p.cost.push_back({r.name, r.access_cost_mean});
          if (r.name == "oracle") continue;
          // Ties go to numaheap (it is listed after the baselines it ties).
          if (p.winner.empty() || r.access_cost_mean < best - 1e-12 ||
              (r.name == "numaheap" && r.access_cost_mean <= best + 1e-12))
            p.winner = r.name, best = r.access_cost_mean;
        }
        pts.push_back(std::move(p));
        bar(pts.size(), total);
      }
    }
  }
  if (!o.plot.empty() && sweep_plot(pts, scenarios, o.policies, o.plot) != 0) return 1;
  if (o.json)
    std::printf("%s\n", sweep_json(pts, topo.source(), o.config).dump(2).c_str());
  else
    std::fputs(sweep_table(pts, topo.source(), o.config).c_str(), stdout);
  return 0;
}

int run_sim(SimOptions& o, CLI::App* sub) {
  if (!sub->parsed()) return -1;
  if (o.sweep && !o.trace.empty()) return fail("--sweep runs the scenarios; it does not take --trace"), 1;
  if (!o.sweep && o.scenario.empty() && o.trace.empty()) return fail("give --scenario NAME or --trace FILE"), 1;
  std::string said;
  Result<Topology, Error> topo = resolve_topology(o.topology, "", &said);
  if (!topo) return fail(topo.error().message.c_str()), 1;
  if (o.topology.empty()) std::fprintf(stderr, "numaheap sim: topology of %s\n", said.c_str());
  if (std::string bad = sim::validate(o.config); !bad.empty()) return fail(bad), 1;
  if (o.policies.empty()) o.policies = sim::policy_names();
  if (o.follow_advice && std::find(o.policies.begin(), o.policies.end(), sim::kFollowPolicy) == o.policies.end()) {
    // Next to numaheap (before the oracle), so the two read side by side.
    auto at = std::find(o.policies.begin(), o.policies.end(), "numaheap");
    o.policies.insert(at == o.policies.end() ? o.policies.end() : at + 1, sim::kFollowPolicy);
  }
  if (o.sweep) {
    if (!o.csv.empty()) return fail("--sweep writes no --csv (use --json)"), 1;
    return run_sweep(o, *topo);
  }
  Result<std::unique_ptr<sim::Workload>, Error> w = Error{Errc::invalid_argument, ""};
  std::string description;
  if (!o.trace.empty()) {
    auto t = sim::load_trace(o.trace);
    if (!t) return fail(t.error().message), 1;
    w = sim::make_trace_workload(std::move(*t), *topo, o.config);
  } else {
    w = sim::make_scenario(o.scenario, *topo, o.config);
    description = sim::scenario_description(o.scenario);
  }
  if (!w) {
    std::string msg = w.error().message.c_str();
    if (o.topology.empty()) msg += " (on this host; --topology builtin simulates the seed 4-node machine)";
    return fail(msg), 1;
  }
  ProgressBar bar(!o.no_progress && isatty(STDERR_FILENO));
  auto rep = sim::run(*topo, **w, o.config, o.policies, [&](std::uint64_t d, std::uint64_t t) { bar(d, t); });
  if (!rep) return fail(rep.error().message), 1;
  if (!o.csv.empty() && !write_file(o.csv, to_csv(*rep))) return fail("cannot write " + o.csv), 1;
  if (!o.plot.empty() && plot(*rep, o.plot) != 0) return 1;
  if (o.json)
    std::printf("%s\n", to_json(*rep, description).dump(2).c_str());
  else
    std::fputs(text_report(*rep, description).c_str(), stdout);
  return 0;
}

}  // namespace

Runner add_sim_command(CLI::App& app) {
  auto o = std::make_shared<SimOptions>();
  CLI::App* sub = app.add_subcommand("sim", "Simulate guests on a topology and compare migration policies");
  std::string scenarios, policies;
  for (const auto& s : sim::scenario_names()) scenarios += (scenarios.empty() ? "" : ", ") + s;
  for (const auto& p : sim::policy_names()) policies += (policies.empty() ? "" : ", ") + p;
  sub->add_option("--topology", o->topology,
                  "numactl -H text, sysfs root, JSON, or 'builtin' (the seed 4-node machine); "
                  "default: this host");
  auto* sc = sub->add_option("--scenario", o->scenario, "synthetic scenario: " + scenarios);
  auto* tr = sub->add_option("--trace", o->trace, "replay an access trace (docs/simulator.md)");
  sc->excludes(tr);
  tr->excludes(sc);
  sub->add_option("--policy", o->policies,
                  "policies to compare (repeat or comma-separate; default all: " + policies + "; also " +
                      sim::kFollowPolicy + ")")
      ->delimiter(',');
  sub->add_option("--seconds", o->config.seconds, "simulated seconds (default 60)");
  sub->add_option("--period-ms", o->config.period_ms, "sampling and policy period (default 1000)");
  sub->add_option("--access-rate", o->config.access_rate,
                  "memory accesses per vCPU per simulated second in scenarios (default 5e6)");
  sub->add_option("--local-ns", o->config.local_ns, "time of one local access, for migration cost (default 100)");
  sub->add_option("--bandwidth-gbs", o->config.bandwidth_gb_s, "copy bandwidth of a migration, GB/s (default 8)");
  sub->add_option("--page-overhead-us", o->config.page_overhead_us,
                  "fixed cost of one move (page-table update, TLB shoot-down, fault), us (default 3.7)");
  sub->add_option("--sample-us", o->config.sample_us, "cost of one sample (a hinting fault), us (default 1)");
  sub->add_option("--node-bandwidth-gbs", o->config.node_bandwidth_gb_s,
                  "memory bandwidth of a node, shared by guests and copies, GB/s (default 40)");
  sub->add_option("--split-page-cost", o->config.split_page_cost,
                  "extra cost of an access through a 4 KiB mapping (a split 2 MiB block), in local accesses "
                  "(default 0.05; 0: huge pages cost nothing)");
  sub->add_option("--trace-weight", o->config.trace_weight, "accesses one trace line stands for (default 1)");
  sub->add_option("--guest-scale", o->config.guest_scale, "scale the scenario guests' sizes, (0, 1] (default 1)");
  sub->add_option("--seed", o->config.seed, "random seed of the scenarios' first-access draws (default 1)");
  sub->add_option("--vcpu-move-us", o->config.vcpu_move_us,
                  "cost of moving one vCPU to another node, for the migrator's vCPU advice and numaheap-follow, us "
                  "(default 1000)");
  sub->add_flag("--follow-advice", o->follow_advice,
                "add the numaheap-follow lane: numaheap whose embedder moves vCPUs to their memory when the "
                "migrator advises it");
  sub->add_flag("--json", o->json, "print the report as JSON");
  sub->add_option("--csv", o->csv, "write local ratio and cost per period to FILE");
  sub->add_option("--plot", o->plot, "draw local ratio over time to FILE.svg or FILE.png (gnuplot)");
  sub->add_flag("--sweep", o->sweep,
                "run the scenarios (or --scenario) over copy bandwidth 1-20 GB/s and per-page overhead 0.5-8 us "
                "and show where each policy wins (table, --json, --plot FILE.svg)");
  sub->add_flag("--no-progress", o->no_progress, "no progress bar on a terminal");
  return [o, sub] { return run_sim(*o, sub); };
}

}  // namespace numaheap::tools
