// KernelMover: move_pages(2) on a VMM's guest RAM mapping.
//
// The kernel does the write-protect / copy / remap itself (it unmaps the
// page and makes faulting threads wait), so the guest keeps running and no
// hook is needed. Work is done in fixed chunks of stack arrays: no heap
// allocation per call.
#include <numaif.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "numaheap/guest_memory.h"
#include "numaheap/mover.h"

#include "migrate/host/node_meminfo.h"

namespace numaheap {

namespace {

constexpr std::size_t kChunk = 256;

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

}  // namespace

Result<KernelMover> KernelMover::create(void* base, std::uint64_t pages, bool move_all) {
  if (!base || pages == 0 || reinterpret_cast<std::uintptr_t>(base) % kFrameSize) return Errc::invalid_argument;
  if (::sysconf(_SC_PAGESIZE) != static_cast<long>(kFrameSize)) return Errc::unsupported;
  KernelMover m;
  m.base_ = static_cast<unsigned char*>(base);
  m.pages_ = pages;
  m.move_all_ = move_all;
  return m;
}

bool KernelMover::node_frames(NodeId node, std::uint64_t& free, std::uint64_t& managed) const noexcept {
  return host::node_meminfo_frames(node, free, managed);
}

Status KernelMover::query(Gfn first, std::span<PageState> out) noexcept {
  if (first > pages_ || out.size() > pages_ - first) return Errc::invalid_argument;
  void* addrs[kChunk];
  int status[kChunk];
  for (std::size_t at = 0; at < out.size(); at += kChunk) {
    const std::size_t n = std::min(kChunk, out.size() - at);
    for (std::size_t i = 0; i < n; ++i) addrs[i] = base_ + ((first + at + i) << kFrameShift);
    if (::move_pages(0, n, addrs, nullptr, status, 0) != 0) return errc_of_call(errno);
    for (std::size_t i = 0; i < n; ++i)
      out[at + i] = status[i] >= 0 ? PageState{static_cast<NodeId>(status[i]), P2mFlags::present, 0} : PageState{};
  }
  return {};
}

Result<MoveTotals> KernelMover::move(std::span<const Gfn> gfns, NodeId target, MoveGranularity,
                                     std::span<MoveOutcome> out) noexcept {
  if (out.size() != gfns.size()) return Errc::invalid_argument;
  if (target >= kMaxNodes) return Errc::invalid_node;
  void* addrs[kChunk];
  int nodes[kChunk], status[kChunk];
  std::size_t index[kChunk];
  MoveTotals totals;
  // Pass 1: where every page is before anything moves (a huge page moved
  // for one chunk carries pages of the next along). `out` holds the answer
  // meanwhile: moved = already on target, busy = elsewhere, not_present.
  for (std::size_t at = 0; at < gfns.size(); at += kChunk) {
    const std::size_t len = std::min(kChunk, gfns.size() - at);
    std::size_t n = 0;
    for (std::size_t i = 0; i < len; ++i) {
      const Gfn gfn = gfns[at + i];
      if (gfn >= pages_) {
        out[at + i] = MoveOutcome::not_present;
        continue;
      }
      addrs[n] = base_ + (gfn << kFrameShift);
      index[n++] = at + i;
    }
    if (n == 0) continue;
    if (::move_pages(0, n, addrs, nullptr, status, 0) != 0) return errc_of_call(errno);
    for (std::size_t i = 0; i < n; ++i)
      out[index[i]] = status[i] < 0                                 ? MoveOutcome::not_present
                      : static_cast<NodeId>(status[i]) == target ? MoveOutcome::moved
                                                                  : MoveOutcome::busy;
  }
  // Pass 2: move what is elsewhere.
  for (std::size_t at = 0; at < gfns.size(); at += kChunk) {
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
    if (::move_pages(0, n, addrs, nodes, status, move_all_ ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE) < 0) return errc_of_call(errno);
    for (std::size_t i = 0; i < n; ++i) out[index[i]] = outcome_of_status(status[i], target);
    // A page reported still elsewhere may have moved with its huge page
    // meanwhile: ask the kernel again where those are.
    std::size_t again = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (out[index[i]] == MoveOutcome::busy) {
        addrs[again] = addrs[i];
        nodes[again++] = static_cast<int>(index[i]);  // reused as the out index
      }
    if (again && ::move_pages(0, again, addrs, nullptr, status, 0) == 0)
      for (std::size_t i = 0; i < again; ++i)
        out[static_cast<std::size_t>(nodes[i])] = outcome_of_status(status[i], target);
    for (std::size_t i = 0; i < n; ++i)  // only pages that were elsewhere before count
      if (out[index[i]] == MoveOutcome::moved) ++totals.frames_moved;
  }
  return totals;
}

}  // namespace numaheap
