// libFuzzer harness: the simulator's trace parser and trace workload on
// arbitrary bytes.
//
// Properties (a violation traps): a rejected trace has a "SOURCE:LINE: "
// or "SOURCE: " message; an accepted one has non-decreasing seqs; on the
// built-in topology its workload either is refused with a message or
// yields, period by period, touches inside the guest, sorted by (gfn,
// node) with positive counts, whose counts add up to the trace's accesses.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "bench/sim/sim.h"
#include "numaheap/topology_io.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace numaheap;
  static const Topology topo = builtin_default_topology();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = sim::parse_trace(text, "f");
  if (!t) {
    if (t.error().code != Errc::parse_error || t.error().message.rfind("f:", 0) != 0) __builtin_trap();
    return 0;
  }
  for (std::size_t i = 1; i < t->accesses.size(); ++i)
    if (t->accesses[i].seq < t->accesses[i - 1].seq) __builtin_trap();
  const std::size_t accesses = t->accesses.size();
  sim::SimConfig c;
  c.seconds = 5;
  auto w = sim::make_trace_workload(std::move(*t), topo, c);
  if (!w) {
    if (w.error().message.rfind("f", 0) != 0) __builtin_trap();
    return 0;
  }
  const std::uint64_t pages = (*w)->guests().at(0).pages;
  if (pages == 0 || pages > accesses) __builtin_trap();
  double total = 0;
  std::vector<sim::Touch> touches;
  for (std::uint64_t k = 0; k < c.periods(); ++k) {
    (*w)->period(k, touches);
    for (std::size_t i = 0; i < touches.size(); ++i) {
      const sim::Touch& x = touches[i];
      if (x.gfn >= pages || x.count <= 0 || !topo.has_node(x.node)) __builtin_trap();
      if (i && (touches[i - 1].gfn > x.gfn || (touches[i - 1].gfn == x.gfn && touches[i - 1].node >= x.node)))
        __builtin_trap();
      total += x.count;
    }
  }
  if (total != static_cast<double>(accesses)) __builtin_trap();
  return 0;
}
