// UffdSampler: user-space hinting faults over a VMM's guest RAM with
// userfaultfd (minor faults on memfd RAM, write-protect faults on anonymous
// RAM). See include/numaheap/vmm.h for the contract.
//
// Threads: one handler thread (start/stop) reads fault messages, records
// each access in the migrator and resolves it; it also opens the next
// window when the budget's period has passed. scan(), close_window() and
// GuestRam's pause around a move run on the caller's thread. Arming and
// closing pages, the pause count and the scan cursor are serialised by
// window_mu; the fault-resolving path never takes it (it only clears a
// page's armed bit), so a vCPU never waits for a move or a scan.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>
#include <unordered_map>

#include "numaheap/vmm.h"

#include "allocator/platform/fault_injection.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

namespace numaheap {

namespace {

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

int open_userfaultfd() {
  int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd >= 0) return fd;
  const int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);  // vm.unprivileged_userfaultfd=0
  if (dev < 0) return -1;
  fd = ::ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
  ::close(dev);
  return fd;
}

// Reads a small /proc file into buf (NUL-terminated); false if missing.
bool read_small(const char* path, char* buf, std::size_t cap) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::read(fd, buf, cap - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return true;
}

// Field 39 (processor) of /proc/self/task/TID/stat: the CPU the thread
// last ran on. The faulting thread is blocked in its fault, so that is
// where it faulted.
long thread_cpu(pid_t tid) {
  char path[64], buf[1024];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  if (!read_small(path, buf, sizeof buf)) return -1;
  const char* p = std::strrchr(buf, ')');  // comm may hold spaces and parens
  if (!p) return -1;
  ++p;
  for (int field = 2; field < 38; ++field) {  // p is before field 3 .. skip to before 39
    while (*p == ' ') ++p;
    while (*p && *p != ' ') ++p;
    if (!*p) return -1;
  }
  while (*p == ' ') ++p;
  if (*p < '0' || *p > '9') return -1;
  return std::strtol(p, nullptr, 10);
}

// "CPU n/KVM" (QEMU's vCPU thread name) -> n, else -1.
long kvm_vcpu_of_thread(pid_t tid) {
  char path[64], buf[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/comm", static_cast<int>(tid));
  if (!read_small(path, buf, sizeof buf)) return -1;
  unsigned n = 0;
  char tail[8] = {};
  if (std::sscanf(buf, "CPU %u/%3s", &n, tail) == 2 && std::strcmp(tail, "KVM") == 0) return n;
  return -1;
}

}  // namespace

struct UffdSampler::Impl {
  GuestRam* ram = nullptr;
  Migrator* mig = nullptr;
  GuestId guest = 0;
  SamplerConfig cfg;
  int uffd = -1;                 // immutable after create
  int wake_fd = -1;              // eventfd: wakes the handler for stop
  bool any_memfd = false, any_anon = false;
  std::thread thread;            // owner: start/stop (serialised by control_mu)
  std::mutex control_mu;         // serialises start/stop
  std::atomic<bool> stopping{false};
  bool registered = false;       // guarded by control_mu

  std::mutex window_mu;          // guards accepting, pauses, cursor; serialises arming and closing
  bool accepting = false;        // windows may open (between start and stop)
  int pauses = 0;                // > 0: a move runs, no window may open
  std::uint64_t cursor = 0;      // next page to window, over the sampled pages

  // Pages of sampled region r that the sampler unmapped (memfd) or
  // write-protected (anonymous) and nobody has touched since: a bit per
  // page. Set, under window_mu, before the page is zapped or protected;
  // cleared by the handler *before* it resolves the page's fault, and by a
  // close (under window_mu) after it mapped or unprotected the page. So a
  // clear bit means the page is mapped and writable, or its fault is being
  // resolved by the handler right now; closing every set bit leaves no page
  // behind. Windows stay open until touched (as NUMA balancing's PROT_NONE
  // ranges do): a page's first access after its window opened is sampled
  // however late it comes.
  std::vector<std::unique_ptr<std::atomic<std::uint64_t>[]>> armed;
  std::atomic<std::uint64_t> armed_pages{0};

  std::mutex tid_mu;                                  // guards vcpu_of_tid
  std::unordered_map<pid_t, long> vcpu_of_tid;        // -1: known not a vCPU

  std::atomic<std::uint64_t> samples{0}, minor_samples{0}, wp_samples{0}, windows{0}, pages_windowed{0},
      ns_handling{0}, resolve_retries{0}, errors{0};

  bool sampled(const GuestRamRegion& r) const { return r.backing != RamBacking::hugetlb; }
  char* page_addr(std::size_t r, std::uint64_t page) const {
    return static_cast<char*>(ram->regions_[r].host) + (page << kFrameShift);
  }
  std::uint64_t region_pages(std::size_t r) const { return ram->regions_[r].bytes >> kFrameShift; }

  bool is_armed(std::size_t r, std::uint64_t page) const {
    return (armed[r][page / 64].load(std::memory_order_acquire) >> (page % 64)) & 1;
  }
  // Clears one page's bit; true if it was set.
  bool disarm(std::size_t r, std::uint64_t page) {
    const std::uint64_t bit = std::uint64_t{1} << (page % 64);
    const bool was = armed[r][page / 64].fetch_and(~bit, std::memory_order_acq_rel) & bit;
    if (was) armed_pages.fetch_sub(1, std::memory_order_relaxed);
    return was;
  }

  // ---- resolving ----
  // Maps [a, a + len) back (memfd); pages already mapped or not in the
  // page cache are stepped over. UFFDIO_CONTINUE wakes waiters on what it
  // maps; one UFFDIO_WAKE at the end covers pages mapped by someone else.
  void continue_range(char* a, std::uint64_t len) {
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

  void unprotect_range(char* a, std::uint64_t len) {
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

  // ---- windows (window_mu held) ----
  // Maps back / unprotects the armed pages of region r in [first, end).
  void close_pages_locked(std::size_t r, std::uint64_t first, std::uint64_t end) {
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

  void close_all_locked() {
    for (std::size_t r = 0; r < ram->regions_.size(); ++r)
      if (armed[r]) close_pages_locked(r, 0, region_pages(r));
  }

  // Arms pages [first, first + pages) of region r: bits first, then the
  // zap (memfd) or the protection (anonymous).
  void arm_locked(std::size_t r, std::uint64_t first, std::uint64_t pages) {
    std::uint64_t newly = 0;
    for (std::uint64_t p = first; p < first + pages; ++p) {
      const std::uint64_t bit = std::uint64_t{1} << (p % 64);
      newly += !(armed[r][p / 64].fetch_or(bit, std::memory_order_acq_rel) & bit);
    }
    armed_pages.fetch_add(newly, std::memory_order_relaxed);
    char* a = page_addr(r, first);
    const std::uint64_t len = pages << kFrameShift;
    bool ok;
    if (ram->regions_[r].backing == RamBacking::memfd) {
      // The shared mapping loses its page-table entries; the page cache
      // keeps the data, so the next access is a minor fault.
      const int advice = NUMAHEAP_FAULT(sampler_punches_window) ? MADV_REMOVE : MADV_DONTNEED;
      ok = ::madvise(a, len, advice) == 0;
    } else {
      uffdio_writeprotect wp{};
      wp.range.start = reinterpret_cast<std::uintptr_t>(a);
      wp.range.len = len;
      wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
      ok = ::ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0;
    }
    if (!ok) {
      errors.fetch_add(1, std::memory_order_relaxed);
      close_pages_locked(r, first, first + pages);  // whatever was done, undo it
      return;
    }
    pages_windowed.fetch_add(pages, std::memory_order_relaxed);
  }

  // Arms gfns [first, first + pages) (sampled regions only).
  void open_gfns_locked(Gfn first, std::uint64_t pages) {
    for (std::size_t r = 0; r < ram->regions_.size(); ++r) {
      const GuestRamRegion& g = ram->regions_[r];
      if (!sampled(g)) continue;
      const Gfn base = g.guest_phys >> kFrameShift, end = base + (g.bytes >> kFrameShift);
      const Gfn a = std::max(base, first), b = std::min(end, first + pages);
      if (a < b) arm_locked(r, a - base, b - a);
    }
    windows.fetch_add(1, std::memory_order_relaxed);
  }

  // The next window of the budget's walk over the sampled pages.
  void open_next_locked() {
    std::uint64_t total = 0;
    for (const GuestRamRegion& g : ram->regions_)
      if (sampled(g)) total += g.bytes >> kFrameShift;
    if (total == 0) return;
    std::uint64_t want = std::min<std::uint64_t>(cfg.window_pages, total);
    while (want) {
      if (cursor >= total) cursor = 0;
      std::uint64_t skip = cursor;
      for (std::size_t r = 0; r < ram->regions_.size() && want; ++r) {
        if (!sampled(ram->regions_[r])) continue;
        const std::uint64_t pages = region_pages(r);
        if (skip >= pages) {
          skip -= pages;
          continue;
        }
        const std::uint64_t take = std::min(want, pages - skip);
        arm_locked(r, skip, take);
        cursor += take;
        want -= take;
        skip = 0;
      }
    }
    windows.fetch_add(1, std::memory_order_relaxed);
  }

  // Before a move: memfd pages among gfns that are armed are mapped back
  // (a zapped page is invisible to move_pages). Write-protected anonymous
  // pages move as they are (migration keeps the protection).
  void close_gfns_locked(std::span<const Gfn> gfns) {
    for (Gfn gfn : gfns) {
      const int r = ram->region_of_gfn(gfn);
      if (r < 0) continue;
      const auto ri = static_cast<std::size_t>(r);
      if (ram->regions_[ri].backing != RamBacking::memfd) continue;
      const std::uint64_t page = gfn - (ram->regions_[ri].guest_phys >> kFrameShift);
      if (is_armed(ri, page)) close_pages_locked(ri, page, page + 1);
    }
  }

  // ---- faults (handler thread) ----
  long vcpu_of(pid_t tid) {
    std::lock_guard<std::mutex> g(tid_mu);
    auto it = vcpu_of_tid.find(tid);
    if (it != vcpu_of_tid.end()) return it->second;
    const long v = kvm_vcpu_of_thread(tid);
    vcpu_of_tid.emplace(tid, v);
    return v;
  }

  void record(Gfn gfn, pid_t tid) {
    if (cfg.cpu_source == SampleCpuSource::vcpu_threads) {
      const long v = vcpu_of(tid);
      if (v >= 0) {
        mig->record_vcpu_access(guest, gfn, static_cast<std::uint32_t>(v));
        return;
      }
    }
    const long cpu = cpu_of(tid);
    if (cpu >= 0) mig->record_access(guest, gfn, static_cast<CpuId>(cpu));
  }

  // The faulting thread's CPU, re-read from /proc at most every
  // kThreadCpuMaxAgeNs per thread: the read costs more than the rest of a
  // sample (about 8 us natively, milliseconds under emulation), and a
  // thread faulting on many pages in a row is still on the same CPU.
  static constexpr std::uint64_t kThreadCpuMaxAgeNs = 10'000'000;
  struct CachedCpu {
    long cpu;
    std::uint64_t read_ns;
  };
  std::unordered_map<pid_t, CachedCpu> cpu_of_tid;  // handler thread only
  long cpu_of(pid_t tid) {
    const std::uint64_t now = now_ns();
    auto it = cpu_of_tid.find(tid);
    if (it != cpu_of_tid.end() && now - it->second.read_ns < kThreadCpuMaxAgeNs) return it->second.cpu;
    if (cpu_of_tid.size() > 4096) cpu_of_tid.clear();  // threads come and go
    const long cpu = thread_cpu(tid);
    cpu_of_tid[tid] = CachedCpu{cpu, now};
    return cpu;
  }

  void handle(const uffd_msg& msg) {
    if (msg.event != UFFD_EVENT_PAGEFAULT) return;
    const std::uint64_t t0 = now_ns();
    char* page = reinterpret_cast<char*>(msg.arg.pagefault.address & ~std::uint64_t{kFrameSize - 1});
    const auto gfn = ram->gfn_of(page);
    const bool wp = msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP;
    if (gfn) {
      record(*gfn, static_cast<pid_t>(msg.arg.pagefault.feat.ptid));
      const int r = ram->region_of_gfn(*gfn);
      if (r >= 0 && armed[static_cast<std::size_t>(r)])  // before resolving: see `armed`
        (void)disarm(static_cast<std::size_t>(r),
                     *gfn - (ram->regions_[static_cast<std::size_t>(r)].guest_phys >> kFrameShift));
    }
    // Counted before the faulting thread can run on: whoever it tells sees
    // its sample counted.
    (wp ? wp_samples : minor_samples).fetch_add(1, std::memory_order_relaxed);
    samples.fetch_add(1, std::memory_order_relaxed);
    if (wp) {
      unprotect_range(page, kFrameSize);
    } else {
      uffdio_continue c{};
      c.range.start = reinterpret_cast<std::uintptr_t>(page);
      c.range.len = kFrameSize;
      if (::ioctl(uffd, UFFDIO_CONTINUE, &c) != 0) {
        // Mapped meanwhile (a close raced us) or mm changing: make sure it
        // is mapped and the thread woken; if not, it faults again.
        if (errno == EEXIST)
          resolve_retries.fetch_add(1, std::memory_order_relaxed);
        else
          continue_range(page, kFrameSize);
        uffdio_range w{reinterpret_cast<std::uintptr_t>(page), kFrameSize};
        (void)::ioctl(uffd, UFFDIO_WAKE, &w);
      }
    }
    ns_handling.fetch_add(now_ns() - t0, std::memory_order_relaxed);
  }

  // Handles every queued message; returns when the queue is empty.
  void drain() {
    uffd_msg msgs[16];
    for (;;) {
      const ssize_t n = ::read(uffd, msgs, sizeof msgs);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return;
      }
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(uffd_msg)); ++i) handle(msgs[i]);
    }
  }

  void run() {
    const std::uint64_t period_ns =
        cfg.pages_per_second ? std::uint64_t{1000000000} * cfg.window_pages / cfg.pages_per_second : 0;
    std::uint64_t deadline = now_ns() + period_ns;
    while (!stopping.load(std::memory_order_acquire)) {
      int timeout_ms = -1;
      if (period_ns) {
        const std::uint64_t now = now_ns();
        timeout_ms = now >= deadline ? 0 : static_cast<int>((deadline - now + 999999) / 1000000);
      }
      pollfd fds[2] = {{uffd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
      const int ready = ::poll(fds, 2, timeout_ms);
      if (ready > 0 && (fds[0].revents & POLLIN)) drain();
      if (period_ns && now_ns() >= deadline) {
        {
          std::lock_guard<std::mutex> g(window_mu);
          if (pauses == 0 && accepting) open_next_locked();
        }
        deadline += period_ns;
        const std::uint64_t now = now_ns();
        if (deadline < now) deadline = now + period_ns;  // fell behind: keep the budget
      }
    }
    {
      std::lock_guard<std::mutex> g(window_mu);
      accepting = false;  // scan() from other threads may not reopen one
      close_all_locked();
    }
    drain();
  }

  bool register_all() {
    for (const GuestRamRegion& g : ram->regions_) {
      if (!sampled(g)) continue;
      uffdio_register reg{};
      reg.range.start = reinterpret_cast<std::uintptr_t>(g.host);
      reg.range.len = g.bytes;
      reg.mode = g.backing == RamBacking::memfd ? UFFDIO_REGISTER_MODE_MINOR : UFFDIO_REGISTER_MODE_WP;
      const std::uint64_t need = g.backing == RamBacking::memfd ? (std::uint64_t{1} << _UFFDIO_CONTINUE)
                                                                : (std::uint64_t{1} << _UFFDIO_WRITEPROTECT);
      if (::ioctl(uffd, UFFDIO_REGISTER, &reg) != 0 || (reg.ioctls & need) != need) {
        unregister_all();
        return false;
      }
    }
    return true;
  }

  void unregister_all() {
    for (const GuestRamRegion& g : ram->regions_) {
      if (!sampled(g)) continue;
      uffdio_range r{reinterpret_cast<std::uintptr_t>(g.host), g.bytes};
      (void)::ioctl(uffd, UFFDIO_UNREGISTER, &r);  // also wakes any waiter
    }
  }
};

Result<std::unique_ptr<UffdSampler>, Error> UffdSampler::create(GuestRam& ram, Migrator& migrator, GuestId guest,
                                                                const SamplerConfig& config) {
  if (config.window_pages == 0 || config.window_pages > (1u << 20))
    return make_error(Errc::invalid_argument, "sampler: window_pages must be 1..1048576, not ", config.window_pages);
  if (config.cpu_source != SampleCpuSource::thread_cpu && config.cpu_source != SampleCpuSource::vcpu_threads)
    return make_error(Errc::invalid_argument, "sampler: unknown cpu_source");
  std::unique_ptr<Impl> impl(new Impl());
  impl->ram = &ram;
  impl->mig = &migrator;
  impl->guest = guest;
  impl->cfg = config;
  impl->armed.resize(ram.regions_.size());
  for (std::size_t r = 0; r < ram.regions_.size(); ++r) {
    const GuestRamRegion& g = ram.regions_[r];
    if (impl->sampled(g)) {
      const std::uint64_t words = ((g.bytes >> kFrameShift) + 63) / 64;
      impl->armed[r].reset(new (std::nothrow) std::atomic<std::uint64_t>[words]());
      if (!impl->armed[r]) return make_error(Errc::no_memory, "sampler: out of memory");
    }
    impl->any_memfd |= g.backing == RamBacking::memfd;
    impl->any_anon |= g.backing == RamBacking::anonymous;
  }
  impl->uffd = open_userfaultfd();
  if (impl->uffd < 0)
    return make_error(Errc::unsupported, "sampler: userfaultfd unavailable: ", std::strerror(errno));
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_THREAD_ID | (impl->any_memfd ? UFFD_FEATURE_MINOR_SHMEM : 0) |
                 (impl->any_anon ? UFFD_FEATURE_PAGEFAULT_FLAG_WP : 0);
  if (::ioctl(impl->uffd, UFFDIO_API, &api) != 0) {
    const int err = errno;
    ::close(impl->uffd);
    return make_error(Errc::unsupported, "sampler: the kernel refused userfaultfd features",
                      impl->any_memfd ? " MINOR_SHMEM" : "", impl->any_anon ? " PAGEFAULT_FLAG_WP" : "",
                      " THREAD_ID: ", std::strerror(err));
  }
  impl->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl->wake_fd < 0) {
    ::close(impl->uffd);
    return make_error(Errc::no_memory, "sampler: eventfd: ", std::strerror(errno));
  }
  {
    std::lock_guard<std::mutex> g(ram.sampler_lock_);
    if (ram.sampler_) {
      ::close(impl->uffd);
      ::close(impl->wake_fd);
      return make_error(Errc::busy, "sampler: this guest RAM has a sampler already");
    }
    std::unique_ptr<UffdSampler> s(new UffdSampler(impl.release()));
    ram.sampler_ = s.get();
    return s;
  }
}

UffdSampler::~UffdSampler() {
  stop();
  {
    std::lock_guard<std::mutex> g(impl_->ram->sampler_lock_);
    impl_->ram->sampler_ = nullptr;
  }
  ::close(impl_->uffd);
  ::close(impl_->wake_fd);
  delete impl_;
}

Status UffdSampler::set_vcpu_thread(std::uint32_t vcpu, pid_t tid) {
  std::lock_guard<std::mutex> g(impl_->tid_mu);
  for (auto it = impl_->vcpu_of_tid.begin(); it != impl_->vcpu_of_tid.end();)
    it = it->second == static_cast<long>(vcpu) ? impl_->vcpu_of_tid.erase(it) : std::next(it);
  if (tid > 0) impl_->vcpu_of_tid[tid] = static_cast<long>(vcpu);
  return {};
}

Status UffdSampler::start() {
  std::lock_guard<std::mutex> c(impl_->control_mu);
  if (running()) return Errc::busy;
  if (!impl_->register_all()) return Errc::unsupported;
  impl_->registered = true;
  impl_->stopping.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> g(impl_->window_mu);
    impl_->accepting = true;
  }
  impl_->thread = std::thread([this] { impl_->run(); });
  thread_running_.store(true, std::memory_order_release);
  return {};
}

void UffdSampler::stop() {
  std::lock_guard<std::mutex> c(impl_->control_mu);
  if (!running()) return;
  impl_->stopping.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  (void)!::write(impl_->wake_fd, &one, sizeof one);
  impl_->thread.join();
  std::uint64_t drained;
  (void)!::read(impl_->wake_fd, &drained, sizeof drained);
  // Every page is mapped and unprotected now (the thread closed the window
  // and resolved what was queued); unregistering wakes any late waiter.
  impl_->unregister_all();
  impl_->drain();
  impl_->registered = false;
  thread_running_.store(false, std::memory_order_release);
}

Status UffdSampler::scan(Gfn first, std::uint64_t pages) {
  if (pages == 0 || first > impl_->ram->page_count() || pages > impl_->ram->page_count() - first)
    return Errc::invalid_argument;
  if (!running()) return Errc::busy;
  std::lock_guard<std::mutex> g(impl_->window_mu);
  if (impl_->pauses || !impl_->accepting) return Errc::busy;
  impl_->open_gfns_locked(first, pages);
  return {};
}

void UffdSampler::close_window() {
  std::lock_guard<std::mutex> g(impl_->window_mu);
  impl_->close_all_locked();
}

SamplerStats UffdSampler::stats() const noexcept {
  const Impl& m = *impl_;
  SamplerStats s;
  s.samples = m.samples.load(std::memory_order_relaxed);
  s.minor_samples = m.minor_samples.load(std::memory_order_relaxed);
  s.wp_samples = m.wp_samples.load(std::memory_order_relaxed);
  s.windows = m.windows.load(std::memory_order_relaxed);
  s.pages_windowed = m.pages_windowed.load(std::memory_order_relaxed);
  s.ns_handling = m.ns_handling.load(std::memory_order_relaxed);
  s.ns_per_sample = s.samples ? static_cast<double>(s.ns_handling) / static_cast<double>(s.samples) : 0;
  s.resolve_retries = m.resolve_retries.load(std::memory_order_relaxed);
  s.errors = m.errors.load(std::memory_order_relaxed);
  s.pages_armed = m.armed_pages.load(std::memory_order_relaxed);
  return s;
}

namespace detail {

void sampler_pause(UffdSampler& s, std::span<const Gfn> gfns) noexcept {
  std::lock_guard<std::mutex> g(s.impl_->window_mu);
  s.impl_->close_gfns_locked(gfns);
  ++s.impl_->pauses;
}

void sampler_resume(UffdSampler& s) noexcept {
  std::lock_guard<std::mutex> g(s.impl_->window_mu);
  --s.impl_->pauses;
}

}  // namespace detail

}  // namespace numaheap
