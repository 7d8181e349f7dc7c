// Access traces: the text format (docs/simulator.md) and its workload.
//
//   <seq> <vcpu> <address-hex> <R|W>      one access
//   # vcpu <V> node <N> [at <SEQ>]        vCPU V runs on node N (from SEQ on)
//   # anything else                        a comment
//
// seq is decimal and never decreases; vcpu decimal below kMaxGuestVcpus;
// the address hex with or without 0x, of any granularity (page = addr >>
// 12). Blank lines and a trailing CR are ignored.
#include <algorithm>
#include <charconv>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "bench/sim/sim.h"
#include "numaheap/guest_spec.h"

namespace numaheap::sim {

namespace {

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

bool parse_u64(std::string_view s, std::uint64_t& v, int base = 10) {
  if (base == 16 && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v, base);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

Error bad(std::string_view source, std::size_t line, const std::string& what) {
  return Error{Errc::parse_error, std::string(source) + ":" + std::to_string(line) + ": " + what};
}

}  // namespace

Result<Trace, Error> parse_trace(std::string_view text, std::string_view source) {
  Trace t;
  t.source = std::string(source);
  std::size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\0') != std::string_view::npos) return bad(source, line_no, "NUL byte");
    const auto w = split_words(line);
    if (w.empty()) continue;
    if (w[0][0] == '#') {
      // "# vcpu V node N [at SEQ]" (also "#vcpu"); any other comment is ignored.
      std::vector<std::string_view> d(w.begin(), w.end());
      if (d[0] == "#") d.erase(d.begin());
      else d[0].remove_prefix(1);
      if (d.empty() || d[0] != "vcpu") continue;
      TracePlacement p;
      p.line = line_no;
      std::uint64_t v = 0, n = 0, at = 0;
      if (d.size() != 4 && d.size() != 6)
        return bad(source, line_no, "expected '# vcpu V node N [at SEQ]'");
      if (!parse_u64(d[1], v) || v >= kMaxGuestVcpus)
        return bad(source, line_no, "vcpu must be a number below " + std::to_string(kMaxGuestVcpus));
      if (d[2] != "node" || !parse_u64(d[3], n) || n >= kMaxNodes)
        return bad(source, line_no, "expected 'node N' with N below " + std::to_string(kMaxNodes));
      if (d.size() == 6 && (d[4] != "at" || !parse_u64(d[5], at)))
        return bad(source, line_no, "expected 'at SEQ' with a decimal SEQ");
      p.vcpu = static_cast<std::uint32_t>(v);
      p.node = static_cast<NodeId>(n);
      p.at = at;
      for (const TracePlacement& q : t.placements)
        if (q.vcpu == p.vcpu && q.at == p.at)
          return bad(source, line_no,
                     "vcpu " + std::to_string(v) + " already placed at seq " + std::to_string(at) + " (line " +
                         std::to_string(q.line) + ")");
      t.placements.push_back(p);
      continue;
    }
    if (w.size() != 4) return bad(source, line_no, "expected '<seq> <vcpu> <address-hex> <R|W>'");
    TraceAccess a;
    std::uint64_t v = 0, addr = 0;
    if (!parse_u64(w[0], a.seq)) return bad(source, line_no, "seq '" + std::string(w[0]) + "' is not a decimal number");
    if (!parse_u64(w[1], v) || v >= kMaxGuestVcpus)
      return bad(source, line_no, "vcpu '" + std::string(w[1]) + "' is not a number below " +
                                      std::to_string(kMaxGuestVcpus));
    if (!parse_u64(w[2], addr, 16)) return bad(source, line_no, "address '" + std::string(w[2]) + "' is not hex");
    if (w[3] != "R" && w[3] != "W") return bad(source, line_no, "access type must be R or W");
    if (!t.accesses.empty() && a.seq < t.accesses.back().seq)
      return bad(source, line_no, "seq " + std::to_string(a.seq) + " goes backwards (previous " +
                                      std::to_string(t.accesses.back().seq) + ")");
    a.vcpu = static_cast<std::uint32_t>(v);
    a.page = addr >> kFrameShift;
    a.write = w[3] == "W";
    t.accesses.push_back(a);
  }
  return t;
}

Result<Trace, Error> load_trace(std::string_view path) {
  std::ifstream in{std::string(path), std::ios::binary};
  if (!in) return Error{Errc::io_error, std::string(path) + ": cannot open"};
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error{Errc::io_error, std::string(path) + ": read error"};
  return parse_trace(ss.str(), path);
}

namespace {

class TraceWorkload final : public Workload {
 public:
  std::string name() const override { return "trace:" + trace_.source; }
  const std::vector<GuestShape>& guests() const override { return guests_; }
  NodeId first_touch_node(std::uint32_t guest, Gfn gfn) const override {
    return guest == 0 && gfn < first_node_.size() ? first_node_[gfn] : kNoNode;
  }
  std::vector<VcpuMove> vcpu_moves() const override { return moves_; }

  void period(std::uint64_t k, std::vector<Touch>& out) override {
    out.clear();
    const std::size_t begin = period_start_[k], end = period_start_[k + 1];
    for (std::size_t i = begin; i < end; ++i) {
      const TraceAccess& a = trace_.accesses[i];
      out.push_back({0, gfn_of(a.page), node_at(a.vcpu, a.seq), weight_, static_cast<double>(a.seq)});
    }
    normalize_touches(out, guests_);
  }

  Trace trace_;
  double weight_ = 1;
  std::vector<GuestShape> guests_;
  std::vector<std::uint64_t> pages_;  // sorted distinct pages; gfn = index
  std::vector<NodeId> first_node_;
  std::map<std::uint32_t, std::vector<std::pair<std::uint64_t, NodeId>>> where_;  // vcpu -> (at, node), sorted
  std::vector<std::size_t> period_start_;  // periods + 1 indices into accesses
  std::vector<VcpuMove> moves_;

  Gfn gfn_of(std::uint64_t page) const {
    return static_cast<Gfn>(std::lower_bound(pages_.begin(), pages_.end(), page) - pages_.begin());
  }
  NodeId node_at(std::uint32_t vcpu, std::uint64_t seq) const {
    NodeId n = kNoNode;
    for (const auto& [at, node] : where_.at(vcpu))
      if (at <= seq) n = node;
    return n;
  }
};

}  // namespace

Result<std::unique_ptr<Workload>, Error> make_trace_workload(Trace trace, const Topology& topo, const SimConfig& c) {
  if (std::string bad_cfg = validate(c); !bad_cfg.empty()) return Error{Errc::invalid_argument, bad_cfg};
  const std::string& src = trace.source;
  if (trace.accesses.empty()) return Error{Errc::invalid_argument, src + ": no accesses"};
  auto w = std::make_unique<TraceWorkload>();
  for (const TracePlacement& p : trace.placements) {
    const NodeInfo* n = topo.find(p.node);
    if (!n) return bad(src, p.line, "node " + std::to_string(p.node) + " is not in topology " + topo.source());
    if (!n->has_cpus()) return bad(src, p.line, "node " + std::to_string(p.node) + " has no CPUs to run a vCPU");
    w->where_[p.vcpu].push_back({p.at, p.node});
  }
  for (auto& [v, list] : w->where_) std::sort(list.begin(), list.end());
  std::uint32_t vcpus = 0;
  for (const TraceAccess& a : trace.accesses) {
    auto it = w->where_.find(a.vcpu);
    if (it == w->where_.end() || it->second.front().first > a.seq)
      return Error{Errc::invalid_argument, src + ": vcpu " + std::to_string(a.vcpu) + " accesses memory at seq " +
                                               std::to_string(a.seq) + " before a '# vcpu " +
                                               std::to_string(a.vcpu) + " node N' line places it"};
    vcpus = std::max(vcpus, a.vcpu + 1);
    w->pages_.push_back(a.page);
  }
  std::sort(w->pages_.begin(), w->pages_.end());
  w->pages_.erase(std::unique(w->pages_.begin(), w->pages_.end()), w->pages_.end());
  // Memory of a page first touched from a memoryless node goes where that
  // node's allocations fall back to.
  auto memory_node = [&](NodeId n) {
    const auto order = topo.fallback_order(n);
    return order.empty() ? kNoNode : order.front();
  };
  w->first_node_.assign(w->pages_.size(), kNoNode);
  for (const TraceAccess& a : trace.accesses) {
    NodeId& f = w->first_node_[w->gfn_of(a.page)];
    if (f == kNoNode) f = memory_node(w->node_at(a.vcpu, a.seq));
  }
  const TraceAccess& first = trace.accesses.front();
  GuestShape g;
  g.name = "trace";
  g.pages = w->pages_.size();
  g.boot_node = memory_node(w->node_at(first.vcpu, first.seq));
  if (g.boot_node == kNoNode) return Error{Errc::invalid_argument, src + ": topology has no memory"};
  const std::uint64_t seq0 = first.seq;
  for (std::uint32_t v = 0; v < vcpus; ++v) {
    auto it = w->where_.find(v);
    NodeId n = it == w->where_.end() ? g.boot_node : w->node_at(v, seq0);
    if (n == kNoNode) n = it->second.front().second;  // placed only later: count it there from the start
    g.vcpu_nodes.push_back(n);
  }
  w->guests_.push_back(g);
  // Stretch the trace over the run: period k holds seqs in
  // [seq0 + k * span / P, seq0 + (k + 1) * span / P).
  const std::uint64_t periods = c.periods();
  const double span = static_cast<double>(trace.accesses.back().seq - seq0) + 1;
  auto period_of = [&](std::uint64_t seq) {
    return std::min<std::uint64_t>(periods - 1, static_cast<std::uint64_t>(static_cast<double>(seq - seq0) *
                                                                            static_cast<double>(periods) / span));
  };
  w->period_start_.assign(periods + 1, trace.accesses.size());
  for (std::size_t i = trace.accesses.size(); i-- > 0;) w->period_start_[period_of(trace.accesses[i].seq)] = i;
  for (std::uint64_t k = periods; k-- > 0;)  // empty periods start where the next one does
    w->period_start_[k] = std::min(w->period_start_[k], w->period_start_[k + 1]);
  const double period_s = c.period_ms / 1000.0;
  for (const auto& [v, list] : w->where_)
    for (const auto& [at, node] : list)
      if (at > seq0 && v < vcpus)
        w->moves_.push_back({static_cast<double>(period_of(at)) * period_s, 0, v, node});
  std::sort(w->moves_.begin(), w->moves_.end(), [](const VcpuMove& a, const VcpuMove& b) { return a.at_s < b.at_s; });
  w->weight_ = c.trace_weight;
  w->trace_ = std::move(trace);
  return std::unique_ptr<Workload>(std::move(w));
}

}  // namespace numaheap::sim
