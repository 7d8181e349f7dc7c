// Synthetic scenarios: guests whose vCPUs touch working sets at a fixed
// rate, with vCPU moves and working-set changes at given times.
//
// A scenario is a list of access streams: "vCPU v of guest g spends `share`
// of its accesses on pages [first, first + pages), uniformly, between
// from_s and until_s". A period's accesses are the streams' expected counts
// per page, merged per (page, node). The first access to a page in a period
// is drawn as the earliest of independent Poisson arrivals (an exponential
// race), so a page shared by two nodes is first touched by either, in
// proportion to their rates -- deterministically from the seed.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "bench/sim/sim.h"

namespace numaheap::sim {

namespace {

constexpr std::uint64_t kBlock = 512;  // sizes are whole 2 MiB blocks
constexpr double kForever = std::numeric_limits<double>::infinity();

struct Stream {
  std::uint32_t guest = 0, vcpu = 0;
  Gfn first = 0;
  std::uint64_t pages = 0;
  double share = 0;  // of the vCPU's accesses
  double from_s = 0, until_s = kForever;
};

class SyntheticWorkload final : public Workload {
 public:
  SyntheticWorkload(std::string name, const SimConfig& config) : name_(std::move(name)), config_(config) {}

  std::string name() const override { return name_; }
  const std::vector<GuestShape>& guests() const override { return guests_; }
  std::uint64_t filler_pages(NodeId node) const override {
    for (const auto& [n, pages] : filler_)
      if (n == node) return pages;
    return 0;
  }
  std::vector<VcpuMove> vcpu_moves() const override { return moves_; }

  void period(std::uint64_t k, std::vector<Touch>& out) override {
    out.clear();
    const double period_s = config_.period_ms / 1000.0;
    const double t = static_cast<double>(k) * period_s;
    for (const Stream& s : streams_) {
      if (t < s.from_s || t >= s.until_s || s.pages == 0) continue;
      const NodeId node = vcpu_node(s.guest, s.vcpu, t);
      const double per_page = config_.access_rate * period_s * s.share / static_cast<double>(s.pages);
      for (Gfn g = s.first; g < s.first + s.pages; ++g) out.push_back({s.guest, g, node, per_page, 0});
    }
    normalize_touches(out, guests_);
    std::mt19937_64 rng(config_.seed * 0x9e3779b97f4a7c15ull + k);
    std::uniform_real_distribution<double> uni(std::numeric_limits<double>::min(), 1.0);
    for (Touch& x : out) x.first = -std::log(uni(rng)) / x.count;
  }

  // ---- building ----
  std::uint32_t add_guest(std::string name, std::uint64_t pages, std::vector<NodeId> vcpus, NodeId boot) {
    guests_.push_back({std::move(name), pages, std::move(vcpus), boot});
    return static_cast<std::uint32_t>(guests_.size() - 1);
  }
  void add_stream(const Stream& s) { streams_.push_back(s); }
  void move_vcpu(std::uint32_t guest, std::uint32_t vcpu, NodeId node, double at_s) {
    moves_.push_back({at_s, guest, vcpu, node});
    std::stable_sort(moves_.begin(), moves_.end(), [](const VcpuMove& a, const VcpuMove& b) { return a.at_s < b.at_s; });
  }
  void fill(NodeId node, std::uint64_t pages) { filler_.push_back({node, pages}); }

 private:
  NodeId vcpu_node(std::uint32_t guest, std::uint32_t vcpu, double t) const {
    NodeId n = guests_[guest].vcpu_nodes[vcpu];
    for (const VcpuMove& m : moves_)
      if (m.guest == guest && m.vcpu == vcpu && m.at_s <= t) n = m.node;
    return n;
  }

  std::string name_;
  SimConfig config_;
  std::vector<GuestShape> guests_;
  std::vector<Stream> streams_;
  std::vector<VcpuMove> moves_;
  std::vector<std::pair<NodeId, std::uint64_t>> filler_;
};

// Nodes with CPUs and memory, in id order.
std::vector<NodeId> compute_nodes(const Topology& topo) {
  std::vector<NodeId> out;
  for (const NodeInfo& n : topo.nodes())
    if (n.has_cpus() && n.has_memory() && n.frame_count() > 0) out.push_back(n.id);
  return out;
}

NodeId farthest_from(const Topology& topo, const std::vector<NodeId>& nodes, NodeId from) {
  NodeId best = kNoNode;
  std::uint32_t best_d = 0;
  for (NodeId n : nodes)
    if (n != from && topo.distance(from, n) > best_d) best = n, best_d = topo.distance(from, n);
  return best;
}

std::uint64_t frames_of(const Topology& topo, NodeId n) { return topo.find(n)->frame_count(); }

// `fraction` of the smaller node, at most `cap_bytes`, scaled, whole blocks.
std::uint64_t guest_pages(const Topology& topo, const SimConfig& c, std::initializer_list<NodeId> nodes,
                          double fraction, std::uint64_t cap_bytes) {
  std::uint64_t smallest = std::numeric_limits<std::uint64_t>::max();
  for (NodeId n : nodes) smallest = std::min(smallest, frames_of(topo, n));
  double pages = std::min(static_cast<double>(cap_bytes >> kFrameShift), fraction * static_cast<double>(smallest));
  pages *= c.guest_scale;
  return std::max<std::uint64_t>(kBlock, static_cast<std::uint64_t>(pages) / kBlock * kBlock);
}

// vCPU v of `vcpus` gets slice v of [0, ws_pages).
void private_slices(SyntheticWorkload& w, std::uint32_t guest, std::uint32_t vcpus, std::uint64_t ws_pages,
                    double share, double from_s = 0, double until_s = kForever, std::uint32_t rotate = 0) {
  const std::uint64_t slice = ws_pages / vcpus;
  for (std::uint32_t v = 0; v < vcpus; ++v)
    w.add_stream({guest, v, ((v + rotate) % vcpus) * slice, slice, share, from_s, until_s});
}

Result<std::unique_ptr<Workload>, Error> need_two(std::string_view name) {
  return Error{Errc::invalid_argument,
               "scenario " + std::string(name) + " needs at least two nodes with CPUs and memory"};
}

}  // namespace

void normalize_touches(std::vector<Touch>& touches, const std::vector<GuestShape>& guests) {
  std::vector<std::uint64_t> base(guests.size() + 1, 0);
  for (std::size_t g = 0; g < guests.size(); ++g) base[g + 1] = base[g] + guests[g].pages;
  std::vector<std::uint32_t> start(base.back() + 1, 0);
  for (const Touch& t : touches) ++start[base[t.guest] + t.gfn + 1];
  for (std::size_t i = 1; i < start.size(); ++i) start[i] += start[i - 1];
  std::vector<Touch> sorted(touches.size());
  std::vector<std::uint32_t> next(start.begin(), start.end() - 1);
  for (const Touch& t : touches) sorted[next[base[t.guest] + t.gfn]++] = t;
  touches.clear();
  for (std::size_t p = 0; p + 1 < start.size(); ++p) {
    auto* b = sorted.data() + start[p];
    auto* e = sorted.data() + start[p + 1];
    if (b == e) continue;
    std::sort(b, e, [](const Touch& x, const Touch& y) { return x.node < y.node; });  // a few entries
    const std::size_t first = touches.size();
    for (auto* t = b; t != e; ++t) {
      if (touches.size() > first && touches.back().node == t->node) {
        touches.back().count += t->count;
        touches.back().first = std::min(touches.back().first, t->first);
      } else {
        touches.push_back(*t);
      }
    }
  }
}

std::vector<std::string> scenario_names() { return {"vcpu-move", "mixed", "overcommit", "phases"}; }

std::string scenario_description(std::string_view name) {
  if (name == "vcpu-move")
    return "one 4-vCPU guest; its vCPUs move to the farthest node halfway through";
  if (name == "mixed")
    return "several guests across two nodes each, memory first touched on one; private and shared working "
           "sets; the first guest's two vCPUs on its boot node move halfway through";
  if (name == "overcommit")
    return "as vcpu-move, but other tenants leave room on the target for 40% of the guest only";
  if (name == "phases")
    return "one guest on two nodes whose vCPUs change working sets four times";
  return {};
}

Result<std::unique_ptr<Workload>, Error> make_scenario(std::string_view name, const Topology& topo,
                                                       const SimConfig& c) {
  if (std::string bad = validate(c); !bad.empty()) return Error{Errc::invalid_argument, bad};
  const std::vector<NodeId> nodes = compute_nodes(topo);
  const double half = c.seconds / 2;
  auto w = std::make_unique<SyntheticWorkload>(std::string(name), c);

  if (name == "vcpu-move" || name == "overcommit") {
    if (nodes.size() < 2) return need_two(name);
    const NodeId a = nodes[0], b = farthest_from(topo, nodes, a);
    const std::uint64_t pages = guest_pages(topo, c, {a, b}, 0.4, std::uint64_t{1} << 30);
    const std::uint32_t g = w->add_guest("guest0", pages, {a, a, a, a}, a);
    private_slices(*w, g, 4, pages / 4 * 3, 1.0);  // 3/4 hot, 1/4 never touched
    for (std::uint32_t v = 0; v < 4; ++v) w->move_vcpu(g, v, b, half);
    if (name == "overcommit") {
      const std::uint64_t room = pages * 2 / 5;
      const std::uint64_t total = frames_of(topo, b);
      w->fill(b, total > room ? total - room : 0);
    }
    return std::unique_ptr<Workload>(std::move(w));
  }
  if (name == "mixed") {
    if (nodes.size() < 2) return need_two(name);
    const std::size_t m = nodes.size();
    const std::size_t guests = std::min<std::size_t>(3, m);
    for (std::size_t i = 0; i < guests; ++i) {
      const NodeId x = nodes[i % m], y = nodes[(i + 1) % m];
      const std::uint64_t pages = guest_pages(topo, c, {x, y}, 0.2, std::uint64_t{512} << 20);
      const std::uint32_t g = w->add_guest("guest" + std::to_string(i), pages, {x, x, y, y}, x);
      const std::uint64_t ws = pages / 5 * 3;   // 60% private working sets
      const std::uint64_t shared = pages / 10;  // 10% shared by all four vCPUs
      private_slices(*w, g, 4, ws, 0.9);
      for (std::uint32_t v = 0; v < 4; ++v) w->add_stream({g, v, ws, shared, 0.1});
      if (i == 0) {  // the two whose pages never had to move (each page moves at most once)
        const NodeId z = nodes[(i + 2) % m];
        w->move_vcpu(g, 0, z, half);
        w->move_vcpu(g, 1, z, half);
      }
    }
    return std::unique_ptr<Workload>(std::move(w));
  }
  if (name == "phases") {
    if (nodes.size() < 2) return need_two(name);
    const NodeId a = nodes[0], b = farthest_from(topo, nodes, a);
    const std::uint64_t pages = guest_pages(topo, c, {a, b}, 0.4, std::uint64_t{1} << 30);
    const std::uint32_t g = w->add_guest("guest0", pages, {a, a, b, b}, a);
    const std::uint64_t ws = pages / 5 * 4, shared = pages / 10;
    const double phase = c.seconds / 4;
    for (std::uint32_t p = 0; p < 4; ++p)
      private_slices(*w, g, 4, ws, 0.9, p * phase, p == 3 ? kForever : (p + 1) * phase, p);
    for (std::uint32_t v = 0; v < 4; ++v) w->add_stream({g, v, ws, shared, 0.1});
    return std::unique_ptr<Workload>(std::move(w));
  }
  std::string known;
  for (const auto& s : scenario_names()) known += (known.empty() ? "" : ", ") + s;
  return Error{Errc::invalid_argument, "unknown scenario '" + std::string(name) + "' (known: " + known + ")"};
}

}  // namespace numaheap::sim
