// KernelMover: move_pages(2) on a VMM's guest RAM mapping.
//
// The kernel does the write-protect / copy / remap itself (it unmaps the
// page and makes faulting threads wait), so the guest keeps running and no
// hook is needed. Work is done in fixed chunks of stack arrays: no heap
// allocation per call.
#include <fcntl.h>
#include <numaif.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "numaheap/guest_memory.h"
#include "numaheap/mover.h"

#include "allocator/platform/fault_injection.h"
#include "migrate/host/node_meminfo.h"

namespace numaheap {

namespace {

constexpr std::size_t kChunk = 256;

// Every move_pages(2) call of the mover. In the fault-injection build
// (tests only) a test may stand in for the kernel (fault::move_pages_hook).
long sys_move_pages(int pid, unsigned long count, void** pages, const int* nodes, int* status, int flags) {
#if defined(NUMAHEAP_FAULT_INJECTION) && NUMAHEAP_FAULT_INJECTION
  if (const fault::MovePagesFn f = fault::move_pages_hook.load(std::memory_order_acquire))
    return f(pid, count, pages, nodes, status, flags);
#endif
  return ::move_pages(pid, count, pages, nodes, status, flags);
}

// A moving call refused with this errno moved nothing: Linux checks the
// flags' privilege (CAP_SYS_NICE for MPOL_MF_MOVE_ALL) and the access to
// the process before it looks at any page, and seccomp refuses the call
// before it starts. Any other error may come after part of the batch
// moved (a missing node or a failed migration stops it midway).
bool refused_untouched(int err) { return err == EPERM || err == ESRCH || err == ENOSYS; }

// Where `count` pages are now (nodes = NULL), after a moving call that may
// have moved some: their outcomes and frame counts depend on the answer,
// so a refused query is asked once more before they count as unknown.
bool where_now(int pid, std::size_t count, void** pages, int* status) {
  for (int attempt = 0; attempt < 2; ++attempt)
    if (sys_move_pages(pid, count, pages, nullptr, status, 0) == 0) return true;
  return false;
}

MoveOutcome outcome_of_status(int status, NodeId target) {
  if (status >= 0)
    return static_cast<NodeId>(status) == target ? MoveOutcome::moved : MoveOutcome::busy;
  switch (-status) {
    case ENOMEM: return MoveOutcome::no_memory;
    case ENOENT:
    case EFAULT: return MoveOutcome::not_present;
    case EACCES: return MoveOutcome::shared;
    case EPERM: return MoveOutcome::pinned;
    case ENODEV: return MoveOutcome::invalid_node;
    default: return MoveOutcome::busy;  // EBUSY, EAGAIN, EIO, EINVAL (dirty, not movable now)
  }
}

Errc errc_of_call(int err) {
  switch (err) {
    case ENODEV: return Errc::invalid_node;
    case ENOMEM: return Errc::no_memory;
    case EINVAL: return Errc::invalid_argument;
    default: return Errc::unsupported;  // EPERM (seccomp, capabilities), ENOSYS
  }
}

constexpr std::uint64_t kBlockPages = KernelMover::kHugeBlockPages;
constexpr std::uint64_t kBlockBytes = kBlockPages << kFrameShift;

// /proc/self/pagemap, opened once per process (-1: unreadable; frame
// numbers only with CAP_SYS_ADMIN): a forked child opens its own, as the
// descriptor it inherits reads its parent's page tables. (Packed as pid and
// descriptor in one word: no lock a fork could leave held. The inherited
// descriptor is not closed: a thread of the child might still be using it.)
int pagemap_fd() {
  static std::atomic<std::uint64_t> cached{0};  // pid << 32 | (fd + 1); 0: none yet
  const auto me = static_cast<std::uint32_t>(::getpid());
  std::uint64_t now = cached.load(std::memory_order_acquire);
  if (now && static_cast<std::uint32_t>(now >> 32) == me) return static_cast<int>(now & 0xffffffffu) - 1;
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  const std::uint64_t mine = std::uint64_t{me} << 32 | static_cast<std::uint32_t>(fd + 1);
  if (cached.compare_exchange_strong(now, mine, std::memory_order_acq_rel)) return fd;
  if (fd >= 0) ::close(fd);  // another thread of this process opened it first
  return static_cast<std::uint32_t>(now >> 32) == me ? static_cast<int>(now & 0xffffffffu) - 1 : -1;
}
// /proc/kpageflags (root only), the same for every process.
int kpageflags_fd() {
  static const int fd = ::open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
  return fd;
}

// PAGEMAP_SCAN (Linux 6.7+): asks /proc/self/pagemap which pages of a range
// have given properties, with no privilege. Its argument and result, as
// the ioctl's manual page (PAGEMAP_SCAN(2const)) gives them; Debian 12's
// kernel headers predate it.
struct PagemapScanArg {
  std::uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
      category_anyof_mask, return_mask;
};
struct PagemapRegion {
  std::uint64_t start, end, categories;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PagemapScanArg);
constexpr std::uint64_t kPageIsHuge = std::uint64_t{1} << 6;  // a PMD-mapped THP, or hugetlb
std::atomic<bool> pagemap_scan_missing{false};                 // the kernel said it has no such ioctl

}  // namespace

int KernelMover::thp_by_pagemap_scan(const void* head) noexcept {
  const int pm = pagemap_fd();
  if (pm < 0 || pagemap_scan_missing.load(std::memory_order_relaxed)) return -1;
  const auto a = reinterpret_cast<std::uintptr_t>(head);
  PagemapRegion r[2] = {};
  PagemapScanArg arg{};
  arg.size = sizeof arg;
  arg.start = a;
  arg.end = a + kBlockBytes;
  arg.vec = reinterpret_cast<std::uintptr_t>(r);
  arg.vec_len = 2;
  arg.category_mask = kPageIsHuge;  // report only huge pages
  arg.return_mask = kPageIsHuge;
  const int n = ::ioctl(pm, kPagemapScan, &arg);
  if (n < 0) {
    if (errno == ENOTTY || errno == EINVAL) pagemap_scan_missing.store(true, std::memory_order_relaxed);
    return -1;
  }
  // One region of huge pages covering the whole aligned block: one PMD maps it.
  return n == 1 && r[0].start == a && r[0].end == a + kBlockBytes ? 1 : 0;
}

// True when one transparent huge page maps the aligned 2 MiB at `head`:
// its 512 pagemap entries are present with consecutive frame numbers from
// a 512-aligned first one, and that frame is a THP's head.
int KernelMover::thp_by_frame_flags(const void* head) noexcept {
  constexpr std::uint64_t kPresent = std::uint64_t{1} << 63, kPfnMask = (std::uint64_t{1} << 55) - 1;
  constexpr std::uint64_t kCompoundHead = std::uint64_t{1} << 15, kThp = std::uint64_t{1} << 22;  // KPF_*
  const int pm = pagemap_fd(), kf = kpageflags_fd();
  if (pm < 0 || kf < 0) return -1;
  std::uint64_t e[kBlockPages];
  const auto off = static_cast<off_t>((reinterpret_cast<std::uintptr_t>(head) >> kFrameShift) * sizeof e[0]);
  if (::pread(pm, e, sizeof e, off) != static_cast<ssize_t>(sizeof e)) return -1;
  if (!(e[0] & kPresent)) return 0;
  const std::uint64_t pfn = e[0] & kPfnMask;
  if (pfn == 0) return -1;  // frame numbers hidden (no CAP_SYS_ADMIN)
  if (pfn % kBlockPages) return 0;
  for (std::uint64_t i = 0; i < kBlockPages; ++i)
    if (!(e[i] & kPresent) || (e[i] & kPfnMask) != pfn + i) return 0;
  std::uint64_t flags = 0;
  if (::pread(kf, &flags, sizeof flags, static_cast<off_t>(pfn * sizeof flags)) != static_cast<ssize_t>(sizeof flags))
    return -1;
  return (flags & kThp) && (flags & kCompoundHead) ? 1 : 0;
}

namespace {

// PAGEMAP_SCAN where the kernel has it (no privilege needed), else frame
// numbers and page flags (CAP_SYS_ADMIN, root); neither: not huge.
bool thp_maps(const unsigned char* head) {
  if (const int scan = KernelMover::thp_by_pagemap_scan(head); scan >= 0) return scan == 1;
  return KernelMover::thp_by_frame_flags(head) == 1;
}

}  // namespace

bool KernelMover::huge_block(std::uint64_t page) const noexcept {
  if (page >= pages_) return false;
  const std::uint64_t head = page & ~(kBlockPages - 1);
  const unsigned char* a = base_ + (head << kFrameShift);
  if (head + kBlockPages > pages_ || reinterpret_cast<std::uintptr_t>(a) % kBlockBytes) return false;
  if (probe_) return probe_(probe_ctx_, a);
  if (hugetlb_) return true;
  timespec ts{};
  (void)::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  const std::uint64_t now = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
  std::atomic_ref<std::uint64_t> key(probed_key_), at(probed_ns_);
  const std::uint64_t k = key.load(std::memory_order_relaxed);
  if (k >> 1 == head && now - at.load(std::memory_order_relaxed) <= kProbeReuseNs) return (k & 1) != 0;
  const bool huge = thp_maps(a);
  key.store(head << 1 | (huge ? 1 : 0), std::memory_order_relaxed);
  at.store(now, std::memory_order_relaxed);
  return huge;
}

Result<KernelMover> KernelMover::create(void* base, std::uint64_t pages, bool move_all, bool hugetlb) {
  if (!base || pages == 0 || reinterpret_cast<std::uintptr_t>(base) % kFrameSize) return Errc::invalid_argument;
  if (::sysconf(_SC_PAGESIZE) != static_cast<long>(kFrameSize)) return Errc::unsupported;
  KernelMover m;
  m.base_ = static_cast<unsigned char*>(base);
  m.pages_ = pages;
  m.move_all_ = move_all;
  m.hugetlb_ = hugetlb;
  return m;
}

bool KernelMover::node_frames(NodeId node, std::uint64_t& free, std::uint64_t& managed) const noexcept {
  return host::node_meminfo_frames(node, free, managed);
}

Status KernelMover::query(Gfn first, std::span<PageState> out) noexcept { return query_through(0, first, out); }

Status KernelMover::query_through(int pid, Gfn first, std::span<PageState> out) noexcept {
  if (first > pages_ || out.size() > pages_ - first) return Errc::invalid_argument;
  // One address per huge block (every page of a THP is on its node) and
  // one per other page, kChunk addresses per move_pages call; each covers
  // out[at[k], at[k] + len[k]).
  void* addrs[kChunk];
  int status[kChunk];
  std::size_t at[kChunk], len[kChunk];
  std::uint8_t order[kChunk];
  std::size_t n = 0;
  auto ask = [&]() -> Status {
    if (n && sys_move_pages(pid, n, addrs, nullptr, status, 0) != 0) return errc_of_call(errno);
    for (std::size_t k = 0; k < n; ++k) {
      const PageState p =
          status[k] >= 0 ? PageState{static_cast<NodeId>(status[k]), P2mFlags::present, order[k]} : PageState{};
      for (std::size_t i = at[k]; i < at[k] + len[k]; ++i) out[i] = p;
    }
    n = 0;
    return {};
  };
  for (std::size_t i = 0; i < out.size();) {
    const std::uint64_t page = first + i;
    const std::uint64_t block_end = std::min<std::uint64_t>((page & ~(kBlockPages - 1)) + kBlockPages, first + out.size());
    const bool huge = huge_block(page);
    at[n] = i;
    len[n] = huge ? block_end - page : 1;
    order[n] = huge ? kHugeBlockOrder : 0;
    addrs[n++] = base_ + (page << kFrameShift);
    i += len[n - 1];
    if (n == kChunk)
      if (Status ok = ask(); !ok) return ok;
  }
  return ask();
}

Status KernelMover::move_blocks(int pid, std::span<const BlockMove> blocks) noexcept {
  // Every move_pages call that moves (nodes given) costs far more than the
  // pages it moves on a busy host: the kernel drains every CPU's LRU caches
  // and waits out an expedited RCU grace period first (lru_cache_disable,
  // Linux 5.13+), both a round trip to every CPU, and concurrent callers
  // queue for the drain. So the blocks move in one call per kBlockGroup:
  // their first pages, each of which takes its huge page whole, each to its
  // own target. Only what is still elsewhere after it (a huge page the
  // kernel split) is asked for again, block by block.
  std::uint64_t was[kBlockGroup][kBlockPages / 64];  // pages elsewhere before, a bit each
  void* addrs[kBlockPages];
  int status[kBlockPages], nodes[kBlockPages];
  auto fill = [&](const BlockMove& m) {
    for (std::uint64_t i = 0; i < kBlockPages; ++i) addrs[i] = m.mover->base_ + ((m.head + i) << kFrameShift);
  };
  // Errors: once a moving call has been made, pages may have changed node
  // even if it, or a later call, failed (the kernel moves what it gathered
  // before it stops). So a failed call stops the moving but not the
  // accounting: every block a moving call may have touched is asked where
  // it is, its frames on target count and its outcome says what is left
  // (busy: try again). Blocks not tried are busy. Only when no frame
  // changed node (and none may have, unseen) is the failure the call's.
  Errc failed = Errc::ok;     // the first refused call's error
  std::uint64_t changed = 0;  // frames seen to change node
  bool unknown = false;       // a block that may have moved could not be asked where it is
  // A group's blocks share the call's flags: blocks of MPOL_MF_MOVE_ALL
  // movers (it needs CAP_SYS_NICE) go in groups of their own.
  const BlockMove* group[kBlockGroup];
  std::size_t in_group = 0;
  auto move_group = [&](int flags) {
    const std::size_t count = in_group;
    in_group = 0;
    if (failed != Errc::ok) {  // a call failed in an earlier group: not tried
      for (std::size_t b = 0; b < count; ++b) *group[b]->out = MoveOutcome::busy;
      return;
    }
    void* firsts[kBlockGroup];
    int first_nodes[kBlockGroup], first_status[kBlockGroup];
    std::size_t nf = 0;
    bool any[kBlockGroup];
    for (std::size_t b = 0; b < count; ++b) {
      const BlockMove& m = *group[b];
      auto elsewhere = [&](int st) { return st >= 0 && static_cast<NodeId>(st) != m.target; };
      fill(m);
      if (sys_move_pages(pid, kBlockPages, addrs, nullptr, status, 0) != 0) {
        failed = errc_of_call(errno);  // nothing of this group moved yet
        for (std::size_t k = 0; k < count; ++k) *group[k]->out = MoveOutcome::busy;
        return;
      }
      bool present = false;
      any[b] = false;
      for (std::uint64_t i = 0; i < kBlockPages; ++i) {
        const bool e = elsewhere(status[i]);
        was[b][i / 64] = (i % 64 == 0 ? 0 : was[b][i / 64]) | (std::uint64_t{e} << (i % 64));
        any[b] |= e;
        present |= status[i] >= 0;
      }
      *m.out = present ? MoveOutcome::moved : MoveOutcome::not_present;
      if (any[b] && elsewhere(status[0])) {
        firsts[nf] = addrs[0];
        first_nodes[nf++] = static_cast<int>(m.target);
      }
    }
    bool untouched = false;  // the group's moving call was refused before any page
    if (nf && sys_move_pages(pid, nf, firsts, first_nodes, first_status, flags) < 0) {
      const int err = errno;
      failed = errc_of_call(err);
      untouched = refused_untouched(err);
    }
    // Their pages are asked again below with the rest: first_status unused.
    for (std::size_t b = 0; b < count; ++b) {
      if (!any[b]) continue;
      const BlockMove& m = *group[b];
      if (untouched) {  // nothing of the group moved: what was elsewhere still is
        *m.out = MoveOutcome::busy;
        continue;
      }
      auto elsewhere = [&](int st) { return st >= 0 && static_cast<NodeId>(st) != m.target; };
      fill(m);
      // Where the block is after the group's call; unless a call failed,
      // what is still elsewhere (a huge page the kernel split) moves now.
      if (!where_now(pid, kBlockPages, addrs, status)) {
        if (failed == Errc::ok) failed = errc_of_call(errno);
        unknown = true;
        *m.out = MoveOutcome::busy;
        continue;
      }
      std::size_t n = 0;
      std::uint64_t index[kBlockPages];
      void* rest[kBlockPages];
      int rest_status[kBlockPages];
      if (failed == Errc::ok) {
        for (std::uint64_t i = 0; i < kBlockPages; ++i)
          if (elsewhere(status[i])) {
            rest[n] = addrs[i];
            nodes[n] = static_cast<int>(m.target);
            index[n++] = i;
          }
        for (std::size_t i = 0; i < n; ++i) rest_status[i] = -EBUSY;  // see move(): no status on a partial failure
        bool rest_untouched = false;  // status still says where the block is
        if (n && sys_move_pages(pid, n, rest, nodes, rest_status, flags) < 0) {
          const int err = errno;
          failed = errc_of_call(err);
          rest_untouched = refused_untouched(err);
        }
        // Where the block's pages are now: what changed node counts.
        if (n && !rest_untouched && !where_now(pid, kBlockPages, addrs, status)) {
          if (failed == Errc::ok) failed = errc_of_call(errno);
          unknown = true;
          *m.out = MoveOutcome::busy;
          continue;
        }
      }
      for (std::uint64_t i = 0; i < kBlockPages; ++i)
        if ((was[b][i / 64] >> (i % 64) & 1) && status[i] >= 0 && static_cast<NodeId>(status[i]) == m.target) {
          ++*m.frames;
          ++changed;
        }
      for (std::size_t i = 0; i < n; ++i) {
        const int now = status[index[i]];
        if (now < 0 || !elsewhere(now)) continue;  // gone meanwhile, or there after all
        const MoveOutcome why = outcome_of_status(rest_status[i], m.target);
        *m.out = why == MoveOutcome::moved ? MoveOutcome::busy : why;  // "moved" yet elsewhere: busy
        break;
      }
      if (n == 0)  // none tried again (a call failed): any page still elsewhere is busy
        for (std::uint64_t i = 0; i < kBlockPages; ++i)
          if (elsewhere(status[i])) {
            *m.out = MoveOutcome::busy;
            break;
          }
    }
  };
  for (const bool all : {false, true}) {
    for (const BlockMove& m : blocks) {
      if (m.mover->move_all_ != all) continue;
      group[in_group++] = &m;
      if (in_group == kBlockGroup) move_group(all ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE);
    }
    if (in_group) move_group(all ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE);
  }
  if (failed != Errc::ok && changed == 0 && !unknown) return failed;
  return {};
}

Result<MoveTotals> KernelMover::move(std::span<const Gfn> gfns, NodeId target, MoveGranularity granularity,
                                     std::span<MoveOutcome> out) noexcept {
  return move_through(0, gfns, target, granularity, out);
}

Status KernelMover::may_move_through(int pid) const noexcept {
  if (sys_move_pages(pid, 0, nullptr, nullptr, nullptr, move_all_ ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE) != 0)
    return errc_of_call(errno);
  return {};
}

Result<MoveTotals> KernelMover::move_through(int pid, std::span<const Gfn> gfns, NodeId target,
                                             MoveGranularity granularity, std::span<MoveOutcome> out) noexcept {
  if (out.size() != gfns.size()) return Errc::invalid_argument;
  if (target >= kMaxNodes) return Errc::invalid_node;
  if (granularity == MoveGranularity::whole_blocks) {
    // Huge blocks whole, a group of up to kBlockGroup listed one after
    // another at a time (move_blocks); a run of other listed pages, up to
    // kChunk, as pages. A block listed twice starts a new group: it finds
    // itself on target the second time (moved, 0 frames).
    MoveTotals totals;
    std::size_t i = 0;
    int next_huge = -1;  // huge_block(gfns[i]) when known
    while (i < gfns.size()) {
      std::uint64_t heads[kBlockGroup];
      std::size_t n = 0;
      const bool huge = next_huge >= 0 ? next_huge == 1 : huge_block(gfns[i]);
      next_huge = -1;
      for (n = 1; i + n < gfns.size() && n < (huge ? kBlockGroup : kChunk); ++n) {
        const bool h = huge_block(gfns[i + n]);
        if (h != huge) {
          next_huge = h;
          break;
        }
        if (!huge) continue;
        const std::uint64_t head = gfns[i + n] & ~(kBlockPages - 1);
        bool again = (gfns[i] & ~(kBlockPages - 1)) == head;
        for (std::size_t k = 1; k < n; ++k) again |= heads[k] == head;
        if (again) {
          next_huge = 1;
          break;
        }
        heads[n] = head;
      }
      if (huge) heads[0] = gfns[i] & ~(kBlockPages - 1);
      Result<MoveTotals> r = MoveTotals{};
      if (huge) {
        BlockMove m[kBlockGroup];
        for (std::size_t k = 0; k < n; ++k) m[k] = BlockMove{this, heads[k], target, &out[i + k], &r->frames_moved};
        if (Status ok = move_blocks(pid, std::span<const BlockMove>(m, n)); !ok) r = ok.error();
      } else {
        r = move_through(pid, gfns.subspan(i, n), target, MoveGranularity::pages, out.subspan(i, n));
      }
      if (!r) {
        if (i == 0) return r.error();
        for (std::size_t k = i; k < gfns.size(); ++k) out[k] = MoveOutcome::busy;  // later pages: not tried
        return totals;
      }
      totals.frames_moved += r->frames_moved;
      i += n;
    }
    return totals;
  }
  void* addrs[kChunk];
  int nodes[kChunk], status[kChunk];
  std::size_t index[kChunk];
  MoveTotals totals;
  // Pass 1: where every page is before anything moves (a huge page moved
  // for one chunk carries pages of the next along). `out` holds the answer
  // meanwhile: moved = already on target, busy = elsewhere, not_present.
  // A page of a huge block is refused (busy): the kernel would move the
  // whole huge page for it, 512 pages for one, and a block shared by two
  // nodes would bounce between them; huge blocks move whole only.
  std::uint64_t probed = ~std::uint64_t{0};
  bool probed_huge = false;
  std::size_t refused = 0;
  for (std::size_t at = 0; at < gfns.size(); at += kChunk) {
    const std::size_t len = std::min(kChunk, gfns.size() - at);
    std::size_t n = 0;
    for (std::size_t i = 0; i < len; ++i) {
      const Gfn gfn = gfns[at + i];
      if (gfn >= pages_) {
        out[at + i] = MoveOutcome::not_present;
        continue;
      }
      if ((gfn & ~(kBlockPages - 1)) != probed) {
        probed = gfn & ~(kBlockPages - 1);
        probed_huge = huge_block(gfn);
      }
      addrs[n] = base_ + (gfn << kFrameShift);
      nodes[n] = probed_huge;
      index[n++] = at + i;
    }
    if (n == 0) continue;
    if (sys_move_pages(pid, n, addrs, nullptr, status, 0) != 0) return errc_of_call(errno);
    for (std::size_t i = 0; i < n; ++i) {
      out[index[i]] = status[i] < 0                                 ? MoveOutcome::not_present
                      : static_cast<NodeId>(status[i]) == target ? MoveOutcome::moved
                      : nodes[i]                                 ? MoveOutcome::pinned  // refused, until the end
                                                                  : MoveOutcome::busy;
      refused += out[index[i]] == MoveOutcome::pinned;
    }
  }
  // Pass 2: move what is elsewhere. A refused moving call ends it: the
  // kernel may have moved part of that chunk before it stopped, so the
  // chunk is asked where its pages are now (what reached the target
  // counts); later chunks keep pass 1's answers (busy: not tried). Only
  // when no frame changed node is the failure the call's.
  Errc failed = Errc::ok;
  bool unknown = false;  // pages that may have moved could not be asked where they are
  for (std::size_t at = 0; at < gfns.size() && failed == Errc::ok; at += kChunk) {
    const std::size_t len = std::min(kChunk, gfns.size() - at);
    std::size_t n = 0;
    for (std::size_t i = 0; i < len; ++i) {
      if (out[at + i] != MoveOutcome::busy) continue;
      addrs[n] = base_ + (gfns[at + i] << kFrameShift);
      nodes[n] = static_cast<int>(target);
      index[n++] = at + i;
    }
    if (n == 0) continue;
    // When some pages fail to move, move_pages returns their count and
    // writes no status for the batch it tried: without this the array would
    // still hold pass 1's answers (another page's node, maybe the target).
    for (std::size_t i = 0; i < n; ++i) status[i] = -EBUSY;
    if (sys_move_pages(pid, n, addrs, nodes, status, move_all_ ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE) < 0) {
      const int err = errno;
      failed = errc_of_call(err);
      if (refused_untouched(err)) break;  // none of the chunk moved: pass 1's answers (busy) stand
      const bool known = where_now(pid, n, addrs, status);
      unknown |= !known;
      for (std::size_t i = 0; i < n; ++i) {
        out[index[i]] = known ? outcome_of_status(status[i], target) : MoveOutcome::busy;
        if (out[index[i]] == MoveOutcome::moved) ++totals.frames_moved;  // elsewhere before, on target now
      }
      break;
    }
    for (std::size_t i = 0; i < n; ++i) out[index[i]] = outcome_of_status(status[i], target);
    // A page reported still elsewhere may have moved with its huge page
    // meanwhile: ask the kernel again where those are.
    std::size_t again = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (out[index[i]] == MoveOutcome::busy) {
        addrs[again] = addrs[i];
        nodes[again++] = static_cast<int>(index[i]);  // reused as the out index
      }
    if (again && sys_move_pages(pid, again, addrs, nullptr, status, 0) == 0)
      for (std::size_t i = 0; i < again; ++i)
        out[static_cast<std::size_t>(nodes[i])] = outcome_of_status(status[i], target);
    for (std::size_t i = 0; i < n; ++i)  // only pages that were elsewhere before count
      if (out[index[i]] == MoveOutcome::moved) ++totals.frames_moved;
  }
  if (refused) {  // pages of huge blocks refused in pass 1 (pass 2's pinned pages are 4 KiB ones)
    probed = ~std::uint64_t{0};
    for (std::size_t i = 0; i < gfns.size(); ++i) {
      if (out[i] != MoveOutcome::pinned) continue;
      if ((gfns[i] & ~(kBlockPages - 1)) != probed) {
        probed = gfns[i] & ~(kBlockPages - 1);
        probed_huge = huge_block(gfns[i]);
      }
      if (probed_huge) out[i] = MoveOutcome::busy;
    }
  }
  if (failed != Errc::ok && totals.frames_moved == 0 && !unknown) return failed;
  return totals;
}

}  // namespace numaheap
