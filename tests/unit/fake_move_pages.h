// A stand-in for move_pages(2) with two nodes, for tests that link
// numaheap_faulty (fault::move_pages_hook): it keeps each page's node,
// moves a huge page whole on its first page (unless split), and refuses
// chosen calls the way Linux does (a refused moving call may have moved
// the pages before the one that failed). Its own query (nodes = NULL,
// not counted) is the truth tests check. The host has one node, where the
// kernel itself can neither move a page nor refuse a chosen call.
#pragma once

#include <cerrno>
#include <cstdint>
#include <vector>

#include "numaheap/mover.h"

namespace numaheap::test {

struct FakeKernel {
  const char* base = nullptr;
  std::uint64_t pages = 0;
  std::vector<int> node;     // per page: where it is
  std::vector<bool> split;   // per 2 MiB block: a moving call moves only the pages it names
  bool huge = false;         // blocks are huge pages: naming one page moves the whole block
  int calls = 0, moving_calls = 0;
  // Refused calls: calls number fail_at .. fail_until (1-based, every
  // call), or the fail_move_at-th moving call; with errno fail_errno. A
  // refused moving call first moves its first fail_after pages.
  int fail_at = 0, fail_until = 0, fail_move_at = 0, fail_errno = ENOMEM;
  std::size_t fail_after = 0;
};

inline FakeKernel* kernel = nullptr;

// One move_pages call; `counted`: the mover's (numbered, maybe refused),
// else the test's own query.
inline long serve(FakeKernel& k, bool counted, int pid, unsigned long count, void** pages, const int* nodes, int* status) {
  const int call = counted ? ++k.calls : 0;
  const int moving = counted && nodes ? ++k.moving_calls : 0;
  const bool fail = (call && call >= k.fail_at && call <= k.fail_until) || (moving && moving == k.fail_move_at);
  if (fail && !nodes) {
    errno = k.fail_errno;
    return -1;
  }
  if (pid != 0) {
    errno = ESRCH;
    return -1;
  }
  for (unsigned long i = 0; i < count; ++i) {
    const auto a = static_cast<const char*>(pages[i]);
    if (a < k.base || a >= k.base + k.pages * kFrameSize) {
      status[i] = -EFAULT;
      continue;
    }
    const auto p = static_cast<std::uint64_t>(a - k.base) / kFrameSize;
    if (!nodes) {
      status[i] = k.node[p];
      continue;
    }
    if (fail && i >= k.fail_after) {
      errno = k.fail_errno;
      return -1;
    }
    if (nodes[i] != 0 && nodes[i] != 1) {
      errno = ENODEV;
      return -1;
    }
    constexpr std::uint64_t kBlock = KernelMover::kHugeBlockPages;
    if (k.huge && !k.split[p / kBlock]) {
      for (std::uint64_t q = p / kBlock * kBlock; q < p / kBlock * kBlock + kBlock; ++q) k.node[q] = nodes[i];
    } else {
      k.node[p] = nodes[i];
    }
    status[i] = nodes[i];
  }
  if (fail) {
    errno = k.fail_errno;
    return -1;
  }
  return 0;
}

inline long fake_move_pages(int pid, unsigned long count, void** pages, const int* nodes, int* status, int flags) {
  (void)flags;
  return serve(*kernel, true, pid, count, pages, nodes, status);
}

}  // namespace numaheap::test
