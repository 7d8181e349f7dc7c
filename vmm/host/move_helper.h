// The move helper process of GuestRam (internal to vmm/host).
//
// Why a helper at all: guest_ram.cc. What it is: a child forked from the
// VMM that keeps only what it needs -- the shared guest RAM mappings at the
// VMM's addresses, its own stack and thread block, the program's code --
// and serves "map these runs" requests (MADV_POPULATE_READ) on a socket.
//
// What it must not do to the VMM (docs/integrating.md, "The move helper"):
//  - hold the VMM's private memory copy-on-write: every page the VMM wrote
//    after the fork would be copied while the helper lives. The child
//    reads its own /proc/self/maps and unmaps every private writable
//    mapping it inherited (heap, stacks, anonymous mmaps, the data of the
//    program and its libraries) but the one it runs on and the one its
//    thread pointer is in; it makes raw system calls only, from the fork
//    on, and touches nothing else;
//  - cost the fork a copy of guest RAM's page tables, nor leave the VMM's
//    guest RAM write-protected (a write fault per page after the fork):
//    guest regions the helper does not map are MADV_DONTFORK across the
//    fork (restored after it, unless the VMM had set it already).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace numaheap::detail {

// One run of pages for the helper to map: [addr, addr + len).
struct HelperRun {
  std::uint64_t addr, len;
};
// Runs per request: one datagram of the SOCK_SEQPACKET pair.
constexpr std::size_t kHelperRuns = 128;
// The answer to a request, one byte: 0 when every run was mapped, else the
// errno of the first run the helper could not map (kHelperAnswerMax for
// any larger one).
constexpr unsigned char kHelperAnswerMax = 255;

// A range of the VMM's address space.
struct HostRange {
  void* addr;
  std::uint64_t bytes;
};

struct MoveHelperProcess {
  pid_t pid = -1;  // -1: none (fork refused, no socket, or an architecture without raw syscalls here)
  int sock = -1;   // the parent's end of the socket pair (close-on-exec)
};

// Forks the helper. `not_needed`: guest RAM the helper does not map (not
// inherited: MADV_DONTFORK for the fork). The caller reaps the child
// (closing `sock` makes it exit).
MoveHelperProcess spawn_move_helper(std::span<const HostRange> not_needed) noexcept;

}  // namespace numaheap::detail
