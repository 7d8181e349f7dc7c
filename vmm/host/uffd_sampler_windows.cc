// UffdSampler windows: arming pages (zap or write-protect) and closing
// them (map back or unprotect) -- the budget's walk, vcpu_moved() bursts,
// the pages a move needs mapped -- under window_mu (uffd_sampler_impl.h),
// and the map-back / unprotect ioctls the handler's resolves share.
#include <fcntl.h>
#include <pthread.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "numaheap/vmm.h"
#include "vmm/host/follow_clock.h"
#include "vmm/host/host_mappings.h"
#include "vmm/host/uffd_sampler_impl.h"

#include "allocator/platform/fault_injection.h"

namespace numaheap {

using namespace uffd_host;

void UffdSampler::Impl::continue_range(char* a, std::uint64_t len) {
  std::uint64_t done = 0;
  int again = 0;
  bool stepped = false;
  while (done < len) {
    uffdio_continue c{};
    c.range.start = reinterpret_cast<std::uintptr_t>(a + done);
    c.range.len = len - done;
    if (::ioctl(uffd, UFFDIO_CONTINUE, &c) == 0) break;
    const int err = errno;
    if (c.mapped > 0) done += static_cast<std::uint64_t>(c.mapped);
    if (err == EAGAIN && ++again < 100) continue;  // mm changing: try again
    if (err != EEXIST && err != EAGAIN) errors.fetch_add(1, std::memory_order_relaxed);
    // The page at `done` is mapped already (EEXIST), or cannot be (not in
    // the page cache: a later access is an ordinary fault): step over it.
    done += kFrameSize;
    again = 0;
    stepped = true;
  }
  if (stepped) {
    uffdio_range w{reinterpret_cast<std::uintptr_t>(a), len};
    (void)::ioctl(uffd, UFFDIO_WAKE, &w);
  }
}

void UffdSampler::Impl::unprotect_range(char* a, std::uint64_t len) {
  for (int again = 0;; ++again) {
    uffdio_writeprotect wp{};
    wp.range.start = reinterpret_cast<std::uintptr_t>(a);
    wp.range.len = len;
    wp.mode = 0;  // clear protection and wake
    if (::ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0) return;
    if (errno != EAGAIN || again >= 100) break;
  }
  errors.fetch_add(1, std::memory_order_relaxed);
  uffdio_range w{reinterpret_cast<std::uintptr_t>(a), len};
  (void)::ioctl(uffd, UFFDIO_WAKE, &w);
}

void UffdSampler::Impl::close_pages_locked(std::size_t r, std::uint64_t first, std::uint64_t end) {
  if (NUMAHEAP_FAULT(sampler_skips_close)) return;
  const bool memfd = ram->regions_[r].backing == RamBacking::memfd;
  for (std::uint64_t at = first; at < end;) {
    if (at % 64 == 0 && end - at >= 64 && armed[r][at / 64].load(std::memory_order_acquire) == 0) {
      at += 64;  // a word with nothing armed
      continue;
    }
    if (!is_armed(r, at)) {
      ++at;
      continue;
    }
    std::uint64_t run = at;
    while (run < end && is_armed(r, run)) ++run;
    if (memfd)
      continue_range(page_addr(r, at), (run - at) << kFrameShift);
    else
      unprotect_range(page_addr(r, at), (run - at) << kFrameShift);
    for (std::uint64_t p = at; p < run; ++p) (void)disarm(r, p);
    at = run;
  }
}

void UffdSampler::Impl::close_all_locked() {
  for (std::size_t r = 0; r < ram->regions_.size(); ++r)
    if (armed[r]) close_pages_locked(r, 0, region_pages(r));
}

void UffdSampler::Impl::shed() {
  std::lock_guard<std::mutex> g(window_mu);
  if (pauses.load(std::memory_order_acquire) != 0 || !accepting) return;
  const std::uint64_t before = armed_pages.load(std::memory_order_relaxed);
  close_all_locked();
  const std::uint64_t after = armed_pages.load(std::memory_order_relaxed);
  sheds.fetch_add(1, std::memory_order_relaxed);
  pages_shed.fetch_add(before > after ? before - after : 0, std::memory_order_relaxed);
}

bool UffdSampler::Impl::read_locked_pages(std::size_t r, bool refused) {
  const GuestRamRegion& g = ram->regions_[r];
  const std::uint64_t region = region_pages(r);
  std::uint64_t before = 0;
  for (const PageRun& p : locked_pages[r]) before += p.end - p.first;
  std::vector<PageRun>& out = locked_pages[r];
  out.clear();
  std::vector<detail::ByteRange> parts;
  bool all = false;
  if (g.backing == RamBacking::memfd) {
    if (!detail::guest_mapping_locked_parts(g.host, g.bytes, parts)) {
      // Nothing tells which part: after a refusal, all of it; before, none.
      all = refused;
    } else {
      for (const detail::ByteRange& b : parts) {
        const std::uint64_t first = (b.first >> kFrameShift) / kBlock * kBlock;
        const std::uint64_t last = (b.end + kFrameSize - 1) >> kFrameShift;  // end page
        const std::uint64_t end = std::min(region, (last + kBlock - 1) / kBlock * kBlock);
        if (!out.empty() && out.back().end >= first) out.back().end = std::max(out.back().end, end);
        else out.push_back(PageRun{first, end});
      }
      all = out.size() == 1 && out[0].first == 0 && out[0].end == region;
    }
  }
  if (all) out.clear();  // the region as a whole: `locked` says it
  std::uint64_t after = all ? region : 0;
  for (const PageRun& p : out) after += p.end - p.first;
  pages_locked.fetch_add(after - before, std::memory_order_relaxed);  // wraps down when fewer
  return all;
}

void UffdSampler::Impl::arm_locked(std::size_t r, std::uint64_t first, std::uint64_t pages, bool probe) {
  if (locked[r]) return;  // cannot be zapped: see `locked`
  if (locked_pages[r].empty()) {
    arm_run_locked(r, first, pages, probe, true);
    return;
  }
  // Around the mlocked parts (a copy: a refused arm may re-read them).
  const std::vector<PageRun> skip = locked_pages[r];
  std::uint64_t at = first;
  const std::uint64_t end = first + pages;
  for (const PageRun& p : skip) {
    if (p.end <= at) continue;
    if (p.first >= end) break;
    if (p.first > at) arm_run_locked(r, at, p.first - at, probe, true);
    at = std::max(at, p.end);
  }
  if (at < end && !locked[r]) arm_run_locked(r, at, end - at, probe, true);
}

void UffdSampler::Impl::arm_run_locked(std::size_t r, std::uint64_t first, std::uint64_t pages, bool probe,
                                       bool retry) {
  if (locked[r]) return;
  {
    std::uint64_t end = first + pages;
    for (std::uint64_t b = first / kBlock * kBlock; b < end; b += kBlock) {
      const bool h = probe && huge(r, b);
      set_whole(r, b, h);
      if (!h) continue;
      blocks_windowed.fetch_add(1, std::memory_order_relaxed);
      first = std::min(first, b);
      end = std::max(end, b + kBlock);
    }
    pages = end - first;
  }
  std::uint64_t newly = 0;
  for (std::uint64_t p = first; p < first + pages; ++p) {
    const std::uint64_t bit = std::uint64_t{1} << (p % 64);
    newly += !(armed[r][p / 64].fetch_or(bit, std::memory_order_acq_rel) & bit);
  }
  armed_pages.fetch_add(newly, std::memory_order_relaxed);
  char* a = page_addr(r, first);
  const std::uint64_t len = pages << kFrameShift;
  arm_calls.fetch_add(1, std::memory_order_relaxed);
  bool ok;
  if (ram->regions_[r].backing == RamBacking::memfd) {
    // The shared mapping loses its page-table entries; the page cache
    // keeps the data, so the next access is a minor fault.
    const int madv = NUMAHEAP_FAULT(sampler_punches_window) ? MADV_REMOVE : MADV_DONTNEED;
    ok = ::madvise(a, len, madv) == 0;
  } else {
    uffdio_writeprotect wp{};
    wp.range.start = reinterpret_cast<std::uintptr_t>(a);
    wp.range.len = len;
    wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
    ok = ::ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0;
  }
  if (!ok) {
    const int err = errno;
    errors.fetch_add(1, std::memory_order_relaxed);
    if (err == EINVAL && ram->regions_[r].backing == RamBacking::memfd) {
      if (read_locked_pages(r, true)) {  // all of it (or no telling)
        drop_locked_region_locked(r, first, first + pages);
        return;
      }
      if (!locked_pages[r].empty()) {  // part of it: window around that part
        undo_refused_arm_locked(r, first, first + pages);
        if (retry) {
          const std::vector<PageRun> skip = locked_pages[r];
          std::uint64_t at = first;
          for (const PageRun& p : skip) {
            if (p.end <= at) continue;
            if (p.first >= first + pages) break;
            if (p.first > at) arm_run_locked(r, at, p.first - at, probe, false);
            at = std::max(at, p.end);
          }
          if (at < first + pages) arm_run_locked(r, at, first + pages - at, probe, false);
        }
        return;
      }
      // Not a lock: an error like any other.
    }
    close_pages_locked(r, first, first + pages);  // whatever was done, undo it
    return;
  }
  pages_windowed.fetch_add(pages, std::memory_order_relaxed);
}

void UffdSampler::Impl::drop_locked_region_locked(std::size_t r, std::uint64_t first, std::uint64_t end) {
  locked[r] = 1;
  regions_locked.fetch_add(1, std::memory_order_relaxed);
  undo_refused_arm_locked(r, first, end);
}

void UffdSampler::Impl::undo_refused_arm_locked(std::size_t r, std::uint64_t first, std::uint64_t end) {
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    close_pages_locked(r, first, end);
    return;
  }
  std::uint64_t entries[512];
  for (std::uint64_t at = first; at < end;) {
    const std::uint64_t n = std::min<std::uint64_t>(512, end - at);
    const auto off = static_cast<off_t>(reinterpret_cast<std::uintptr_t>(page_addr(r, at)) >> kFrameShift) * 8;
    if (::pread(fd, entries, n * 8, off) != static_cast<ssize_t>(n * 8)) {
      close_pages_locked(r, at, end);
      break;
    }
    for (std::uint64_t i = 0; i < n; ++i)
      if (entries[i] >> 63 & 1) (void)disarm(r, at + i);  // mapped: nothing to undo
    close_pages_locked(r, at, at + n);  // the rest (usually none)
    at += n;
  }
  ::close(fd);
}

bool UffdSampler::Impl::open_gfns_locked(Gfn first, std::uint64_t pages) {
  bool all = true;
  for (std::size_t r = 0; r < ram->regions_.size(); ++r) {
    const GuestRamRegion& g = ram->regions_[r];
    if (!sampled(g)) continue;
    const Gfn base = g.guest_phys >> kFrameShift, end = base + (g.bytes >> kFrameShift);
    const Gfn a = std::max(base, first), b = std::min(end, first + pages);
    if (a < b) arm_locked(r, a - base, b - a);
    if (a < b && locked[r]) all = false;
    for (const PageRun& p : locked_pages[r])  // a part of the range skipped
      if (a < b && p.first < b - base && p.end > a - base) all = false;
  }
  windows.fetch_add(1, std::memory_order_relaxed);
  return all;
}

void UffdSampler::Impl::open_next_locked() {
  std::uint64_t total = 0;
  for (std::size_t r = 0; r < ram->regions_.size(); ++r)
    if (in_walk(r)) total += region_pages(r);
  if (total == 0) return;
  std::uint64_t want = std::min<std::uint64_t>(cfg.window_pages, total), walked = 0;
  // Adjacent pieces of one region are armed together, one protection
  // change (one TLB shootdown of every CPU running the VMM) or one zap
  // for the window's run instead of one per block.
  std::size_t run_r = 0;
  std::uint64_t run_first = 0, run_pages = 0;
  auto arm_run = [&] {
    if (run_pages) arm_locked(run_r, run_first, run_pages);
    run_pages = 0;
  };
  while (want && walked < total) {
    if (cursor >= total) {
      arm_run();
      cursor = 0;
      rotate_vcpu_chunks_locked();
    }
    std::uint64_t skip = cursor;
    std::size_t r = 0;
    for (; r < ram->regions_.size(); ++r) {
      if (!in_walk(r)) continue;
      if (skip < region_pages(r)) break;
      skip -= region_pages(r);
    }
    // An mlocked part opens nothing (arm_locked skips it): stepped over
    // without spending the window's pages on it.
    const auto part = std::find_if(locked_pages[r].begin(), locked_pages[r].end(),
                                   [skip](const PageRun& p) { return skip < p.end; });
    if (part != locked_pages[r].end() && part->first <= skip) {
      arm_run();
      const std::uint64_t step = std::min(part->end, region_pages(r)) - skip;
      cursor += step;
      walked += step;
      continue;
    }
    // One piece: the rest of skip's block (or of the region).
    const std::uint64_t block_end = std::min(region_pages(r), skip / kBlock * kBlock + kBlock);
    std::uint64_t step;
    if (huge(r, skip)) {  // arm_locked widens it to the whole block
      step = block_end - skip;
      --want;
    } else {
      step = std::min(want, block_end - skip);
      want -= step;
    }
    if (run_pages && (run_r != r || run_first + run_pages != skip)) arm_run();
    if (!run_pages) run_r = r, run_first = skip;
    run_pages += step;
    cursor += step;
    walked += step;
  }
  arm_run();
  windows.fetch_add(1, std::memory_order_relaxed);
}

void UffdSampler::Impl::rotate_vcpu_chunks_locked() {
  for (std::size_t r = 0; r < ram->regions_.size(); ++r) {
    if (!vcpus_recent[r]) continue;
    for (std::uint64_t c = 0; c < chunks_of(region_pages(r)); ++c)
      vcpus_older[r][c].store(vcpus_recent[r][c].exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
  }
}

void UffdSampler::Impl::burst_locked(std::uint64_t moved) {
  std::uint64_t left = cfg.burst_pages, armed_now = 0;
  // The chunks the moved vCPUs were sampled in first, then those nobody
  // was sampled in yet (some may be theirs), while burst_pages lasts: a
  // budget smaller than the RAM goes to what is known to be theirs.
  for (int pass = 0; pass < 2 && left; ++pass)
    for (std::size_t r = 0; r < ram->regions_.size() && left; ++r) {
      if (!vcpus_recent[r] || !in_walk(r)) continue;
      const std::uint64_t pages = region_pages(r), chunks = chunks_of(pages);
      auto wanted = [&](std::uint64_t c) {
        const std::uint64_t seen =
            vcpus_recent[r][c].load(std::memory_order_relaxed) | vcpus_older[r][c].load(std::memory_order_relaxed);
        return pass == 0 ? (seen & moved) != 0 : seen == 0;
      };
      for (std::uint64_t c = 0; c < chunks && left;) {
        if (!wanted(c)) {
          ++c;
          continue;
        }
        std::uint64_t end = c;
        while (end < chunks && wanted(end)) ++end;
        const std::uint64_t first = c * 64, n = std::min({end * 64, pages}) - first;
        const std::uint64_t take = std::min(n, left);
        arm_locked(r, first, take);
        if (locked[r]) break;  // refused: r left the walk
        armed_now += take;
        left -= take;
        c = end;
      }
    }
  bursts.fetch_add(1, std::memory_order_relaxed);
  pages_burst.fetch_add(armed_now, std::memory_order_relaxed);
  windows.fetch_add(1, std::memory_order_relaxed);
}

void UffdSampler::Impl::close_gfns_locked(std::span<const Gfn> gfns) {
  for (Gfn gfn : gfns) {
    const int r = ram->region_of_gfn(gfn);
    if (r < 0) continue;
    const auto ri = static_cast<std::size_t>(r);
    if (ram->regions_[ri].backing != RamBacking::memfd) continue;
    const std::uint64_t page = gfn - (ram->regions_[ri].guest_phys >> kFrameShift);
    if (armed_whole(ri, page)) {  // a whole-block move: the block's pages must be mapped
      const std::uint64_t head = page / kBlock * kBlock;
      close_pages_locked(ri, head, std::min(head + kBlock, region_pages(ri)));
    } else if (is_armed(ri, page)) {
      close_pages_locked(ri, page, page + 1);
    }
  }
}

void UffdSampler::Impl::arm_gfns_locked(std::span<const Gfn> gfns) {
  for (std::size_t i = 0; i < gfns.size();) {
    const int r = ram->region_of_gfn(gfns[i]);
    std::size_t j = i + 1;
    if (r < 0 || ram->regions_[static_cast<std::size_t>(r)].backing != RamBacking::memfd) {
      i = j;
      continue;
    }
    const auto ri = static_cast<std::size_t>(r);
    const Gfn base = ram->regions_[ri].guest_phys >> kFrameShift, end = base + region_pages(ri);
    while (j < gfns.size() && gfns[j] == gfns[j - 1] + 1 && gfns[j] < end) ++j;
    arm_locked(ri, gfns[i] - base, j - i, false);
    i = j;
  }
}

}  // namespace numaheap
