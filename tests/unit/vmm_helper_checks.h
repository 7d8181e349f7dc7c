// Checks of GuestRam's move helper process (vmm/host/move_helper.h), shared
// by vmm_guest_ram_test.cc (the real helper passes them) and
// vmm_helper_broken_test.cc (a helper broken on purpose must fail them).
#pragma once

#include <dirent.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <numaif.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "numaheap/topology_io.h"
#include "numaheap/migrator.h"
#include "numaheap/vmm.h"

namespace numaheap::test {

// This process's children (pids whose parent is this process).
inline std::set<int> child_pids() {
  std::set<int> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f("/proc/" + std::string(e->d_name) + "/stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    const std::size_t close = line.rfind(')');  // comm may hold spaces
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    char state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == ::getpid()) out.insert(pid);
  }
  ::closedir(d);
  return out;
}

// Bytes of [addr, addr + bytes) that process `pid` maps; -1 if its maps
// cannot be read.
inline long long mapped_bytes_of(int pid, const void* addr, std::uint64_t bytes) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/maps");
  if (!f) return -1;
  const auto lo = reinterpret_cast<std::uintptr_t>(addr), hi = lo + bytes;
  long long n = 0;
  std::string line;
  while (std::getline(f, line)) {
    unsigned long long s = 0, e = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx", &s, &e) != 2) continue;
    const std::uintptr_t a = std::max<std::uintptr_t>(s, lo), b = std::min<std::uintptr_t>(e, hi);
    if (a < b) n += static_cast<long long>(b - a);
  }
  return n;
}

// Private writable mappings ("rw-p") of process `pid`; -1 if its maps
// cannot be read.
inline int private_writable_mappings(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/maps");
  if (!f) return -1;
  int n = 0;
  std::string line;
  while (std::getline(f, line)) {
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%*x-%*x %4s", perms) == 1 && perms[1] == 'w' && perms[3] == 'p') ++n;
  }
  return n;
}

inline long minor_faults_of_this_thread() {
  rusage u{};
  ::getrusage(RUSAGE_THREAD, &u);
  return u.ru_minflt;
}

// A memfd of `bytes` mapped shared once (closed and unmapped at scope end);
// `shm` null if this host has none.
struct SharedMemfd {
  int fd = -1;
  void* shm = nullptr;
  std::uint64_t bytes = 0;
  explicit SharedMemfd(std::uint64_t b) : bytes(b) {
    fd = ::memfd_create("numaheap-helper-test", MFD_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(b)) != 0) return;
    void* p = ::mmap(nullptr, b, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) shm = p;
  }
  ~SharedMemfd() {
    if (shm) ::munmap(shm, bytes);
    if (fd >= 0) ::close(fd);
  }
  SharedMemfd(const SharedMemfd&) = delete;
  SharedMemfd& operator=(const SharedMemfd&) = delete;
};

// What the helper of a GuestRam over (shared memfd, anonymous) RAM holds of
// the VMM: a private buffer touched before create(), the anonymous guest
// region; and what the VMM pays afterwards: minor faults writing every page
// of the anonymous guest region, populated before create() (a fork leaves
// such pages write-protected unless they were not inherited).
struct HelperFootprint {
  bool set_up = false;
  std::string skip;
  int helper = -1;
  long long private_buffer_mapped = -1;  // bytes of the VMM's private buffer the helper maps
  long long anon_guest_mapped = -1;      // bytes of the anonymous guest region the helper maps
  long long shared_guest_mapped = -1;    // bytes of the shared memfd region the helper maps (it needs all)
  int private_mappings = -1;             // the helper's private writable mappings (its stack, its thread block)
  long writes_faulted = -1;              // minor faults writing the anonymous guest region's pages once each
  std::uint64_t pages = 0;
  bool helper_moved = false;             // a move went through the helper afterwards
};

inline HelperFootprint helper_footprint() {
  HelperFootprint r;
#if defined(__SANITIZE_THREAD__)
  r.skip = "ThreadSanitizer build: the helper keeps the VMM's private memory (move_helper.cc)";
  return r;
#endif
  auto topo = load_topology_libnuma();
  if (!topo) {
    r.skip = "no libnuma topology";
    return r;
  }
  constexpr std::uint64_t kPages = 256, kBytes = kPages * 4096, kBuffer = 8u << 20;
  r.pages = kPages;
  const SharedMemfd memfd(kBytes);
  void* const shm = memfd.shm;
  void* anon = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* buf = ::mmap(nullptr, kBuffer, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (!shm || anon == MAP_FAILED || buf == MAP_FAILED) {
    r.skip = "memfd or mmap failed";
    if (anon != MAP_FAILED) ::munmap(anon, kBytes);
    if (buf != MAP_FAILED) ::munmap(buf, kBuffer);
    return r;
  }
  // Not THP: one fault per 4 KiB page is what the count below expects.
  (void)::madvise(anon, kBytes, MADV_NOHUGEPAGE);
  (void)::madvise(buf, kBuffer, MADV_NOHUGEPAGE);
  for (std::uint64_t i = 0; i < kBuffer; i += 4096) static_cast<volatile char*>(buf)[i] = 1;
  for (std::uint64_t i = 0; i < kBytes; i += 4096) static_cast<volatile char*>(anon)[i] = 1;
  const NodeId node = topo->memory_nodes().first();
  const std::vector<GuestRamRegion> regions = {{shm, kBytes, 0, RamBacking::memfd, true},
                                               {anon, kBytes, kBytes, RamBacking::anonymous, false}};
  const std::vector<VnodeRam> vnodes = {{0, 0, 2 * kBytes, NodeMask::single(node)}};
  const std::set<int> before = child_pids();
  {
    GuestRamOptions o;
    o.populate = false;  // the VMM populated it (a populate's write would take the faults counted below)
    auto ram = GuestRam::create(*topo, regions, vnodes, o);
    if (!ram) {
      r.skip = ram.error().message.c_str();
    } else {
      std::set<int> after = child_pids();
      for (int p : before) after.erase(p);
      if (after.size() != 1) {
        r.skip = "no move helper was forked";
      } else {
        r.set_up = true;
        r.helper = *after.begin();
        // A move through the helper first: it answers only once it has
        // dropped what it drops, so its maps are final after this.
        std::vector<Gfn> gfns = {0, 1, 2};
        std::vector<MoveOutcome> out(gfns.size());
        r.helper_moved = (*ram)->move(gfns, node, MoveGranularity::pages, out).has_value() &&
                         (*ram)->stats().moves_via_helper > 0;
        r.private_buffer_mapped = mapped_bytes_of(r.helper, buf, kBuffer);
        r.anon_guest_mapped = mapped_bytes_of(r.helper, anon, kBytes);
        r.shared_guest_mapped = mapped_bytes_of(r.helper, shm, kBytes);
        r.private_mappings = private_writable_mappings(r.helper);
        long faults = 0;
        std::thread writer([&] {  // a thread of its own: its fault count is the writes' alone
          const long f0 = minor_faults_of_this_thread();
          for (std::uint64_t i = 0; i < kBytes; i += 4096) static_cast<volatile char*>(anon)[i] = 2;
          faults = minor_faults_of_this_thread() - f0;
        });
        writer.join();
        r.writes_faulted = faults;
      }
    }
  }
  ::munmap(buf, kBuffer);
  ::munmap(anon, kBytes);
  return r;
}

// On the calling thread only (a seccomp filter without TSYNC): move_pages
// through another process fails with EPERM, as a VMM's sandbox installed
// after GuestRam::create may make it. `probe_too` false: a call that names
// no pages still passes (GuestRam's probe), so the refusal comes after the
// probe, at the move itself. False where seccomp is unavailable.
inline bool refuse_move_pages_through_others(bool probe_too = true) {
#if defined(__x86_64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
  (void)probe_too;
  return false;
#endif
  sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_move_pages, 0, 5),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),  // pid (low word)
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, 0),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[1])),  // count (low word)
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, static_cast<std::uint8_t>(probe_too ? 0 : 1), 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
}

// A move through the helper refused after the probe (the seccomp filter
// above, on the moving thread): what became of the pages. `with_sampler`:
// a running sampler (windows on demand only) attached, so the pages zapped
// for the move are a sampler window.
struct LateRefusal {
  bool set_up = false;
  std::string skip;
  bool move_ok = false;
  std::size_t moved = 0, asked = 0;  // outcomes `moved` of the pages asked
  long present_here = -1;            // pages the VMM's mapping maps afterwards (of `pages`)
  std::uint64_t pages = 0;
  bool data_ok = false;
  std::uint64_t via_helper = 0;      // moves_via_helper afterwards
  std::uint64_t sampler_errors = 0;  // the sampler's errors (with_sampler)
  std::uint64_t sampler_samples = 0; // faults it took (with_sampler; nothing touched the pages but the move)
};

inline long present_pages(void* base, std::uint64_t pages) {
  std::vector<void*> a(pages);
  std::vector<int> st(pages);
  for (std::uint64_t i = 0; i < pages; ++i) a[i] = static_cast<char*>(base) + i * 4096;
  if (::move_pages(0, pages, a.data(), nullptr, st.data(), 0) != 0) return -1;
  long n = 0;
  for (int s : st) n += s >= 0;
  return n;
}

inline LateRefusal late_refusal(bool with_sampler = false) {
  LateRefusal r;
  auto topo = load_topology_libnuma();
  if (!topo) {
    r.skip = "no libnuma topology";
    return r;
  }
  constexpr std::uint64_t kPages = 64, kBytes = kPages * 4096;
  r.pages = kPages;
  const SharedMemfd memfd(kBytes);
  void* const shm = memfd.shm;
  if (!shm) {
    r.skip = "no memfd";
    return r;
  }
  for (std::uint64_t i = 0; i < kPages; ++i) static_cast<unsigned char*>(shm)[i * 4096] = static_cast<unsigned char>(i + 5);
  const NodeId node = topo->memory_nodes().first();
  const std::vector<GuestRamRegion> regions = {{shm, kBytes, 0, RamBacking::memfd, true}};
  const std::vector<VnodeRam> vnodes = {{0, 0, kBytes, NodeMask::single(node)}};
  {
    auto ram = GuestRam::create(*topo, regions, vnodes);
    auto mig = Migrator::create(*topo);
    Result<GuestId> id = Errc::unsupported;
    Result<std::unique_ptr<UffdSampler>, Error> sampler = make_error(Errc::unsupported, "not asked for");
    if (ram && mig) id = (*mig)->add_guest(**ram, (*ram)->migrate_options(1, false));
    if (with_sampler && id) {
      SamplerConfig cfg;
      cfg.pages_per_second = 0;  // no windows of its own: only the move's
      sampler = UffdSampler::create(**ram, **mig, *id, cfg);
      if (sampler && !(*sampler)->start()) sampler = make_error(Errc::unsupported, "the sampler did not start");
    }
    if (!ram || !id) {
      r.skip = ram ? "no migrator" : ram.error().message.c_str();
    } else if (with_sampler && !sampler) {
      r.skip = std::string("no sampler here: ") + sampler.error().message.c_str();
    } else {
      std::vector<Gfn> gfns = {0, 1, 2, 10, kPages - 1};
      std::vector<MoveOutcome> out(gfns.size(), MoveOutcome::busy);
      bool filtered = false;
      std::thread sandboxed([&] {  // the filter dies with this thread
        filtered = refuse_move_pages_through_others(/*probe_too=*/false);
        if (filtered) r.move_ok = (*ram)->move(gfns, node, MoveGranularity::pages, out).has_value();
      });
      sandboxed.join();
      if (!filtered) {
        r.skip = "seccomp filters unavailable";
      } else {
        r.set_up = true;
        r.asked = gfns.size();
        for (MoveOutcome o : out) r.moved += o == MoveOutcome::moved;
        r.present_here = present_pages(shm, kPages);  // before the sampler stops (which maps every page)
        r.via_helper = (*ram)->stats().moves_via_helper;
        if (with_sampler) {
          r.sampler_errors = (*sampler)->stats().errors;
          r.sampler_samples = (*sampler)->stats().samples;
        }
        r.data_ok = true;
        for (std::uint64_t i = 0; i < kPages; ++i)
          r.data_ok &= static_cast<unsigned char*>(shm)[i * 4096] == static_cast<unsigned char>(i + 5);
      }
    }
    if (sampler) (*sampler)->stop();
    if (id) (void)(*mig)->remove_guest(*id);
  }
  return r;
}

}  // namespace numaheap::test
