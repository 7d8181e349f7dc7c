// numaheap-vmcompare: checks and gathers minivmm's JSON results for
// tests/vm/compare.sh (host side; nlohmann-json, no jq needed).
//
//   numaheap-vmcompare --check FILE...
//       each FILE must be one minivmm result with every key compare.sh
//       reads, of the right type; exit 0 if all are, 1 otherwise.
//   numaheap-vmcompare --merge OUT --numaheap A --autonuma B --none C
//                      [--plot-data PREFIX] [--assert-bar] [--min-final R]
//       writes {"runs": {"numaheap": A, "autonuma": B, "none": C}} plus
//       "bar" (issue 14's bar, evaluated for the run's workload) to OUT,
//       prints a table and the bar, and PREFIX-MODE.dat (t, local ratio) for
//       gnuplot. Exit 0; 1 when a result is missing or invalid; with
//       --assert-bar, 3 when the bar does not hold; with --min-final R, 4
//       when numaheap's own result falls short whatever Linux did: its final
//       local ratio under R, or 90% never reached (a regression guard: the
//       bar compares with Linux, which on memfd RAM barely moves).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

using nlohmann::json;

namespace {

const char* const kModes[] = {"numaheap", "autonuma", "none"};

// The first problem with a minivmm result, or empty.
std::string problem(const json& r) {
  if (!r.is_object()) return "not a JSON object";
  for (const char* k : {"local_ratio_final", "local_ratio_mean", "throughput_accesses_per_s", "seconds"})
    if (!r.contains(k) || !r[k].is_number()) return std::string(k) + " missing or not a number";
  for (const char* k : {"pages_migrated", "pages_bounced", "data_errors", "pages"})
    if (!r.contains(k) || !r[k].is_number_unsigned()) return std::string(k) + " missing or not a count";
  if (!r.contains("time_to_90_local_s") || !(r["time_to_90_local_s"].is_null() || r["time_to_90_local_s"].is_number()))
    return "time_to_90_local_s missing (null when never reached)";
  for (const char* k : {"mode", "workload"})
    if (!r.contains(k) || !r[k].is_string()) return std::string(k) + " missing";
  if (!r.contains("series") || !r["series"].is_array() || r["series"].empty()) return "series missing or empty";
  for (const json& p : r["series"])
    if (!p.is_array() || p.size() < 3 || !p[1].is_number() || p[1] < 0 || p[1] > 1) return "bad series point";
  if (r["local_ratio_final"] < 0 || r["local_ratio_final"] > 1) return "local_ratio_final outside 0..1";
  if (r["data_errors"] != 0) return "data_errors " + r["data_errors"].dump() + ": pages lost writes";
  return {};
}

std::optional<json> load(const std::string& path, std::string& why) {
  std::ifstream in(path);
  if (!in) {
    why = path + ": cannot open";
    return std::nullopt;
  }
  json r = json::parse(in, nullptr, false);
  if (r.is_discarded()) {
    why = path + ": not valid JSON";
    return std::nullopt;
  }
  if (std::string p = problem(r); !p.empty()) {
    why = path + ": " + p;
    return std::nullopt;
  }
  return r;
}

std::string cell(const json& v, int decimals = 3) {
  if (v.is_null()) return "never";
  if (v.is_number_unsigned()) return std::to_string(v.get<std::uint64_t>());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v.get<double>());
  return buf;
}

int usage() {
  std::fprintf(stderr,
               "usage: numaheap-vmcompare --check FILE...\n"
               "       numaheap-vmcompare --merge OUT --numaheap A --autonuma B --none C [--plot-data PREFIX] "
               "[--assert-bar] [--min-final R]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && !std::strcmp(argv[1], "--check")) {
    int bad = 0;
    for (int i = 2; i < argc; ++i) {
      std::string why;
      if (!load(argv[i], why)) {
        std::fprintf(stderr, "numaheap-vmcompare: %s\n", why.c_str());
        ++bad;
      }
    }
    return bad ? 1 : 0;
  }
  std::string out_path, plot_prefix, in[3];
  bool assert_bar = false;
  double min_final = -1;  // --min-final: off
  for (int i = 1; i < argc; ++i) {
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (!std::strcmp(argv[i], "--merge")) out_path = value();
    else if (!std::strcmp(argv[i], "--numaheap")) in[0] = value();
    else if (!std::strcmp(argv[i], "--autonuma")) in[1] = value();
    else if (!std::strcmp(argv[i], "--none")) in[2] = value();
    else if (!std::strcmp(argv[i], "--plot-data")) plot_prefix = value();
    else if (!std::strcmp(argv[i], "--assert-bar")) assert_bar = true;
    else if (!std::strcmp(argv[i], "--min-final")) {
      const std::string v = value();
      char* end = nullptr;
      min_final = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(min_final >= 0 && min_final <= 1)) {
        std::fprintf(stderr, "numaheap-vmcompare: --min-final wants a ratio in [0, 1], not '%s'\n", v.c_str());
        return 2;
      }
    } else return usage();
  }
  if (out_path.empty() || in[0].empty() || in[1].empty() || in[2].empty()) return usage();
  json all;
  for (int m = 0; m < 3; ++m) {
    std::string why;
    auto r = load(in[m], why);
    if (!r) {
      std::fprintf(stderr, "numaheap-vmcompare: %s run: %s\n", kModes[m], why.c_str());
      return 1;
    }
    all["runs"][kModes[m]] = *r;
  }
  const json& nh = all["runs"]["numaheap"];
  const json& lx = all["runs"]["autonuma"];
  const std::string workload = nh["workload"];

  std::printf("%-10s %12s %12s %12s %10s %10s %14s\n", "mode", "to 90% (s)", "local final", "local mean",
              "migrated", "bounced", "accesses/s");
  for (const char* m : kModes) {
    const json& r = all["runs"][m];
    std::printf("%-10s %12s %12s %12s %10s %10s %14s\n", m, cell(r["time_to_90_local_s"], 2).c_str(),
                cell(r["local_ratio_final"]).c_str(), cell(r["local_ratio_mean"]).c_str(),
                cell(r["pages_migrated"]).c_str(), cell(r["pages_bounced"]).c_str(),
                cell(r["throughput_accesses_per_s"], 0).c_str());
  }

  // Where numaheap's time went (minivmm's timeline summary), and its own
  // move counter next to the kernel's (pages_migrated, every mode).
  if (nh.contains("numaheap") && nh["numaheap"].is_object()) {
    const json& d = nh["numaheap"];
    auto get = [&](const json& o, const char* k) { return o.contains(k) ? o[k] : json(nullptr); };
    std::printf("numaheap: asked-and-moved %s pages (kernel: %s), samples %s at %s us, bursts %s",
                cell(get(d, "pages_moved")).c_str(), cell(nh["pages_migrated"]).c_str(), cell(get(d, "samples")).c_str(),
                get(d, "ns_per_sample").is_number() ? cell(d["ns_per_sample"].get<double>() / 1000, 0).c_str() : "?",
                cell(get(d, "bursts")).c_str());
    if (nh.contains("after_move") && nh["after_move"].is_object())
      std::printf(", after the move: first moved-vCPU sample %s s, first page followed %s s",
                  cell(get(nh["after_move"], "first_moved_vcpu_sample_s"), 2).c_str(),
                  cell(get(nh["after_move"], "first_follow_s"), 2).c_str());
    std::printf("\n");
  }

  // Issue 14's bar, numaheap against Linux's NUMA balancing ("never" is later
  // than any time).
  json bar = json::object();
  auto later = [](const json& a, const json& b) {  // a reaches 90% later than b
    if (a.is_null()) return !b.is_null();
    return !b.is_null() && a.get<double>() > b.get<double>();
  };
  if (workload == "vcpu-move") {
    bar["time_to_90_no_later"] = !later(nh["time_to_90_local_s"], lx["time_to_90_local_s"]);
    bar["local_ratio_final_at_least"] = nh["local_ratio_final"].get<double>() >= lx["local_ratio_final"].get<double>();
    bar["migrated_at_most_1_1x"] =
        static_cast<double>(nh["pages_migrated"].get<std::uint64_t>()) <=
        1.1 * static_cast<double>(lx["pages_migrated"].get<std::uint64_t>());
  } else if (workload == "shared") {
    // Fewer pages moved more than once; both at 0 counts as a tie, not a win.
    const auto a = nh["pages_bounced"].get<std::uint64_t>(), b = lx["pages_bounced"].get<std::uint64_t>();
    bar["bounced_fewer"] = a < b;
    bar["bounced_tie_at_zero"] = a == 0 && b == 0;
  }
  bool holds = true;
  for (const auto& [k, v] : bar.items())
    if (k != "bounced_tie_at_zero") holds = holds && v.get<bool>();
  if (workload == "shared" && bar["bounced_tie_at_zero"].get<bool>()) holds = true;
  all["bar"] = bar;
  all["bar_holds"] = bar.empty() ? json(nullptr) : json(holds);
  for (const auto& [k, v] : bar.items()) std::printf("bar: %-28s %s\n", k.c_str(), v.get<bool>() ? "yes" : "NO");
  if (!bar.empty()) std::printf("bar (issue 14, %s): %s\n", workload.c_str(), holds ? "HOLDS" : "DOES NOT HOLD");

  std::ofstream f(out_path);
  f << all.dump(1) << "\n";
  if (!f) {
    std::fprintf(stderr, "numaheap-vmcompare: %s: cannot write\n", out_path.c_str());
    return 1;
  }
  if (!plot_prefix.empty())
    for (const char* m : kModes) {
      std::ofstream d(plot_prefix + "-" + m + ".dat");
      // A period in which no vCPU got an access in (sampler stalls under
      // TCG) has no ratio: left out, not drawn as 0.
      for (const json& p : all["runs"][m]["series"])
        if (p[2] != 0) d << p[0].get<double>() << " " << p[1].get<double>() << "\n";
    }
  if (min_final >= 0) {
    const double final_ratio = nh["local_ratio_final"].get<double>();
    const bool ok = final_ratio >= min_final && !nh["time_to_90_local_s"].is_null();
    std::printf("numaheap floor: final %.3f (at least %.3f), 90%% local %s: %s\n", final_ratio, min_final,
                nh["time_to_90_local_s"].is_null() ? "never" : "reached", ok ? "ok" : "FAILED");
    if (!ok) return 4;
  }
  return assert_bar && !bar.empty() && !holds ? 3 : 0;
}
