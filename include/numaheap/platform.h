// numaheap: the platform layer -- how machine frames become memory.
//
// Contract (what the allocator needs from the machine, and what it promises):
//  * Two modes.
//    - frame_only: the embedder (a hypervisor) owns RAM; frames have no
//      address in this process. Zeroing ("scrubbing") and copying go through
//      the hooks below. Without a scrub hook the embedder promises to scrub
//      frames itself before mapping them into another owner.
//    - host_memory: for VMMs, benchmarks and tests (host library only; the
//      freestanding core answers Errc::unsupported). Each node's frames are
//      backed by one anonymous mapping bound to that node with
//      mbind(MPOL_BIND); create() fails (Errc::invalid_node / io_error, with
//      the errno text) when the kernel refuses the binding, e.g. because the
//      node does not exist on this host. frame_address(mfn) gives the bytes.
//  * Metadata (frame table, caches, p2m, tracking) comes from
//    PlatformConfig::metadata, or numaheap_default_metadata() when null
//    (platform_contract.h).
//  * Hooks are plain function pointers plus a context, callable from any
//    thread, possibly concurrently, never while the allocator holds a lock
//    (scrub and copy may take long).
//  * current_cpu() says which per-CPU cache a call uses. The host library's
//    default asks the kernel (sched_getcpu, cheap with rseq); the core's
//    default is CPU 0: a hypervisor supplies its own.
//  * Nothing here allocates after create(); nothing here aborts on bad input.
#pragma once

#include <cstdint>
#include <memory>

#include "numaheap/frame.h"
#include "numaheap/metadata.h"
#include "numaheap/vector.h"
#include "numaheap/result.h"
#include "numaheap/topology.h"
#include "numaheap/export.h"

NUMAHEAP_PUBLIC_BEGIN

namespace numaheap {

enum class MemoryMode : std::uint8_t { frame_only = 0, host_memory = 1 };

struct PlatformHooks {
  void* ctx = nullptr;
  // Zero frames [first, first + count). All frames of one node.
  void (*scrub)(void* ctx, Mfn first, std::uint64_t count) = nullptr;
  // Copy one frame's contents from src to dst.
  void (*copy)(void* ctx, Mfn dst, Mfn src) = nullptr;
  // The calling CPU's id (any value; reduced modulo the CPU count).
  std::uint32_t (*current_cpu)(void* ctx) = nullptr;
  // Called on each turn of a wait for another CPU (an allocation waiting
  // for the background scrubber to let go of a block), possibly with an
  // allocator lock held: a cpu_relax(), a yield, a watchdog touch. Must not
  // call into the allocator. Optional (default: the CPU's pause hint).
  void (*relax)(void* ctx) = nullptr;
};

struct PlatformConfig {
  MemoryMode mode = MemoryMode::frame_only;
  PlatformHooks hooks{};
  // host_memory: fail create() when mbind fails (true), or accept unbound
  // memory (false; e.g. in containers whose seccomp forbids mbind).
  bool require_bind = true;
  // Contents of frames at start-up: false = already zero (host_memory's
  // fresh mappings are), true = unknown, scrubbed before first hand-out.
  bool boot_memory_dirty = false;
  // Where metadata comes from (see the contract above); null = the default.
  // Must outlive the platform and everything made from it.
  const MetadataHooks* metadata = nullptr;
};

// Per-node backing and the machine services. Immutable after create()
// (hooks included), so every method is safe to call from any thread.
class Platform {
 public:
  NUMAHEAP_METADATA_NEW_DELETE
  static Result<std::unique_ptr<Platform>, Error> create(const Topology& topo,
                                                         const PlatformConfig& config);
  ~Platform();
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  MemoryMode mode() const noexcept { return config_.mode; }
  const PlatformConfig& config() const noexcept { return config_; }

  // host_memory: the address of a managed frame; nullptr in frame_only mode
  // or for an mfn no node manages.
  void* frame_address(Mfn mfn) const noexcept;

  // Zero `count` frames starting at `first` (one node's, contiguous).
  void zero_frames(Mfn first, std::uint64_t count) const noexcept;
  // Copy one frame. Returns false when neither memory nor a hook exists.
  bool copy_frame(Mfn dst, Mfn src) const noexcept;
  std::uint32_t current_cpu() const noexcept;
  // One turn of a spin-wait (the relax hook, or a pause hint).
  void relax() const noexcept;

  // Bytes reserved for backing (host_memory), 0 in frame_only mode.
  std::uint64_t mapped_bytes() const noexcept;
  // The metadata hooks everything made from this platform uses (never null
  // once create() succeeded).
  const MetadataHooks* metadata() const noexcept { return metadata_; }

 private:
  Platform() = default;
  struct Mapping {  // one frame range of a node inside that node's mapping
    Mfn first = 0;
    std::uint64_t count = 0;
    unsigned char* base = nullptr;  // address of frame `first`
  };
  PlatformConfig config_{};
  const MetadataHooks* metadata_ = nullptr;
  Vector<Mapping> ranges_;  // sorted by first mfn
  struct NodeMap { void* addr; std::uint64_t bytes; };
  Vector<NodeMap> node_maps_;  // to unmap (host_memory)
};

}  // namespace numaheap

NUMAHEAP_PUBLIC_END
