// GuestRam: a VMM's guest RAM mappings bound, populated and moved by the
// kernel (mbind, MADV_POPULATE_WRITE, move_pages). See include/numaheap/vmm.h.
#include <fcntl.h>
#include <numaif.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "numaheap/vmm.h"

#include "allocator/platform/fault_injection.h"
#include "migrate/host/node_meminfo.h"
#include "vmm/host/host_mappings.h"
#include "vmm/host/move_helper.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace numaheap {

const char* ram_backing_name(RamBacking b) noexcept {
  switch (b) {
    case RamBacking::anonymous: return "anonymous";
    case RamBacking::memfd: return "memfd";
    case RamBacking::hugetlb: return "hugetlb";
  }
  return "unknown";
}

namespace {

constexpr std::uint64_t kGranulePages = 512;  // vnode parts split in 2 MiB granules
constexpr std::size_t kChunk = 256;

std::uint64_t page_bytes(const GuestRamRegion& r) {
  return r.backing == RamBacking::hugetlb ? kHugetlbPageSize : kFrameSize;
}

// "gpa [0x..., 0x...)" for messages.
struct GpaRange {
  std::uint64_t first, end;
  void append_to(ErrorText& t) const noexcept {
    t.append("gpa [0x");
    append_hex(t, first);
    t.append(", 0x");
    append_hex(t, end);
    t.append(")");
  }
  static void append_hex(ErrorText& t, std::uint64_t v) noexcept {
    char buf[17];
    int n = 0;
    do {
      buf[n++] = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v && n < 16);
    while (n) t.append(buf[--n]);
  }
};

struct Hex {
  std::uint64_t v;
  void append_to(ErrorText& t) const noexcept {
    t.append("0x");
    GpaRange::append_hex(t, v);
  }
};

long mbind_node(void* addr, std::uint64_t len, int mode, NodeId node, unsigned flags) {
  const NodeMask m = NodeMask::single(node);
  return ::mbind(addr, len, mode, mode == MPOL_DEFAULT ? nullptr : m.words().data(),
                 mode == MPOL_DEFAULT ? 0 : kMaxNodes + 1, flags);
}

// Whether this kernel has MADV_POPULATE_WRITE (5.14+): asked once of a
// private anonymous scratch page (EINVAL: it does not).
bool populate_write_supported() {
  static const bool supported = [] {
    void* p = ::mmap(nullptr, kFrameSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return true;  // cannot tell: a region's own answer is reported then
    const bool ok = ::madvise(p, kFrameSize, MADV_POPULATE_WRITE) == 0 || errno != EINVAL;
    ::munmap(p, kFrameSize);
    return ok;
  }();
  return supported;
}

// ---- the move helper ----
// Why: the kernel (6.1) unmaps each page it migrates with its own TLB
// shootdown in every process mapping it: an IPI to every CPU that runs one
// of that process's threads, waited for. A VMM's vCPU threads always run,
// and under emulation (qemu TCG) or on a busy host a round costs 10-60 ms,
// so moves from the VMM's own mapping crawl at tens of pages a second
// (docs/vm-tests.md, issue 14). A page mapped only in an idle process is
// unmapped with no IPI. The helper is a child forked at create()
// (move_helper.h): it keeps the shared guest RAM mappings at the same
// addresses, none of the VMM's private memory, and sleeps on a socket. A
// move has the helper map the pages (MADV_POPULATE_READ), then zaps them in
// the VMM's mapping (one batched shootdown per run of pages), and
// move_pages moves them through the helper's pid with MPOL_MF_MOVE_ALL,
// which still moves the page out of every mapping: the data path is the
// kernel's migration. The zapped pages are then mapped back here at once
// (no IPI: a new entry needs no shootdown), or, zapped as a sampler's
// window, when the window closes: nothing stays reachable only through the
// helper, which may be dropped at any time.

}  // namespace

GuestRam::~GuestRam() {
  if (helper_.sock < 0) return;  // no helper was forked
  const pid_t pid = helper_.pid < 0 ? -helper_.pid : helper_.pid;  // negative: no longer used, still to reap
  // EOF makes the helper exit. shutdown, not only close: a fork of the VMM
  // (made without exec after create) holds the socket too, and close alone
  // would not end it while that child lives.
  (void)::shutdown(helper_.sock, SHUT_RDWR);
  ::close(helper_.sock);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

void GuestRam::start_helper() noexcept {
  // The helper maps the shared memfd regions only (move_helper.h).
  std::vector<detail::HostRange> not_needed;
  for (const GuestRamRegion& g : regions_)
    if (!(g.backing == RamBacking::memfd && g.shared)) not_needed.push_back(detail::HostRange{g.host, g.bytes});
  const detail::MoveHelperProcess p = detail::spawn_move_helper(not_needed);
  if (p.pid > 0) helper_ = Helper{p.pid, p.sock};
}

// Maps region r's listed pages (local indexes) in the helper. `gone`: it
// no longer answers (then it is not used again); `refused`: it answers, but
// could not map some run (its MADV_POPULATE_READ failed): these pages then
// move the old way, from the VMM's mapping, where they still are.
GuestRam::HelperMap GuestRam::helper_map(std::size_t r, std::span<const Gfn> local) noexcept {
  if (helper_.pid <= 0) return HelperMap::gone;
  char* const host = static_cast<char*>(regions_[r].host);
  detail::HelperRun req[detail::kHelperRuns];
  HelperMap result = HelperMap::mapped;
  for (std::size_t i = 0; i < local.size();) {
    std::size_t n = 0;
    for (; i < local.size() && n < detail::kHelperRuns; ++n) {
      std::size_t j = i + 1;
      while (j < local.size() && local[j] == local[j - 1] + 1) ++j;
      req[n] = detail::HelperRun{reinterpret_cast<std::uintptr_t>(host + (local[i] << kFrameShift)), (j - i) << kFrameShift};
      i = j;
    }
    unsigned char answer = 0;
    ssize_t w;
    while ((w = ::send(helper_.sock, req, n * sizeof req[0], MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    ssize_t rd = -1;
    if (w == static_cast<ssize_t>(n * sizeof req[0]))
      while ((rd = ::recv(helper_.sock, &answer, 1, 0)) < 0 && errno == EINTR) {
      }
    if (rd != 1) {
      helper_.pid = -helper_.pid;  // gone: moves go the old way from now on (the destructor still reaps it)
      return HelperMap::gone;
    }
    if (NUMAHEAP_FAULT(helper_cannot_map)) answer = ENOMEM;
    if (answer != 0) {
      if (result == HelperMap::mapped) {
        helper_refusals_.fetch_add(1, std::memory_order_relaxed);
        helper_last_errno_.store(answer, std::memory_order_relaxed);
      }
      result = HelperMap::refused;
    }
  }
  return result;
}

// Zaps region r's listed pages in the VMM's mapping before they move
// through the helper: as a window of the sampler when one runs (its
// invariant: armed before zapped; true), else plainly (false: the caller
// maps them back after the move).
bool GuestRam::zap_for_move(std::size_t r, std::span<const Gfn> local, std::span<const Gfn> gfns) noexcept {
  {
    std::lock_guard<std::mutex> g(sampler_lock_);
    if (sampler_ && detail::sampler_arm(*sampler_, gfns)) return true;
  }
  madvise_runs(r, local, MADV_DONTNEED);
  return false;
}

// Maps region r's listed pages back into the VMM's mapping (they were zapped
// for a move through the helper). MADV_POPULATE_READ:
// the data is the memfd's, nothing is written; a page it cannot map is
// reported not present by the move that follows.
void GuestRam::map_back(std::size_t r, std::span<const Gfn> local) noexcept {
  madvise_runs(r, local, MADV_POPULATE_READ);
}

// madvise(advice) over region r's listed pages (sorted local indexes), one
// call per run of adjacent pages.
void GuestRam::madvise_runs(std::size_t r, std::span<const Gfn> local, int advice) noexcept {
  char* const host = static_cast<char*>(regions_[r].host);
  for (std::size_t i = 0; i < local.size();) {
    std::size_t j = i + 1;
    while (j < local.size() && local[j] == local[j - 1] + 1) ++j;
    (void)::madvise(host + (local[i] << kFrameShift), (j - i) << kFrameShift, advice);
    i = j;
  }
}

void GuestRam::close_sampler_windows(std::span<const Gfn> gfns) noexcept {
  std::lock_guard<std::mutex> g(sampler_lock_);
  if (!sampler_) return;
  detail::sampler_pause(*sampler_, gfns, true);
  detail::sampler_resume(*sampler_);
}

int GuestRam::region_of_gfn(Gfn gfn) const noexcept {
  if (gfn >= page_count_) return -1;  // past the RAM (and gfn << 12 would wrap for gfn >= 2^52)
  const std::uint64_t gpa = gfn << kFrameShift;
  // Regions are few and sorted: the last one starting at or below gpa.
  auto it = std::upper_bound(regions_.begin(), regions_.end(), gpa,
                             [](std::uint64_t a, const GuestRamRegion& r) { return a < r.guest_phys; });
  if (it == regions_.begin()) return -1;
  --it;
  if (gpa - it->guest_phys >= it->bytes) return -1;
  return static_cast<int>(it - regions_.begin());
}

void* GuestRam::host_address(Gfn gfn) const noexcept {
  const int r = region_of_gfn(gfn);
  if (r < 0) return nullptr;
  const GuestRamRegion& g = regions_[static_cast<std::size_t>(r)];
  return static_cast<char*>(g.host) + ((gfn << kFrameShift) - g.guest_phys);
}

Result<Gfn> GuestRam::gfn_of(const void* host) const noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(host);
  for (const GuestRamRegion& g : regions_) {
    const auto base = reinterpret_cast<std::uintptr_t>(g.host);
    if (a >= base && a - base < g.bytes) return (g.guest_phys + (a - base)) >> kFrameShift;
  }
  return Errc::invalid_argument;
}

Result<std::unique_ptr<GuestRam>, Error> GuestRam::create(const Topology& topo, std::span<const GuestRamRegion> regions,
                                                          std::span<const VnodeRam> vnodes,
                                                          const GuestRamOptions& options) {
  if (regions.empty()) return make_error(Errc::invalid_argument, "guest RAM: no regions");
  std::vector<GuestRamRegion> rs(regions.begin(), regions.end());
  // ---- validate everything before touching anything ----
  for (const GuestRamRegion& r : rs) {
    const GpaRange range{r.guest_phys, r.guest_phys + r.bytes};
    if (r.backing != RamBacking::anonymous && r.backing != RamBacking::memfd && r.backing != RamBacking::hugetlb)
      return make_error(Errc::invalid_argument, "guest RAM region ", range, ": unknown backing");
    const std::uint64_t pb = page_bytes(r);
    if (!r.host || r.bytes == 0)
      return make_error(Errc::invalid_argument, "guest RAM region ", range, ": null host address or no bytes");
    if (reinterpret_cast<std::uintptr_t>(r.host) % pb || r.bytes % pb || r.guest_phys % pb)
      return make_error(Errc::invalid_argument, "guest RAM region ", range, " (", ram_backing_name(r.backing),
                        "): host address, length and guest-physical base must be multiples of ", pb, " bytes");
    if (r.guest_phys + r.bytes < r.guest_phys || ((r.guest_phys + r.bytes) >> kFrameShift) > kMaxGuestFrames)
      return make_error(Errc::invalid_argument, "guest RAM region at gpa ", Hex{r.guest_phys},
                        ": beyond the largest guest-physical address");
    const auto h = reinterpret_cast<std::uintptr_t>(r.host);
    if (h + r.bytes < h) return make_error(Errc::invalid_argument, "guest RAM region ", range, ": host range wraps");
  }
  std::sort(rs.begin(), rs.end(), [](const auto& a, const auto& b) { return a.guest_phys < b.guest_phys; });
  for (std::size_t i = 1; i < rs.size(); ++i)
    if (rs[i].guest_phys < rs[i - 1].guest_phys + rs[i - 1].bytes)
      return make_error(Errc::invalid_argument, "guest RAM regions ",
                        GpaRange{rs[i - 1].guest_phys, rs[i - 1].guest_phys + rs[i - 1].bytes}, " and ",
                        GpaRange{rs[i].guest_phys, rs[i].guest_phys + rs[i].bytes}, " overlap");
  for (std::size_t i = 0; i < rs.size(); ++i)
    for (std::size_t j = i + 1; j < rs.size(); ++j) {
      const auto a = reinterpret_cast<std::uintptr_t>(rs[i].host), b = reinterpret_cast<std::uintptr_t>(rs[j].host);
      if (a < b + rs[j].bytes && b < a + rs[i].bytes)
        return make_error(Errc::invalid_argument, "guest RAM regions ",
                          GpaRange{rs[i].guest_phys, rs[i].guest_phys + rs[i].bytes}, " and ",
                          GpaRange{rs[j].guest_phys, rs[j].guest_phys + rs[j].bytes}, " share host memory");
    }
  // What the mappings are: guest RAM is written (populate) and memfd RAM
  // loses its page-table entries to windows and moves (MADV_DONTNEED),
  // which is lossless on a shared mapping only (host_mappings.h).
  for (const GuestRamRegion& r : rs) {
    const detail::MappingProblem p = detail::check_guest_mapping(r.host, r.bytes, r.backing == RamBacking::memfd);
    if (p == detail::MappingProblem::unknown && options.trust_mappings) continue;  // the VMM vouches for them
    if (p != detail::MappingProblem::none)
      return make_error(p == detail::MappingProblem::unknown ? Errc::unsupported : Errc::invalid_argument,
                        "guest RAM region ", GpaRange{r.guest_phys, r.guest_phys + r.bytes},
                        " (", ram_backing_name(r.backing), "): ", detail::mapping_problem_text(p));
  }
  std::unique_ptr<GuestRam> ram(new GuestRam());
  if (!ram) return make_error(Errc::no_memory, "guest RAM: out of memory");
  ram->topo_ = &topo;
  ram->regions_ = std::move(rs);
  const GuestRamRegion& last = ram->regions_.back();
  ram->page_count_ = (last.guest_phys + last.bytes) >> kFrameShift;
  const NodeMask mem = topo.memory_nodes();
  std::vector<std::pair<std::uint64_t, std::uint64_t>> taken;  // vnode ranges (gpa, end)
  for (const VnodeRam& v : vnodes) {
    const GpaRange range{v.guest_phys, v.guest_phys + v.bytes};
    if (v.bytes == 0 || v.guest_phys % kFrameSize || v.bytes % kFrameSize || range.end < range.first)
      return make_error(Errc::invalid_argument, "vnode ", v.vnode, " ", range, ": empty or not 4 KiB aligned");
    if (v.nodes.empty()) return make_error(Errc::invalid_node, "vnode ", v.vnode, " ", range, ": no node given");
    for (NodeId n : v.nodes)
      if (!topo.has_node(n) || !mem.test(n))
        return make_error(Errc::invalid_node, "vnode ", v.vnode, " ", range, ": node ", n,
                          topo.has_node(n) ? " has no memory" : " is not in the topology");
    // Every page inside RAM; hugetlb pieces whole huge pages.
    for (std::uint64_t at = v.guest_phys; at < range.end;) {
      const int r = ram->region_of_gfn(at >> kFrameShift);
      if (r < 0)
        return make_error(Errc::invalid_argument, "vnode ", v.vnode, " ", range, ": gpa ", Hex{at},
                          " is not in any guest RAM region");
      const GuestRamRegion& g = ram->regions_[static_cast<std::size_t>(r)];
      const std::uint64_t end = std::min(range.end, g.guest_phys + g.bytes);
      if (g.backing == RamBacking::hugetlb && (at % kHugetlbPageSize || end % kHugetlbPageSize))
        return make_error(Errc::invalid_argument, "vnode ", v.vnode, " ", range,
                          ": must cover whole 2 MiB pages of its hugetlb region");
      at = end;
    }
    for (const auto& [a, e] : taken)
      if (v.guest_phys < e && a < range.end)
        return make_error(Errc::invalid_argument, "vnode ", v.vnode, " ", range, " overlaps another vnode range");
    taken.emplace_back(v.guest_phys, range.end);
  }
  // ---- layout: each vnode range split over its nodes ----
  // Each split point is a 2 MiB boundary of guest-physical space (not of
  // the vnode: a vnode that starts mid-granule and runs into a hugetlb
  // region would be split inside a huge page, which mbind refuses).
  // Hugetlb regions start at 2 MiB gpa boundaries (checked above), so a
  // part never splits one of their pages.
  // Part i ends at the boundary nearest the even split (first + i/k of the
  // vnode), so each split point is within half a granule of the even one
  // and each part within a granule of its share; a node
  // whose part would be empty (a vnode under half a granule a node) gets
  // none, and the last part ends at the vnode's end.
  for (const VnodeRam& v : vnodes) {
    const std::uint64_t pages = v.bytes >> kFrameShift;
    const std::uint64_t k = v.nodes.count();
    const Gfn first = v.guest_phys >> kFrameShift;
    const Gfn end = first + pages;
    Gfn at = first;
    std::uint64_t i = 0;
    for (NodeId n : v.nodes) {
      ++i;
      const Gfn even = first + pages / k * i + pages % k * i / k;  // first + pages * i / k, without overflow
      Gfn to = i == k ? end : (even + kGranulePages / 2) / kGranulePages * kGranulePages;
      to = std::clamp<Gfn>(to, at, end);
      if (to == at) continue;
      ram->layout_.push_back(GuestRange{at, to - at, n, v.vnode});
      at = to;
    }
  }
  if (vnodes.empty())
    for (const GuestRamRegion& g : ram->regions_)
      ram->layout_.push_back(GuestRange{g.guest_phys >> kFrameShift, g.bytes >> kFrameShift, kNoNode, 0});
  std::sort(ram->layout_.begin(), ram->layout_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const GuestRamRegion& g : ram->regions_) {
    auto km = KernelMover::create(g.host, g.bytes >> kFrameShift, g.shared, g.backing == RamBacking::hugetlb);
    if (!km) return make_error(km.error(), "guest RAM region ", GpaRange{g.guest_phys, g.guest_phys + g.bytes},
                               ": the kernel mover refused it (host page size not 4 KiB?)");
    ram->movers_.push_back(*km);
  }
  // Shared memfd RAM moves through the helper (MPOL_MF_MOVE_ALL already,
  // so it needs no more rights than before).
  if (options.move_helper && std::any_of(ram->regions_.begin(), ram->regions_.end(),
                  [](const GuestRamRegion& g) { return g.backing == RamBacking::memfd && g.shared; }))
    ram->start_helper();
  // ---- bind ----
  // Ranges bound so far: a refused bind or populate gives them their
  // default policy back (a failed mbind may have split its range and bound
  // part of it: its range is reset too).
  std::vector<std::pair<void*, std::uint64_t>> bound;
  auto unbind = [&bound] {
    for (const auto& [a, l] : bound) (void)mbind_node(a, l, MPOL_DEFAULT, kNoNode, 0);
  };
  if (options.bind && !vnodes.empty()) {
    for (const GuestRange& part : ram->layout_) {
      for (Gfn at = part.first; at < part.first + part.pages;) {
        const auto r = static_cast<std::size_t>(ram->region_of_gfn(at));
        const GuestRamRegion& g = ram->regions_[r];
        const Gfn end = std::min(part.first + part.pages, (g.guest_phys + g.bytes) >> kFrameShift);
        void* host = ram->host_address(at);
        const std::uint64_t len = (end - at) << kFrameShift;
        const unsigned flags = MPOL_MF_MOVE | (g.shared ? MPOL_MF_MOVE_ALL : 0u);
        bound.emplace_back(host, len);
        if (mbind_node(host, len, MPOL_BIND, part.pnode, flags) != 0) {
          const int err = errno;
          unbind();
          return make_error(err == ENOMEM ? Errc::no_memory : err == EINVAL ? Errc::invalid_node : Errc::unsupported,
                            "binding vnode ", part.vnode, " ", GpaRange{at << kFrameShift, end << kFrameShift},
                            " to node ", part.pnode, ": mbind failed: ", std::strerror(err));
        }
        at = end;
      }
    }
  }
  // ---- populate ----
  if (options.populate) {
    // MADV_POPULATE_WRITE is asked of a private scratch page, not inferred
    // from a region's answer: on kernels that have it a region can give
    // EINVAL too (VM_IO / PFNMAP), and writing to it by touch would be wrong.
    bool madvise_ok = !options.populate_by_touch && populate_write_supported();
    for (const GuestRamRegion& g : ram->regions_) {
      const GpaRange range{g.guest_phys, g.guest_phys + g.bytes};
      if (madvise_ok) {
        if (::madvise(g.host, g.bytes, MADV_POPULATE_WRITE) == 0) {
          ram->populated_madvise_ += g.bytes >> kFrameShift;
          continue;
        }
        const int err = errno;
        unbind();  // pages populated so far stay (nothing undoes a fault)
        return make_error(err == ENOMEM || err == EFAULT ? Errc::no_memory
                          : err == EINVAL                ? Errc::invalid_argument
                                                         : Errc::unsupported,
                          "populating ", ram_backing_name(g.backing), " region ", range, ": ", std::strerror(err));
      }
      // One byte per page, written with its own value: a write fault that
      // changes nothing even if the VMM writes there meanwhile. A
      // compare-and-swap that succeeds is a real store; an atomic add of
      // zero is not (clang turns it into a load, or drops it: a read fault
      // maps the zero page and populates nothing). The mapping was checked
      // readable and writable above.
      const std::uint64_t pb = page_bytes(g);
      for (std::uint64_t off = 0; off < g.bytes; off += pb) {
        unsigned char* byte = static_cast<unsigned char*>(g.host) + off;
        unsigned char seen = 0;  // fresh memory's value: most pages take one try
        while (!__atomic_compare_exchange_n(byte, &seen, seen, /*weak=*/true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        }
      }
      ram->populated_touch_ += g.bytes >> kFrameShift;
    }
  }
  return ram;
}

Status GuestRam::query(Gfn first, std::span<PageState> out) noexcept {
  if (first > page_count_ || out.size() > page_count_ - first) return Errc::invalid_argument;
  std::lock_guard<std::mutex> lk(mover_mu_);
  for (std::size_t i = 0; i < out.size();) {
    const Gfn gfn = first + i;
    const int r = region_of_gfn(gfn);
    if (r < 0) {
      out[i++] = PageState{};
      continue;
    }
    const GuestRamRegion& g = regions_[static_cast<std::size_t>(r)];
    const Gfn base = g.guest_phys >> kFrameShift;
    const std::size_t n = std::min<std::uint64_t>(out.size() - i, base + (g.bytes >> kFrameShift) - gfn);
    KernelMover& mv = movers_[static_cast<std::size_t>(r)];
    Status st = mv.query(gfn - base, out.subspan(i, n));
    if (!st) return st;
    // A page moved through the helper stays unmapped here until the guest
    // touches it again: the helper still maps it, so ask there (a refusal
    // leaves it not present).
    if (helper_.pid > 0 && g.backing == RamBacking::memfd && g.shared)
      for (std::size_t at = i; at < i + n; at += kChunk) {
        const std::size_t len = std::min(kChunk, i + n - at);
        if (std::none_of(out.begin() + at, out.begin() + at + len, [](const PageState& p) { return p.node == kNoNode; }))
          continue;
        PageState there[kChunk];
        if (!mv.query_through(helper_.pid, gfn - base + (at - i), std::span<PageState>(there, len))) break;
        for (std::size_t k = 0; k < len; ++k)
          if (out[at + k].node == kNoNode) out[at + k] = there[k];
      }
    if (base % KernelMover::kHugeBlockPages)  // its huge pages are not the migrator's aligned blocks
      for (std::size_t k = i; k < i + n; ++k) out[k].order = 0;
    i += n;
  }
  return {};
}

Result<MoveTotals> GuestRam::move(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                                  std::span<MoveOutcome> out) noexcept {
  std::lock_guard<std::mutex> lk(mover_mu_);
  return move_locked(gfns, target, granularity, out);
}

Result<MoveTotals> GuestRam::move_locked(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                                         std::span<MoveOutcome> out) noexcept {
  if (out.size() != gfns.size()) return Errc::invalid_argument;
  if (!topo_->memory_nodes().test(target)) return Errc::invalid_node;
  // Before anything is zapped: may this process still move pages through
  // the helper (a seccomp filter or a dropped capability since create()
  // says no)? If not, the helper is dropped and this move goes the old way
  // at once, every page still mapped here. (Refused between this probe and
  // the move itself: the zapped pages are mapped back and moved the old
  // way, below.)
  for (std::size_t r = 0; r < regions_.size(); ++r)
    if (via_helper(r)) {
      if (Status ok = movers_[r].may_move_through(helper_.pid); !ok && ok.error() == Errc::unsupported)
        helper_.pid = -helper_.pid;  // the destructor still reaps it
      break;
    }
  pause_for_move(gfns);
  MoveTotals totals;
  Errc failed = Errc::ok;
  move_run(gfns, target, granularity, out, totals, failed);
  resume_sampler();
  if (failed != Errc::ok) return failed;
  moves_.fetch_add(1, std::memory_order_relaxed);
  pages_moved_.fetch_add(totals.frames_moved, std::memory_order_relaxed);
  return totals;
}

bool GuestRam::via_helper(std::size_t r) const noexcept {
  return helper_.pid > 0 && regions_[r].backing == RamBacking::memfd && regions_[r].shared;
}

void GuestRam::pause_for_move(std::span<const Gfn> gfns) noexcept {
  // A zapped page of an open window is invisible to move_pages from this
  // process: windows over listed memfd pages close first, unless they move
  // through the helper. (Anonymous pages move write-protected: the pause
  // then waits for no window being armed.)
  bool close = false;
  for (std::size_t i = 0; i < gfns.size() && !close; ++i) {
    const int r = region_of_gfn(gfns[i]);
    close = r >= 0 && regions_[static_cast<std::size_t>(r)].backing == RamBacking::memfd &&
            !via_helper(static_cast<std::size_t>(r));
  }
  pause_sampler(gfns, close);
}

void GuestRam::move_each(std::span<MoveRequest> requests) noexcept {
  std::lock_guard<std::mutex> lk(mover_mu_);
  // Through the helper (its socket takes one request at a time), or one
  // request: one move each.
  bool helper = false;
  for (std::size_t r = 0; r < regions_.size(); ++r) helper |= via_helper(r);
  if (helper || requests.size() < 2) {
    for (MoveRequest& q : requests) q.result = move_locked(q.gfns, q.target, q.granularity, q.out);
    return;
  }
  // Huge blocks of whole_blocks requests are gathered, up to kGather, and
  // moved together (KernelMover::move_blocks: one moving move_pages call
  // per kBlockGroup, each block to its request's target); every other
  // listed page is marked kLeft and moves with its request afterwards, as
  // move() moves it (a block listed twice then finds itself on target:
  // moved, 0 frames).
  constexpr auto kLeft = static_cast<MoveOutcome>(0xff);
  constexpr std::size_t kGather = 4 * KernelMover::kBlockGroup;
  KernelMover::BlockMove blocks[kGather];
  std::size_t owner[kGather];  // request of each gathered block
  std::size_t nb = 0, paused = 0;
  bool gathered_any = false;
  auto move_gathered = [&] {
    if (nb == 0) return;
    gathered_any = true;
    // Refused: nothing moved in this call (KernelMover::move_blocks). A
    // request with frames moved by an earlier call keeps them (an error
    // would say none of its pages was touched): the refused blocks are
    // busy, tried again later.
    if (Status ok = KernelMover::move_blocks(0, std::span<const KernelMover::BlockMove>(blocks, nb)); !ok)
      for (std::size_t b = 0; b < nb; ++b) {
        MoveRequest& q = requests[owner[b]];
        if (q.result && q.result->frames_moved > 0) *blocks[b].out = MoveOutcome::busy;
        else q.result = ok.error();
      }
    nb = 0;
  };
  for (MoveRequest& q : requests) {
    if (q.out.size() != q.gfns.size()) {
      q.result = Errc::invalid_argument;
    } else if (!topo_->memory_nodes().test(q.target)) {
      q.result = Errc::invalid_node;
    } else {
      q.result = MoveTotals{};
      pause_for_move(q.gfns);
      ++paused;
    }
  }
  for (std::size_t k = 0; k < requests.size(); ++k) {
    MoveRequest& q = requests[k];
    for (std::size_t i = 0; i < q.gfns.size() && q.result; ++i) {
      q.out[i] = kLeft;
      if (q.granularity != MoveGranularity::whole_blocks) continue;
      const int r = region_of_gfn(q.gfns[i]);
      if (r < 0) continue;
      const KernelMover& m = movers_[static_cast<std::size_t>(r)];
      const std::uint64_t page = q.gfns[i] - (regions_[static_cast<std::size_t>(r)].guest_phys >> kFrameShift);
      if (!m.huge_block(page)) continue;
      const std::uint64_t head = page & ~(KernelMover::kHugeBlockPages - 1);
      bool listed = false;
      for (std::size_t b = 0; b < nb && !listed; ++b) listed = blocks[b].mover == &m && blocks[b].head == head;
      if (listed) continue;
      if (nb == kGather) {
        move_gathered();
        if (!q.result) break;
      }
      q.out[i] = MoveOutcome::busy;  // until move_blocks answers
      blocks[nb] = KernelMover::BlockMove{&m, head, q.target, &q.out[i], &q.result->frames_moved};
      owner[nb++] = k;
    }
  }
  move_gathered();
  if (gathered_any) grouped_moves_.fetch_add(1, std::memory_order_relaxed);
  for (MoveRequest& q : requests) {
    if (!q.result) continue;
    Gfn left[kChunk];
    MoveOutcome left_out[kChunk];
    std::size_t index[kChunk];
    std::size_t n = 0;
    Errc failed = Errc::ok;
    auto move_left = [&] {
      if (n == 0 || failed != Errc::ok) return;
      MoveTotals t;
      move_run(std::span<const Gfn>(left, n), q.target, q.granularity, std::span<MoveOutcome>(left_out, n), t, failed);
      if (failed == Errc::ok) {
        q.result->frames_moved += t.frames_moved;
        for (std::size_t i = 0; i < n; ++i) q.out[index[i]] = left_out[i];
      }
      n = 0;
    };
    for (std::size_t i = 0; i < q.gfns.size(); ++i) {
      if (q.out[i] != kLeft) continue;
      left[n] = q.gfns[i];
      index[n++] = i;
      if (n == kChunk) move_left();
    }
    move_left();
    if (failed != Errc::ok) {
      // Nothing moved in the refused call; frames moved before it stay
      // booked (then the pages not tried are busy), else the error.
      if (q.result->frames_moved > 0) {
        for (MoveOutcome& o : q.out)
          if (o == kLeft) o = MoveOutcome::busy;
      } else {
        q.result = failed;
      }
    }
  }
  for (std::size_t i = 0; i < paused; ++i) resume_sampler();
  for (MoveRequest& q : requests) {
    if (!q.result) {
      if (q.out.size() == q.gfns.size())
        for (MoveOutcome& o : q.out)
          if (o == kLeft) o = MoveOutcome::busy;  // not tried
      continue;
    }
    moves_.fetch_add(1, std::memory_order_relaxed);
    pages_moved_.fetch_add(q.result->frames_moved, std::memory_order_relaxed);
  }
}

void GuestRam::move_run(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                        std::span<MoveOutcome> out, MoveTotals& totals, Errc& failed) noexcept {
  Gfn local[kChunk], global[kChunk];
  MoveOutcome local_out[kChunk];
  std::size_t index[kChunk];
  bool stopped = false;  // a refusal after frames moved: the rest is busy
  for (std::size_t at = 0; at < gfns.size() && failed == Errc::ok && !stopped; at += kChunk) {
    const std::size_t len = std::min(kChunk, gfns.size() - at);
    for (std::size_t i = 0; i < len; ++i) out[at + i] = MoveOutcome::not_present;  // holes
    for (std::size_t r = 0; r < regions_.size() && failed == Errc::ok && !stopped; ++r) {
      const Gfn base = regions_[r].guest_phys >> kFrameShift, pages = regions_[r].bytes >> kFrameShift;
      std::size_t n = 0;
      for (std::size_t i = 0; i < len; ++i)
        if (gfns[at + i] >= base && gfns[at + i] - base < pages) {
          local[n] = gfns[at + i] - base;
          global[n] = gfns[at + i];
          index[n++] = at + i;
        }
      if (n == 0) continue;
      const std::span<const Gfn> listed(local, n);
      Result<MoveTotals> moved = MoveTotals{};
      if (!via_helper(r)) {
        moved = movers_[r].move(listed, target, granularity, std::span<MoveOutcome>(local_out, n));
      } else {
        // The helper maps the pages before the VMM's mapping loses them: if
        // it is gone, nothing was zapped and the next move (the old way)
        // finds every page present; if it could not map them, they move
        // the old way now.
        const HelperMap mapped = helper_map(r, listed);
        if (mapped == HelperMap::mapped) {
          const bool windowed = zap_for_move(r, listed, std::span<const Gfn>(global, n));
          moved = movers_[r].move_through(helper_.pid, listed, target, granularity, std::span<MoveOutcome>(local_out, n));
          if (!moved && moved.error() == Errc::unsupported) {
            // Not permitted (or gone) after the probe, with the pages zapped
            // here: the old way from now on, starting with these. Windows
            // over what is left of this move close (a zapped page is
            // invisible to move_pages from this process), the pages zapped
            // without a window are mapped back, then they move from here.
            helper_.pid = -helper_.pid;
            if (NUMAHEAP_FAULT(helper_refusal_leaves_zapped)) {
              moved = MoveTotals{};
              for (std::size_t i = 0; i < n; ++i) local_out[i] = MoveOutcome::busy;
            } else {
              close_sampler_windows(gfns.subspan(at));
              map_back(r, listed);
              moved = movers_[r].move(listed, target, granularity, std::span<MoveOutcome>(local_out, n));
            }
          } else {
            // Pages zapped without a window are mapped back at once, moved
            // or not: no IPI (a new page-table entry needs no shootdown),
            // and nothing is left reachable only through the helper, which
            // can be dropped at any time (it dies, a later refusal): a page
            // unmapped here is invisible to move_pages from this process.
            // (Windowed pages are mapped back by the window's close.)
            if (!windowed) map_back(r, listed);
            if (moved) helper_moves_.fetch_add(1, std::memory_order_relaxed);
            // Refused part way (the mover keeps what moved, busy for the
            // rest; the pages are mapped back above or windowed): the next
            // move's probe (may_move_through, in move_locked) drops the
            // helper if moving through it is no longer permitted.
          }
        } else if (mapped == HelperMap::refused) {
          moved = movers_[r].move(listed, target, granularity, std::span<MoveOutcome>(local_out, n));
        } else {
          for (std::size_t i = 0; i < n; ++i) local_out[i] = MoveOutcome::busy;  // tried again without it
        }
      }
      if (!moved && totals.frames_moved == 0) {
        failed = moved.error();  // nothing touched: the whole call's error
        break;
      }
      if (!moved) {
        // Refused after earlier regions or chunks moved frames: those stay
        // booked (an error would say no page was touched). This region's
        // pages and every page not tried yet are busy; holes stay holes.
        for (std::size_t i = 0; i < n; ++i) out[index[i]] = MoveOutcome::busy;
        for (std::size_t i = at; i < gfns.size(); ++i) {
          const int rr = region_of_gfn(gfns[i]);
          if (i < at + len ? rr > static_cast<int>(r) : rr >= 0) out[i] = MoveOutcome::busy;
          else if (i >= at + len) out[i] = MoveOutcome::not_present;
        }
        stopped = true;
        break;
      }
      if (regions_[r].shared) moves_all_.fetch_add(1, std::memory_order_relaxed);
      totals.frames_moved += moved->frames_moved;
      for (std::size_t i = 0; i < n; ++i) out[index[i]] = local_out[i];
    }
  }
}

bool GuestRam::node_frames(NodeId node, std::uint64_t& free, std::uint64_t& managed) const noexcept {
  return host::node_meminfo_frames(node, free, managed);
}

Status GuestRam::relayout(std::span<const GuestRange> layout) noexcept {
  const std::vector<GuestRange> old = this->layout();
  std::uint64_t old_pages = 0, new_pages = 0;
  for (const GuestRange& r : old) old_pages += r.pages;
  for (const GuestRange& r : layout) {
    if (r.first > page_count_ || r.pages > page_count_ - r.first) return Errc::invalid_argument;
    if (r.pnode != kNoNode && !topo_->memory_nodes().test(r.pnode)) return Errc::invalid_node;
    new_pages += r.pages;
  }
  if (old_pages != new_pages) return Errc::invalid_argument;
  // Future faults of each range go to its new node; the migrator moves
  // the pages already there. A refused rebind is an error: the ranges
  // rebound so far get the old layout's binding back (best effort: a
  // kernel that refuses one mbind may refuse those too) and the layout
  // stays.
  int err = 0;
  auto rebind = [&](std::span<const GuestRange> l, bool all) {
    for (const GuestRange& part : l) {
      if (part.pnode == kNoNode && !all) continue;
      for (Gfn at = part.first; at < part.first + part.pages;) {
        const int r = region_of_gfn(at);
        if (r < 0) {
          ++at;
          continue;
        }
        const GuestRamRegion& g = regions_[static_cast<std::size_t>(r)];
        const Gfn end = std::min(part.first + part.pages, (g.guest_phys + g.bytes) >> kFrameShift);
        const int mode = part.pnode == kNoNode ? MPOL_DEFAULT : MPOL_BIND;
        if (mbind_node(host_address(at), (end - at) << kFrameShift, mode, part.pnode, 0) != 0 && err == 0) {
          err = errno;
          if (!all) return;
        }
        at = end;
      }
    }
  };
  rebind(layout, false);
  if (err != 0) {
    const int refused = err;
    rebind(old, true);
    return refused == ENOMEM ? Errc::no_memory : Errc::unsupported;
  }
  std::lock_guard<std::mutex> g(layout_mu_);
  layout_.assign(layout.begin(), layout.end());  // host code: -fno-exceptions, OOM aborts like std::vector
  return {};
}

std::vector<GuestRange> GuestRam::layout() const {
  std::lock_guard<std::mutex> g(layout_mu_);
  return layout_;
}

MigrateGuestOptions GuestRam::migrate_options(std::uint32_t vcpus, bool vnuma_bound) const {
  MigrateGuestOptions o;
  o.vcpus = vcpus;
  o.vnuma_bound = vnuma_bound;
  std::lock_guard<std::mutex> g(layout_mu_);
  for (const GuestRange& r : layout_) (void)o.layout.push_back(r);
  return o;
}

GuestRamStats GuestRam::stats() const noexcept {
  GuestRamStats s;
  for (const GuestRamRegion& g : regions_) s.pages += g.bytes >> kFrameShift;
  s.populated_madvise = populated_madvise_.load(std::memory_order_relaxed);
  s.populated_touch = populated_touch_.load(std::memory_order_relaxed);
  s.moves = moves_.load(std::memory_order_relaxed);
  s.pages_moved = pages_moved_.load(std::memory_order_relaxed);
  s.moves_all = moves_all_.load(std::memory_order_relaxed);
  s.moves_via_helper = helper_moves_.load(std::memory_order_relaxed);
  s.moves_grouped = grouped_moves_.load(std::memory_order_relaxed);
  s.helper_refusals = helper_refusals_.load(std::memory_order_relaxed);
  s.helper_last_errno = helper_last_errno_.load(std::memory_order_relaxed);
  return s;
}

void GuestRam::pause_sampler(std::span<const Gfn> gfns, bool close) noexcept {
  std::lock_guard<std::mutex> g(sampler_lock_);
  ++moves_paused_;
  if (sampler_) detail::sampler_pause(*sampler_, gfns, close);
}

void GuestRam::resume_sampler() noexcept {
  std::lock_guard<std::mutex> g(sampler_lock_);
  --moves_paused_;
  if (sampler_) detail::sampler_resume(*sampler_);
}

}  // namespace numaheap
