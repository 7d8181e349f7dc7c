// Per-node CPU utilization from /proc/stat (see placement.h): the producer
// of NodeUsage::utilization. Host code: reads files and sleeps.
#include <charconv>
#include <string>
#include <thread>

#include "numaheap/placement.h"
#include "numaheap/topology_io.h"

namespace numaheap {

namespace {

// CPU ids above this are refused (a corrupt line must not size a huge vector).
constexpr std::uint64_t kMaxCpuId = 1u << 16;

bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

Result<CpuTimes, Error> parse_proc_stat(std::string_view text, std::string_view source) {
  CpuTimes t;
  std::size_t line_no = 0;
  std::string src(source);
  while (!text.empty()) {
    ++line_no;
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    // Only "cpuN ..." lines; "cpu " (the sum) and other keys are skipped.
    if (line.size() < 4 || line.substr(0, 3) != "cpu" || line[3] < '0' || line[3] > '9') continue;
    auto where = [&] { return src + ":" + std::to_string(line_no) + ": "; };
    std::size_t sp = line.find(' ');
    std::uint64_t cpu = 0;
    if (sp == std::string_view::npos || !parse_u64(line.substr(3, sp - 3), cpu) || cpu >= kMaxCpuId)
      return Error{Errc::parse_error, where() + "bad cpu line '" + std::string(line.substr(0, 40)) + "'"};
    // user nice system idle iowait irq softirq steal [guest guest_nice]:
    // guest time is already inside user / nice.
    std::uint64_t f[8] = {};
    std::size_t fields = 0;
    std::string_view rest = line.substr(sp);
    while (!rest.empty()) {
      std::size_t b = rest.find_first_not_of(" \t\r");
      if (b == std::string_view::npos) break;
      rest = rest.substr(b);
      std::size_t e = rest.find_first_of(" \t\r");
      std::string_view tok = rest.substr(0, e);
      rest = e == std::string_view::npos ? std::string_view() : rest.substr(e);
      std::uint64_t v = 0;
      if (!parse_u64(tok, v))
        return Error{Errc::parse_error, where() + "cpu" + std::to_string(cpu) + ": '" +
                                            std::string(tok.substr(0, 20)) + "' is not a number"};
      if (fields < 8) f[fields] = v;
      ++fields;
    }
    if (fields < 4)
      return Error{Errc::parse_error, where() + "cpu" + std::to_string(cpu) + " has " +
                                          std::to_string(fields) + " fields, expected at least 4"};
    if (cpu >= t.total.size()) {
      t.busy.resize(cpu + 1, 0);
      t.total.resize(cpu + 1, 0);
      t.present.resize(cpu + 1, false);
    }
    if (t.present[cpu])
      return Error{Errc::parse_error, where() + "cpu" + std::to_string(cpu) + " listed twice"};
    const std::uint64_t idle = f[3] + f[4];
    const std::uint64_t busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
    t.busy[cpu] = busy;
    t.total[cpu] = busy + idle;
    t.present[cpu] = true;
  }
  if (t.present.empty())
    return Error{Errc::parse_error, src + ": no cpuN lines (is this /proc/stat?)"};
  return t;
}

Result<CpuTimes, Error> read_cpu_times(const std::string& proc_root) {
  std::string root = proc_root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  const std::string path = (root.empty() || root == "/" ? std::string() : root) + "/proc/stat";
  auto text = read_text_file(path);
  if (!text) return text.error();
  return parse_proc_stat(*text, path);
}

std::vector<double> node_utilization(const Topology& topo, const CpuTimes& before,
                                     const CpuTimes& after) {
  std::vector<double> out(topo.node_count(), -1.0);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const NodeInfo& n = topo.node_at(i);
    if (!n.has_cpus()) continue;
    std::uint64_t busy = 0, total = 0;
    bool missing = false;
    for (CpuId cpu : n.cpus) {
      if (cpu >= before.present.size() || cpu >= after.present.size() || !before.present[cpu] ||
          !after.present[cpu]) {
        missing = true;
        break;
      }
      // Counters only grow; a CPU that went offline and back may restart
      // them: count such a CPU as no time passed.
      if (after.total[cpu] < before.total[cpu] || after.busy[cpu] < before.busy[cpu]) continue;
      busy += after.busy[cpu] - before.busy[cpu];
      total += after.total[cpu] - before.total[cpu];
    }
    if (missing || total == 0) continue;
    out[i] = std::min(1.0, static_cast<double>(busy) / static_cast<double>(total));
  }
  return out;
}

Result<void, Error> measure_node_utilization(const Topology& topo, std::span<NodeUsage> usage,
                                             std::chrono::milliseconds interval,
                                             const std::string& proc_root) {
  if (usage.size() != topo.node_count())
    return Error{Errc::invalid_argument, "usage has " + std::to_string(usage.size()) +
                                             " entries for " + std::to_string(topo.node_count()) +
                                             " nodes"};
  if (interval.count() < 0) return Error{Errc::invalid_argument, "negative interval"};
  auto a = read_cpu_times(proc_root);
  if (!a) return a.error();
  std::this_thread::sleep_for(interval);
  auto b = read_cpu_times(proc_root);
  if (!b) return b.error();
  const std::vector<double> u = node_utilization(topo, *a, *b);
  for (std::size_t i = 0; i < usage.size(); ++i) usage[i].utilization = u[i];
  return {};
}

}  // namespace numaheap
