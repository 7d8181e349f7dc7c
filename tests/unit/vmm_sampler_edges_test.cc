// The userfaultfd sampler at its edges, on this host's real kernel:
//  * memfd guest RAM that is mlocked (QEMU -overcommit mem-lock=on): the
//    kernel refuses MADV_DONTNEED on a VM_LOCKED mapping, so its pages can
//    never be windowed -- refused up front, or, locked while running,
//    dropped from the walk after one error instead of failing every window;
//  * who a sample is from: a thread id the kernel gave to a new thread
//    after a vCPU thread exited is not that vCPU (nor the other way round),
//    and a vCPU the migrator has no slot for is not dropped silently;
//  * what a sample is: a fault on a page no window armed is resolved, not
//    counted nor recorded.
// Every wait is bounded (a deadline); no sleep stands in for a handshake.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "numaheap/topology_io.h"
#include "numaheap/vmm.h"

namespace numaheap {
namespace {

// mlock and munlock as system calls: the sanitizers intercept the libc
// functions and make them do nothing (their shadow memory), which would
// leave the RAM unlocked under ASan while the call says it worked.
int raw_mlock(const void* a, std::size_t n) { return static_cast<int>(::syscall(SYS_mlock, a, n)); }
int raw_munlock(const void* a, std::size_t n) { return static_cast<int>(::syscall(SYS_munlock, a, n)); }


constexpr std::uint64_t kPages = 1024;  // two 2 MiB blocks: one can be locked alone
constexpr std::uint64_t kBytes = kPages * 4096;
constexpr std::uint64_t kAnonGpa = kBytes + (1u << 20);  // after a 1 MiB hole
constexpr Gfn kAnon0 = kAnonGpa >> 12;

// memfd RAM (MAP_SHARED) at gpa 0 and anonymous RAM after a hole, one
// vnode each, tracked by a migrator; sampler() adds a sampler (declared
// after the migrator: it goes first).
struct SamplerEdges : ::testing::Test {
  Topology topo;
  NodeId node = 0;
  int mfd = -1;
  void* shm = MAP_FAILED;
  void* anon = MAP_FAILED;
  std::unique_ptr<GuestRam> ram;
  std::unique_ptr<Migrator> mig;
  GuestId id = 0;
  std::unique_ptr<UffdSampler> s;
  rlimit saved_memlock{};
  bool memlock_saved = false;

  void SetUp() override {
    auto t = load_topology_libnuma();
    if (!t) GTEST_SKIP() << "no libnuma topology";
    topo = *t;
    node = topo.memory_nodes().first();
    mfd = memfd_create("numaheap-edges", MFD_CLOEXEC);
    ASSERT_GE(mfd, 0);
    ASSERT_EQ(ftruncate(mfd, kBytes), 0);
    shm = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    anon = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(shm, MAP_FAILED);
    ASSERT_NE(anon, MAP_FAILED);
    ASSERT_EQ(madvise(anon, kBytes, MADV_NOHUGEPAGE), 0);
  }
  // The RAM with a migrator slot for `vcpus` vCPUs.
  void track(std::uint32_t vcpus) {
    const GuestRamRegion rs[] = {{shm, kBytes, 0, RamBacking::memfd, false},
                                 {anon, kBytes, kAnonGpa, RamBacking::anonymous, false}};
    const VnodeRam vs[] = {{0, 0, kBytes, NodeMask::single(node)}, {1, kAnonGpa, kBytes, NodeMask::single(node)}};
    auto r = GuestRam::create(topo, rs, vs);
    ASSERT_TRUE(r.has_value()) << r.error().message.c_str();
    ram = std::move(*r);
    auto m = Migrator::create(topo);
    ASSERT_TRUE(m.has_value());
    mig = std::move(*m);
    auto g = mig->add_guest(*ram, ram->migrate_options(vcpus, false));
    ASSERT_TRUE(g.has_value());
    id = *g;
  }
  // False: no userfaultfd sampler on this host (the test skips).
  bool sampler(const SamplerConfig& cfg) {
    auto c = UffdSampler::create(*ram, *mig, id, cfg);
    if (!c) return false;
    s = std::move(*c);
    return true;
  }
  // Page i of the memfd RAM gets byte i * mul + add at its start, for
  // stamped() to check that nothing was lost (windows, locks, moves).
  unsigned char* stamp(unsigned mul, unsigned add) {
    auto* bytes = static_cast<unsigned char*>(shm);
    for (std::uint64_t i = 0; i < kPages; ++i) bytes[i * 4096] = static_cast<unsigned char>(i * mul + add);
    return bytes;
  }
  void expect_stamped(unsigned mul, unsigned add) {
    const auto* bytes = static_cast<const unsigned char*>(shm);
    for (std::uint64_t i = 0; i < kPages; ++i)
      ASSERT_EQ(bytes[i * 4096], static_cast<unsigned char>(i * mul + add)) << "page " << i;
  }
  // mlock needs RLIMIT_MEMLOCK >= what is locked: raised (we are root),
  // put back in TearDown.
  bool lock(void* a, std::uint64_t bytes) {
    if (!memlock_saved) {
      if (getrlimit(RLIMIT_MEMLOCK, &saved_memlock) != 0) return false;
      memlock_saved = true;
      rlimit more = saved_memlock;
      if (more.rlim_cur != RLIM_INFINITY && more.rlim_cur < (64u << 20)) more.rlim_cur = 64u << 20;
      if (more.rlim_max != RLIM_INFINITY && more.rlim_max < more.rlim_cur) more.rlim_max = more.rlim_cur;
      (void)setrlimit(RLIMIT_MEMLOCK, &more);
    }
    return raw_mlock(a, bytes) == 0;
  }
  void TearDown() override {
    s.reset();
    if (mig && ram) {
      EXPECT_TRUE(mig->remove_guest(id).has_value());
    }
    mig.reset();
    ram.reset();
    if (shm != MAP_FAILED) {
      (void)raw_munlock(shm, kBytes);
      munmap(shm, kBytes);
    }
    if (anon != MAP_FAILED) munmap(anon, kBytes);
    if (mfd >= 0) close(mfd);
    if (memlock_saved) (void)setrlimit(RLIMIT_MEMLOCK, &saved_memlock);
  }
  unsigned read_shm(std::uint64_t first, std::uint64_t n) const {
    unsigned sum = 0;
    for (std::uint64_t i = first; i < first + n; ++i) sum += static_cast<volatile unsigned char*>(shm)[i * 4096];
    return sum;
  }
  // The guest's local-access ratio after a migrator step: -1 while the
  // migrator has seen no sample of it. (A page needs two samples to be
  // seen: a step halves every page's count before it looks.)
  double ratio_after_step() {
    (void)mig->step();
    auto g = mig->guest_stats(id);
    return g ? g->local_access_ratio : -2;
  }
};

// ---- (9) mlocked memfd RAM ----

// Locked before the sampler starts (mlockall(MCL_CURRENT | MCL_FUTURE)
// before the RAM was mapped, or mlock of the RAM): no window could ever
// open over it, so create() and start() say so instead of starting a
// sampler that fails every window.
TEST_F(SamplerEdges, MemfdRamLockedBeforeStartIsRefusedUpFront) {
  ASSERT_NO_FATAL_FAILURE(track(1));
  if (!lock(shm, kBytes)) GTEST_SKIP() << "mlock refused: " << std::strerror(errno);
  SamplerConfig cfg;
  cfg.pages_per_second = 0;
  auto c = UffdSampler::create(*ram, *mig, id, cfg);
  ASSERT_FALSE(c.has_value()) << "create() accepted mlocked memfd RAM";
  EXPECT_EQ(c.error().code, Errc::unsupported);
  EXPECT_NE(std::string(c.error().message.c_str()).find("mlock"), std::string::npos) << c.error().message.c_str();
  // Created while unlocked, locked before start(): start() refuses.
  ASSERT_EQ(raw_munlock(shm, kBytes), 0);
  if (!sampler(cfg)) GTEST_SKIP() << "no userfaultfd sampler here";
  ASSERT_TRUE(lock(shm, kBytes));
  const Status st = s->start();
  ASSERT_FALSE(st.has_value()) << "start() accepted mlocked memfd RAM";
  EXPECT_EQ(st.error(), Errc::unsupported);
  EXPECT_FALSE(s->running());
  // Nothing changed: unlocked, it starts and samples.
  ASSERT_EQ(raw_munlock(shm, kBytes), 0);
  ASSERT_TRUE(s->start().has_value());
  ASSERT_TRUE(s->scan(0, 4).has_value());
  (void)read_shm(0, 4);
  EXPECT_EQ(s->stats().minor_samples, 4u);
  s->stop();
}

// Locked while the sampler runs (mlock of guest RAM later on): the first
// window the kernel refuses (MADV_DONTNEED: EINVAL on a VM_LOCKED
// mapping) drops the region from windowing -- one error, counted in
// regions_locked -- instead of one error and a page-by-page close per
// window for ever. The anonymous RAM is still sampled.
TEST_F(SamplerEdges, MemfdRamLockedWhileRunningIsDroppedAfterOneError) {
  ASSERT_NO_FATAL_FAILURE(track(1));
  SamplerConfig cfg;
  cfg.pages_per_second = 0;  // windows on scan() only, first
  if (!sampler(cfg)) GTEST_SKIP() << "no userfaultfd sampler here";
  ASSERT_TRUE(s->start().has_value());
  if (!lock(shm, kBytes)) GTEST_SKIP() << "mlock refused: " << std::strerror(errno);
  unsigned refused = 0;
  for (int i = 0; i < 10; ++i) {
    const Status st = s->scan(0, kPages);
    refused += !st.has_value() && st.error() == Errc::unsupported;
    (void)read_shm(0, 8);
  }
  SamplerStats st = s->stats();
  EXPECT_EQ(st.errors, 1u) << "every window over the locked RAM failed again";
  EXPECT_EQ(refused, 10u) << "scan() over locked memfd RAM reported success";
  EXPECT_EQ(st.regions_locked, 1u);
  EXPECT_EQ(st.minor_samples, 0u);
  EXPECT_EQ(st.pages_armed, 0u);
  // The anonymous RAM still is.
  ASSERT_TRUE(s->scan(kAnon0, 4).has_value());
  for (int i = 0; i < 4; ++i) static_cast<volatile unsigned char*>(anon)[i * 4096] = 1;
  EXPECT_EQ(s->stats().wp_samples, 4u);
  s->stop();
  // The budget's walk: no error per window either.
  cfg.pages_per_second = 1u << 20;
  cfg.window_pages = 64;
  cfg.follow_advice = false;
  cfg.max_handler_share = 1;
  s.reset();
  ASSERT_EQ(raw_munlock(shm, kBytes), 0);
  ASSERT_TRUE(sampler(cfg));
  ASSERT_TRUE(s->start().has_value());
  ASSERT_TRUE(lock(shm, kBytes));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (s->stats().windows < 40 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  s->stop();
  st = s->stats();
  ASSERT_GE(st.windows, 40u) << "the walk opened too few windows in 30 s";
  EXPECT_LE(st.errors, 1u) << st.windows << " windows";
  EXPECT_EQ(st.regions_locked, 1u);
}

// Locked in part (mlock of some guest RAM, here one page of the second
// 2 MiB block): create() and start() accept the region, windows skip the
// locked block and sample the rest, scan() over the locked part says
// unsupported, and nothing is lost or left unmapped.
TEST_F(SamplerEdges, MemfdRamLockedInPartIsWindowedAroundTheLockedPart) {
  ASSERT_NO_FATAL_FAILURE(track(1));
  auto* bytes = stamp(7, 1);
  if (!lock(bytes + 600 * 4096, 4096)) GTEST_SKIP() << "mlock refused: " << std::strerror(errno);
  SamplerConfig cfg;
  cfg.pages_per_second = 0;
  auto c = UffdSampler::create(*ram, *mig, id, cfg);
  if (!c && c.error().code != Errc::unsupported) GTEST_SKIP() << "no userfaultfd sampler here";
  ASSERT_TRUE(c.has_value()) << "create() refused RAM locked in part: " << c.error().message.c_str();
  s = std::move(*c);
  ASSERT_TRUE(s->start().has_value());
  EXPECT_EQ(s->stats().pages_locked, 512u);
  ASSERT_TRUE(s->scan(0, 512).has_value());
  (void)read_shm(0, 4);
  EXPECT_EQ(s->stats().minor_samples, 4u);
  const Status locked = s->scan(512, 4);
  ASSERT_FALSE(locked.has_value());
  EXPECT_EQ(locked.error(), Errc::unsupported);
  (void)read_shm(512, 4);
  EXPECT_EQ(s->stats().minor_samples, 4u) << "a page of the locked block was windowed";
  const Status both = s->scan(0, kPages);  // the unlocked block is windowed all the same
  ASSERT_FALSE(both.has_value());
  (void)read_shm(100, 8);
  const SamplerStats st = s->stats();
  EXPECT_EQ(st.minor_samples, 12u);
  EXPECT_EQ(st.errors, 0u);
  EXPECT_EQ(st.regions_locked, 0u);
  s->stop();
  EXPECT_EQ(s->stats().pages_armed, 0u);
  ASSERT_NO_FATAL_FAILURE(expect_stamped(7, 1));
}

// The budget's walk over RAM locked in part: a locked block opens nothing,
// so the walk steps over it and every window still opens its full
// window_pages elsewhere (it used to spend its pages on the locked block
// and open nothing: a quarter of the windows here).
TEST_F(SamplerEdges, TheWalkStepsOverALockedPartWithoutSpendingWindowsOnIt) {
  ASSERT_NO_FATAL_FAILURE(track(1));
  auto* bytes = stamp(3, 1);
  if (!lock(bytes + 100 * 4096, 4096)) GTEST_SKIP() << "mlock refused: " << std::strerror(errno);
  SamplerConfig cfg;
  cfg.pages_per_second = 1u << 20;
  cfg.window_pages = 64;
  cfg.follow_advice = false;
  cfg.max_handler_share = 1;
  if (!sampler(cfg)) GTEST_SKIP() << "no userfaultfd sampler here";
  ASSERT_TRUE(s->start().has_value());
  EXPECT_EQ(s->stats().pages_locked, 512u);
  // Two rounds of the walk at least: 2048 pages, 512 of them locked.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (s->stats().windows < 64 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  s->stop();
  const SamplerStats st = s->stats();
  ASSERT_GE(st.windows, 64u) << "the walk opened too few windows in 30 s";
  EXPECT_EQ(st.errors, 0u);
  EXPECT_EQ(st.regions_locked, 0u);
  // Each window opened (about) its 64 pages; the old walk averaged 48.
  EXPECT_GE(st.pages_windowed, st.windows * 60) << st.windows << " windows, " << st.pages_windowed << " pages";
  EXPECT_EQ(st.pages_armed, 0u);
  ASSERT_NO_FATAL_FAILURE(expect_stamped(3, 1));
}

// Locked in part while the sampler runs: the first refused window reads
// the locks again and windows around them -- one error, the region stays
// in the walk -- where it used to drop the whole region.
TEST_F(SamplerEdges, MemfdRamLockedInPartWhileRunningKeepsTheRestWindowed) {
  ASSERT_NO_FATAL_FAILURE(track(1));
  auto* bytes = stamp(5, 3);
  SamplerConfig cfg;
  cfg.pages_per_second = 0;
  if (!sampler(cfg)) GTEST_SKIP() << "no userfaultfd sampler here";
  ASSERT_TRUE(s->start().has_value());
  if (!lock(bytes + 700 * 4096, 2 * 4096)) GTEST_SKIP() << "mlock refused: " << std::strerror(errno);
  std::uint64_t samples = 0;
  for (int round = 0; round < 5; ++round) {
    const Status st = s->scan(0, kPages);
    ASSERT_FALSE(st.has_value()) << "scan() over a locked part reported success";
    EXPECT_EQ(st.error(), Errc::unsupported);
    (void)read_shm(10 * round, 8);
    samples += 8;
    EXPECT_EQ(s->stats().minor_samples, samples) << "round " << round;
  }
  SamplerStats st = s->stats();
  EXPECT_EQ(st.errors, 1u) << "every window over the locked part failed again";
  EXPECT_EQ(st.regions_locked, 0u) << "the region was dropped whole";
  EXPECT_EQ(st.pages_locked, 512u);
  s->stop();
  st = s->stats();
  EXPECT_EQ(st.pages_armed, 0u);
  ASSERT_NO_FATAL_FAILURE(expect_stamped(5, 3));
  // Unlocked, a new start() windows all of it again.
  ASSERT_EQ(raw_munlock(bytes + 700 * 4096, 2 * 4096), 0);
  ASSERT_TRUE(s->start().has_value());
  EXPECT_EQ(s->stats().pages_locked, 0u);
  ASSERT_TRUE(s->scan(0, kPages).has_value());
  s->stop();
}

// ---- (12c) what counts as a sample ----

// A memfd page whose page-table entry went for another reason than a
// window (here the VMM's own MADV_DONTNEED) faults to the sampler too: it
// is mapped back, but it was in no window, so it is no sample -- neither
// counted nor given to the migrator.
TEST_F(SamplerEdges, AFaultOnAPageNoWindowArmedIsNoSample) {
  ASSERT_NO_FATAL_FAILURE(track(1));
  SamplerConfig cfg;
  cfg.pages_per_second = 0;
  if (!sampler(cfg)) GTEST_SKIP() << "no userfaultfd sampler here";
  ASSERT_TRUE(s->start().has_value());
  for (int round = 0; round < 2; ++round) {
    static_cast<volatile unsigned char*>(shm)[5 * 4096] = 42;
    ASSERT_EQ(madvise(static_cast<char*>(shm) + 5 * 4096, 4096, MADV_DONTNEED), 0);
    EXPECT_EQ(read_shm(5, 1), 42u) << "the page came back with other data";
  }
  SamplerStats st = s->stats();
  EXPECT_EQ(st.samples, 0u) << "a fault outside any window was counted";
  EXPECT_EQ(st.minor_samples, 0u);
  EXPECT_EQ(st.faults_outside_windows, 2u);
  EXPECT_EQ(ratio_after_step(), -1.0) << "a fault outside any window reached the migrator";
  // One in a window is a sample (and only one per page).
  ASSERT_TRUE(s->scan(7, 1).has_value());
  (void)read_shm(7, 1);
  (void)read_shm(7, 1);
  st = s->stats();
  EXPECT_EQ(st.samples, 1u);
  EXPECT_EQ(st.minor_samples, 1u);
  EXPECT_EQ(st.faults_outside_windows, 2u);
  s->stop();
}

// ---- (12b) a vCPU the migrator has no slot for ----

// vcpu_threads mode, a guest with one vCPU slot, a thread registered as
// vCPU 5 (and one named "CPU 7/KVM"): their samples are not dropped (the
// migrator's record_vcpu_access ignores a vCPU past its slots) but
// recorded by the thread's CPU, and counted.
TEST_F(SamplerEdges, AVcpuPastTheMigratorsSlotsFallsBackToItsCpu) {
  ASSERT_NO_FATAL_FAILURE(track(1));
  SamplerConfig cfg;
  cfg.pages_per_second = 0;
  cfg.cpu_source = SampleCpuSource::vcpu_threads;
  if (!sampler(cfg)) GTEST_SKIP() << "no userfaultfd sampler here";
  ASSERT_TRUE(s->start().has_value());
  ASSERT_TRUE(s->set_vcpu_thread(5, gettid()).has_value());
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(s->scan(0, 4).has_value());
    (void)read_shm(0, 4);
  }
  std::thread named([&] {
    (void)prctl(PR_SET_NAME, "CPU 7/KVM", 0, 0, 0);
    for (int round = 0; round < 2; ++round) {
      EXPECT_TRUE(s->scan(4, 4).has_value());
      (void)read_shm(4, 4);
    }
  });
  named.join();
  const SamplerStats st = s->stats();
  EXPECT_EQ(st.samples, 16u);
  EXPECT_EQ(s->vcpu_samples(5), 8u);
  EXPECT_EQ(s->vcpu_samples(7), 8u);
  EXPECT_EQ(st.vcpu_unknown_samples, 16u);
  EXPECT_NE(ratio_after_step(), -1.0) << "the samples of a vCPU past the migrator's slots were dropped";
  s->stop();
}

// ---- (12a) a thread id used again ----

// Makes the kernel give `tid` to the next thread of this process: writes
// tid - 1 to ns_last_pid (root), then creates threads until one gets it
// (another process may take it first) and runs `body` in that one.
// False: the kernel would not (no ns_last_pid, or tid kept taken).
template <class Body>
bool on_thread_with_tid(pid_t tid, Body body) {
  struct Arg {
    pid_t want;
    Body* body;
    bool got = false;
  } arg{tid, &body};
  for (int attempt = 0; attempt < 2000 && !arg.got; ++attempt) {
    const int fd = ::open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[32];
    const int n = std::snprintf(buf, sizeof buf, "%d", static_cast<int>(tid - 1));
    const bool wrote = ::write(fd, buf, static_cast<std::size_t>(n)) == n;
    ::close(fd);
    if (!wrote) return false;
    pthread_t t;
    auto fn = +[](void* p) -> void* {
      Arg* a = static_cast<Arg*>(p);
      if (gettid() != a->want) return nullptr;
      a->got = true;
      (*a->body)();
      return nullptr;
    };
    if (pthread_create(&t, nullptr, fn, &arg) != 0) return false;
    pthread_join(t, nullptr);
  }
  return arg.got;
}

// Thread A named "CPU 3/KVM" faults and exits; later a new thread B of
// another name gets A's thread id and faults: its sample is not vCPU 3's.
// Then the other way round: an unnamed thread's id reused by "CPU 5/KVM"
// is vCPU 5's; and a registration (set_vcpu_thread) ends with its thread. (The sampler reads a thread's identity again once its
// cached answer is 10 ms old; the wait below lets it age -- the kernel
// cannot hand out an id again within 10 ms unless told to, as here.)
TEST_F(SamplerEdges, ARecycledThreadIdIsNotTakenForTheOldVcpu) {
  ASSERT_NO_FATAL_FAILURE(track(8));
  SamplerConfig cfg;
  cfg.pages_per_second = 0;
  if (!sampler(cfg)) GTEST_SKIP() << "no userfaultfd sampler here";
  ASSERT_TRUE(s->start().has_value());
  // A registration names a thread of this process; another process's id
  // is refused and changes nothing.
  const Status foreign = s->set_vcpu_thread(3, getppid());
  EXPECT_FALSE(foreign.has_value()) << "another process's id was taken as a vCPU thread";
  if (!foreign.has_value()) {
    EXPECT_EQ(foreign.error(), Errc::invalid_argument);
  }
  ASSERT_TRUE(s->scan(0, kPages).has_value());
  auto age = [] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
  };
  // 0: "CPU 3/KVM" exits, another thread gets its id; 1: another thread
  // exits, "CPU 5/KVM" gets its id; 2: a thread registered as vCPU 6
  // exits (never unregistered), another thread gets its id.
  const char* const how[] = {"vCPU thread's id reused by another", "another's id reused by a vCPU thread",
                             "registered vCPU thread's id reused by another"};
  for (int mode = 0; mode < 3; ++mode) {
    SCOPED_TRACE(how[mode]);
    const std::uint64_t page_a = 2 * static_cast<std::uint64_t>(mode), page_b = page_a + 1;
    std::atomic<pid_t> tid_a{0};
    std::thread a([&] {
      tid_a = gettid();
      if (mode == 0) (void)prctl(PR_SET_NAME, "CPU 3/KVM", 0, 0, 0);
      if (mode == 2) {
        EXPECT_TRUE(s->set_vcpu_thread(6, gettid()).has_value());
      }
      (void)read_shm(page_a, 1);
    });
    a.join();
    const std::uint64_t before[3] = {s->vcpu_samples(3), s->vcpu_samples(5), s->vcpu_samples(6)};
    EXPECT_EQ(before[0], 1u);
    EXPECT_EQ(before[2], mode == 2 ? 1u : 0u);
    age();
    const bool reused = on_thread_with_tid(tid_a.load(), [&] {
      if (mode == 1) (void)prctl(PR_SET_NAME, "CPU 5/KVM", 0, 0, 0);
      (void)read_shm(page_b, 1);
    });
    if (!reused) GTEST_SKIP() << "could not get thread id " << tid_a.load() << " again (ns_last_pid)";
    EXPECT_EQ(s->stats().minor_samples, 2u * static_cast<std::uint64_t>(mode + 1));
    EXPECT_EQ(s->vcpu_samples(3), before[0]) << "a new thread on an old vCPU thread's id was taken for that vCPU";
    EXPECT_EQ(s->vcpu_samples(5), before[1] + (mode == 1 ? 1u : 0u))
        << "a vCPU thread on an old thread's id was taken for no vCPU";
    EXPECT_EQ(s->vcpu_samples(6), before[2]) << "a new thread on a registered thread's id was taken for its vCPU";
  }
  s->stop();
}

}  // namespace
}  // namespace numaheap
