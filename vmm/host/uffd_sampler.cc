// UffdSampler: user-space hinting faults over a VMM's guest RAM with
// userfaultfd (minor faults on memfd RAM, write-protect faults on anonymous
// RAM). See include/numaheap/vmm.h for the contract, and
// uffd_sampler_impl.h for its threads and which file holds what. This
// file: the public API (create, start, stop, scan, stats...) and the
// userfaultfd registration.
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

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

namespace numaheap {

using namespace uffd_host;

namespace {

int open_userfaultfd() {
  int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd >= 0) return fd;
  const int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);  // vm.unprivileged_userfaultfd=0
  if (dev < 0) return -1;
  fd = ::ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
  ::close(dev);
  return fd;
}

}  // namespace

bool UffdSampler::Impl::register_all() {
  for (std::size_t i = 0; i < ram->regions_.size(); ++i) {
    const GuestRamRegion& g = ram->regions_[i];
    if (!sampled(g)) continue;
    uffdio_register reg{};
    reg.range.start = reinterpret_cast<std::uintptr_t>(g.host);
    reg.range.len = g.bytes;
    reg.mode = g.backing == RamBacking::memfd ? UFFDIO_REGISTER_MODE_MINOR : UFFDIO_REGISTER_MODE_WP;
    const std::uint64_t need = g.backing == RamBacking::memfd ? (std::uint64_t{1} << _UFFDIO_CONTINUE)
                                                              : (std::uint64_t{1} << _UFFDIO_WRITEPROTECT);
    if (::ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
      // Only what this call registered is unregistered: a region refused
      // (EBUSY: the VMM's own userfaultfd holds it, e.g. post-copy live
      // migration in missing mode) must keep that registration, and
      // UFFDIO_UNREGISTER does not ask whose it is -- stripping it would
      // let the guest fault in zero pages where copied pages belong.
      unregister_first(i);
      return false;
    }
    if ((reg.ioctls & need) != need) {  // registered, but without the ioctl we need
      unregister_first(i + 1);
      return false;
    }
  }
  return true;
}

void UffdSampler::Impl::unregister_all() { unregister_first(ram->regions_.size()); }

void UffdSampler::Impl::unregister_first(std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const GuestRamRegion& g = ram->regions_[i];
    if (!sampled(g)) continue;
    uffdio_range r{reinterpret_cast<std::uintptr_t>(g.host), g.bytes};
    (void)::ioctl(uffd, UFFDIO_UNREGISTER, &r);  // also wakes any waiter
  }
}

Result<std::unique_ptr<UffdSampler>, Error> UffdSampler::create(GuestRam& ram, Migrator& migrator, GuestId guest,
                                                                const SamplerConfig& config) {
  if (config.window_pages == 0 || config.window_pages > (1u << 20))
    return make_error(Errc::invalid_argument, "sampler: window_pages must be 1..1048576, not ", config.window_pages);
  if (config.cpu_source != SampleCpuSource::thread_cpu && config.cpu_source != SampleCpuSource::vcpu_threads)
    return make_error(Errc::invalid_argument, "sampler: unknown cpu_source");
  if (!(config.max_handler_share > 0 && config.max_handler_share <= 1))
    return make_error(Errc::invalid_argument, "sampler: max_handler_share must be in (0, 1]");
  // A wrong id would drop every sample, or file it under another guest.
  const auto own = migrator.guest_stats(guest);
  if (!own) return make_error(Errc::invalid_argument, "sampler: guest ", guest, " is not in the migrator");
  std::unique_ptr<Impl> impl(new (std::nothrow) Impl());
  if (!impl) return make_error(Errc::no_memory, "sampler: out of memory");
  impl->ram = &ram;
  impl->mig = &migrator;
  impl->guest = guest;
  impl->cfg = config;
  impl->guest_vcpus = own->vcpus;
  impl->locked.assign(ram.regions_.size(), 0);
  impl->locked_pages.resize(ram.regions_.size());
  // memfd RAM in mlocked mappings: windows skip those parts (in whole
  // huge-page blocks); a region with nothing left to window is refused.
  for (std::size_t r = 0; r < ram.regions_.size(); ++r) {
    const GuestRamRegion& g = ram.regions_[r];
    if (!impl->sampled(g) || !impl->read_locked_pages(r, false)) continue;
    char where[96];
    std::snprintf(where, sizeof where, "[0x%llx, 0x%llx)", static_cast<unsigned long long>(g.guest_phys),
                  static_cast<unsigned long long>(g.guest_phys + g.bytes));
    return make_error(Errc::unsupported, "sampler: memfd guest RAM at guest-physical ", where,
                      " is mlocked (mlock, or mlockall as with -overcommit mem-lock=on): the kernel refuses to "
                      "unmap its pages (MADV_DONTNEED), so it cannot be sampled");
  }
  impl->armed.resize(ram.regions_.size());
  impl->vcpus_recent.resize(ram.regions_.size());
  impl->vcpus_older.resize(ram.regions_.size());
  impl->whole.resize(ram.regions_.size());
  impl->per_vcpu.reset(new (std::nothrow) std::atomic<std::uint64_t>[kSamplerCountedVcpus]());
  if (!impl->per_vcpu) return make_error(Errc::no_memory, "sampler: out of memory");
  for (std::size_t r = 0; r < ram.regions_.size(); ++r) {
    const GuestRamRegion& g = ram.regions_[r];
    if (impl->sampled(g)) {
      const std::uint64_t words = Impl::chunks_of(g.bytes >> kFrameShift);  // a bit per page; a word per chunk
      impl->armed[r].reset(new (std::nothrow) std::atomic<std::uint64_t>[words]());
      impl->vcpus_recent[r].reset(new (std::nothrow) std::atomic<std::uint64_t>[words]());
      impl->vcpus_older[r].reset(new (std::nothrow) std::atomic<std::uint64_t>[words]());
      const std::uint64_t blocks = ((g.bytes >> kFrameShift) + Impl::kBlock - 1) / Impl::kBlock;
      impl->whole[r].reset(new (std::nothrow) std::atomic<std::uint64_t>[(blocks + 63) / 64]());  // a bit per block
      if (!impl->armed[r] || !impl->vcpus_recent[r] || !impl->vcpus_older[r] || !impl->whole[r])
        return make_error(Errc::no_memory, "sampler: out of memory");
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
    // Moves already between their pause and resume resume this sampler:
    // it starts paused once for each (GuestRam::pause_sampler).
    impl->pauses.store(ram.moves_paused_, std::memory_order_relaxed);
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
  // The registration holds for this thread, not its id: its start time
  // tells it from a later thread with the same id (Impl::who).
  std::uint64_t start = 0;
  long cpu = -1;
  if (tid > 0 && !thread_stat(tid, start, cpu)) return Errc::invalid_argument;  // no such thread here
  std::lock_guard<std::mutex> g(impl_->tid_mu);
  for (auto it = impl_->registered_tids.begin(); it != impl_->registered_tids.end();)
    it = it->second.vcpu == vcpu ? impl_->registered_tids.erase(it) : std::next(it);
  if (tid > 0) impl_->registered_tids[tid] = Impl::Registered{vcpu, start};
  return {};
}

Status UffdSampler::start() {
  std::lock_guard<std::mutex> c(impl_->control_mu);
  if (running()) return Errc::busy;
  {
    // memfd RAM mlocked since create() or the last run: read again. A
    // region with nothing left to window (see create()'s message) is
    // refused before the sampler registers anything.
    std::lock_guard<std::mutex> g(impl_->window_mu);  // no window opens while stopped
    std::fill(impl_->locked.begin(), impl_->locked.end(), 0);
    for (auto& runs : impl_->locked_pages) runs.clear();
    impl_->regions_locked.store(0, std::memory_order_relaxed);
    impl_->pages_locked.store(0, std::memory_order_relaxed);
    bool refuse = false;
    for (std::size_t r = 0; r < impl_->ram->regions_.size(); ++r)
      if (impl_->sampled(impl_->ram->regions_[r]) && impl_->read_locked_pages(r, false)) {
        impl_->locked[r] = 1;  // counted in pages_locked by the read
        refuse = true;
      }
    if (refuse) return Errc::unsupported;
  }
  if (!impl_->register_all()) return Errc::unsupported;
  impl_->registered = true;
  impl_->stopping.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> g(impl_->window_mu);
    impl_->accepting = true;
  }
  // pthread_create, not std::thread: this library has no exceptions, and
  // std::thread reports a refused thread (pids.max, RLIMIT_NPROC, no room
  // for a stack) by throwing -- std::terminate here. A refusal is
  // no_memory, with everything as it was before start().
  // Named for top(1) and /proc/PID/task/*/comm, as VMMs name theirs.
  auto handler = +[](void* p) -> void* {
    pthread_setname_np(pthread_self(), "numaheap-uffd");
    static_cast<Impl*>(p)->run();
    return nullptr;
  };
  if (pthread_create(&impl_->thread, nullptr, handler, impl_) != 0) {
    {
      std::lock_guard<std::mutex> g(impl_->window_mu);
      impl_->accepting = false;
    }
    impl_->unregister_all();
    impl_->registered = false;
    return Errc::no_memory;
  }
  impl_->advice_running = false;
  if (impl_->cfg.follow_advice && impl_->cfg.pages_per_second) {
    auto adviser = +[](void* p) -> void* {
      pthread_setname_np(pthread_self(), "numaheap-advice");
      static_cast<Impl*>(p)->advise();
      return nullptr;
    };
    if (pthread_create(&impl_->advice_thread, nullptr, adviser, impl_) != 0) {
      impl_->stop_handler();  // the handler alone ran: every page mapped again
      return Errc::no_memory;
    }
    impl_->advice_running = true;
  }
  thread_running_.store(true, std::memory_order_release);
  return {};
}

void UffdSampler::stop() {
  std::lock_guard<std::mutex> c(impl_->control_mu);
  if (!running()) return;
  {
    std::lock_guard<std::mutex> g(impl_->advice_mu);
    impl_->stopping.store(true, std::memory_order_release);
  }
  impl_->advice_cv.notify_all();
  if (impl_->advice_running) pthread_join(impl_->advice_thread, nullptr);
  impl_->advice_running = false;
  impl_->stop_handler();
  thread_running_.store(false, std::memory_order_release);
}

Status UffdSampler::scan(Gfn first, std::uint64_t pages) {
  if (pages == 0 || first > impl_->ram->page_count() || pages > impl_->ram->page_count() - first)
    return Errc::invalid_argument;
  if (!running()) return Errc::busy;
  std::lock_guard<std::mutex> g(impl_->window_mu);
  if (impl_->pauses.load(std::memory_order_acquire) || !impl_->accepting) return Errc::busy;
  if (!impl_->open_gfns_locked(first, pages)) return Errc::unsupported;  // mlocked memfd RAM in the range
  return {};
}

Status UffdSampler::vcpu_moved(std::uint32_t vcpu) {
  if (!running()) return Errc::busy;
  impl_->moved_pending.fetch_or(std::uint64_t{1} << (vcpu % 64), std::memory_order_acq_rel);
  const std::uint64_t one = 1;
  (void)!::write(impl_->wake_fd, &one, sizeof one);
  return {};
}

std::uint64_t UffdSampler::vcpu_samples(std::uint32_t vcpu) const noexcept {
  return vcpu < kSamplerCountedVcpus ? impl_->per_vcpu[vcpu].load(std::memory_order_relaxed) : 0;
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
  s.resolve_calls = m.resolve_calls.load(std::memory_order_relaxed);
  s.bursts = m.bursts.load(std::memory_order_relaxed);
  s.pages_burst = m.pages_burst.load(std::memory_order_relaxed);
  s.steps_requested = m.kicks.load(std::memory_order_relaxed);
  s.budget_pages_per_second = m.budget_now.load(std::memory_order_relaxed);
  s.handler_share = m.share_now.load(std::memory_order_relaxed);
  s.blocks_windowed = m.blocks_windowed.load(std::memory_order_relaxed);
  s.arm_calls = m.arm_calls.load(std::memory_order_relaxed);
  s.sheds = m.sheds.load(std::memory_order_relaxed);
  s.pages_shed = m.pages_shed.load(std::memory_order_relaxed);
  s.follow_extensions = m.follow_extensions.load(std::memory_order_relaxed);
  s.regions_locked = m.regions_locked.load(std::memory_order_relaxed);
  s.pages_locked = m.pages_locked.load(std::memory_order_relaxed);
  s.faults_outside_windows = m.faults_outside_windows.load(std::memory_order_relaxed);
  s.vcpu_unknown_samples = m.vcpu_unknown_samples.load(std::memory_order_relaxed);
  return s;
}

namespace detail {

void sampler_pause(UffdSampler& s, std::span<const Gfn> gfns, bool close) noexcept {
  if (!close) {
    s.impl_->pauses.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  std::lock_guard<std::mutex> g(s.impl_->window_mu);
  s.impl_->close_gfns_locked(gfns);
  s.impl_->pauses.fetch_add(1, std::memory_order_acq_rel);
}

bool sampler_arm(UffdSampler& s, std::span<const Gfn> gfns) noexcept {
  std::lock_guard<std::mutex> g(s.impl_->window_mu);
  if (!s.impl_->accepting) return false;
  s.impl_->arm_gfns_locked(gfns);
  return true;
}

void sampler_resume(UffdSampler& s) noexcept { s.impl_->pauses.fetch_sub(1, std::memory_order_acq_rel); }

}  // namespace detail

}  // namespace numaheap

