// UffdSampler attribution: which thread faulted -- its vCPU (registered or
// named "CPU n/KVM") and CPU, from /proc/self/task/TID -- and the sample's
// record in the migrator (handler thread).
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

namespace uffd_host {

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

// Fields 22 (starttime, clock ticks after boot) and 39 (processor: the CPU
// the thread last ran on -- the faulting thread is blocked in its fault, so
// that is where it faulted) of /proc/self/task/TID/stat. A thread id can be
// given to a new thread once its thread has exited; the start time tells
// the two apart. False: no such thread (any more).
bool thread_stat(pid_t tid, std::uint64_t& start, long& cpu) {
  char path[64], buf[1024];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  if (!read_small(path, buf, sizeof buf)) return false;
  const char* p = std::strrchr(buf, ')');  // comm may hold spaces and parens
  if (!p) return false;
  ++p;
  start = 0;
  cpu = -1;
  for (int field = 3; field <= 39; ++field) {
    while (*p == ' ') ++p;
    if (!*p) return field > 22;  // an old kernel's shorter line: no processor
    if (field == 22) start = std::strtoull(p, nullptr, 10);
    if (field == 39 && *p >= '0' && *p <= '9') cpu = std::strtol(p, nullptr, 10);
    while (*p && *p != ' ') ++p;
  }
  return true;
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

}  // namespace uffd_host

void UffdSampler::Impl::refresh(pid_t tid, Seen& e, bool known, std::uint64_t now) {
  std::uint64_t start = 0;
  long cpu = -1;
  const bool alive = thread_stat(tid, start, cpu);
  if (!alive) start = 0;
  if (!known || start != e.start) e.vcpu_named = alive ? kvm_vcpu_of_thread(tid) : -1;
  e.start = start;
  e.cpu = cpu;
  e.read_ns = now;
}

UffdSampler::Impl::Who UffdSampler::Impl::who(pid_t tid) {
  const std::uint64_t now = now_ns();
  auto it = seen_tids.find(tid);
  const bool known = it != seen_tids.end();
  if (!known) {
    if (seen_tids.size() >= 4096) seen_tids.clear();  // threads come and go
    it = seen_tids.emplace(tid, Seen{0, -1, -1, 0}).first;
  }
  Seen& e = it->second;
  if (!known || now - e.read_ns >= kThreadMaxAgeNs) refresh(tid, e, known, now);
  Who w{e.vcpu_named, e.cpu};
  std::lock_guard<std::mutex> g(tid_mu);
  auto reg = registered_tids.find(tid);
  if (reg == registered_tids.end()) return w;
  if (reg->second.start != e.start && now != e.read_ns) {  // the cached read may predate the thread
    refresh(tid, e, true, now);
    w = Who{e.vcpu_named, e.cpu};
  }
  if (reg->second.start != e.start) {  // the registered thread has exited
    registered_tids.erase(reg);
    return w;
  }
  w.vcpu = static_cast<long>(reg->second.vcpu);
  return w;
}

void UffdSampler::Impl::record(Gfn gfn, std::size_t r, std::uint64_t page, pid_t tid) {
  const Who w = who(tid);
  const long v = w.vcpu;
  bool kick = false;  // a moved vCPU's sample
  if (v >= 0) {
    if (static_cast<std::uint64_t>(v) < kSamplerCountedVcpus)
      per_vcpu[static_cast<std::size_t>(v)].fetch_add(1, std::memory_order_relaxed);
    std::atomic<std::uint64_t>& chunk = vcpus_recent[r][page / 64];
    const std::uint64_t bit = std::uint64_t{1} << (static_cast<std::uint64_t>(v) % 64);
    if (!(chunk.load(std::memory_order_relaxed) & bit)) chunk.fetch_or(bit, std::memory_order_relaxed);
    kick = (follow_vcpus & bit) != 0;
    if (cfg.cpu_source == SampleCpuSource::vcpu_threads) {
      if (static_cast<std::uint64_t>(v) < guest_vcpus) {
        mig->record_vcpu_access(guest, gfn, static_cast<std::uint32_t>(v));
        if (kick) kick_migrator();
        return;
      }
      vcpu_unknown_samples.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (w.cpu >= 0) mig->record_access(guest, gfn, static_cast<CpuId>(w.cpu));
  if (kick) kick_migrator();
}

}  // namespace numaheap
