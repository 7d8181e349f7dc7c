// GuestRam and UffdSampler given bad or awkward input (audit s16, vmm):
// mappings that are not what they are declared to be, guest frames past
// the largest one, a failed populate, the helper's socket inherited by a
// fork, a sampler attached while a move runs, a layout read during a
// rehome, the C API's all-or-nothing checks. Each answers with a clear
// error (or a hole) and changes nothing.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <numaif.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/ioctl.h>
#include <linux/userfaultfd.h>
#include <sys/mount.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "numaheap/numaheap_vmm.h"
#include "numaheap/topology_io.h"
#include "numaheap/vmm.h"
#include "unit/no_threads.h"
#include "unit/vmm_helper_checks.h"

namespace numaheap {
namespace {

constexpr std::uint64_t kPages = 256;
constexpr std::uint64_t kBytes = kPages * 4096;
constexpr int kRw = PROT_READ | PROT_WRITE;

int policy_of(void* addr) {
  int mode = -1;
  unsigned long mask[kMaxNodes / 64] = {};
  if (get_mempolicy(&mode, mask, kMaxNodes + 1, addr, MPOL_F_ADDR) != 0) return -2;
  return mode;
}

struct GuestRamInput : ::testing::Test {
  Topology topo;
  NodeId node = 0;
  int mfd = -1;
  void* shm = MAP_FAILED;   // the memfd, MAP_SHARED
  void* anon = MAP_FAILED;  // private anonymous
  std::vector<std::pair<void*, std::uint64_t>> maps;  // more mappings to unmap

  void SetUp() override {
    auto t = load_topology_libnuma();
    if (!t) GTEST_SKIP() << "no libnuma topology";
    topo = *t;
    node = topo.memory_nodes().first();
    mfd = memfd_create("numaheap-input-test", MFD_CLOEXEC);
    ASSERT_GE(mfd, 0);
    ASSERT_EQ(ftruncate(mfd, kBytes), 0);
    shm = mmap(nullptr, kBytes, kRw, MAP_SHARED, mfd, 0);
    anon = mmap(nullptr, kBytes, kRw, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(shm, MAP_FAILED);
    ASSERT_NE(anon, MAP_FAILED);
  }
  void TearDown() override {
    if (shm != MAP_FAILED) munmap(shm, kBytes);
    if (anon != MAP_FAILED) munmap(anon, kBytes);
    for (auto [a, n] : maps) munmap(a, n);
    if (mfd >= 0) close(mfd);
  }
  void* map(std::uint64_t bytes, int prot, int flags, int fd = -1) {
    void* p = mmap(nullptr, bytes, prot, flags, fd, 0);
    if (p != MAP_FAILED) maps.emplace_back(p, bytes);
    return p;
  }
  // The layout create() gives one vnode on another machine's topology
  // (nothing bound or populated); empty (and a failure) if it refuses.
  static std::vector<GuestRange> layout_of(const Topology& t, std::span<const GuestRamRegion> rs,
                                           const VnodeRam& v) {
    GuestRamOptions o;
    o.bind = false;
    o.populate = false;
    auto r = GuestRam::create(t, rs, std::span<const VnodeRam>(&v, 1), o);
    EXPECT_TRUE(r.has_value()) << r.error().message.c_str();
    return r ? (*r)->layout() : std::vector<GuestRange>{};
  }
  // `bytes` of private anonymous memory, 2 MiB aligned (whole huge blocks).
  unsigned char* map_aligned(std::uint64_t bytes) {
    void* raw = map(bytes + (2u << 20), kRw, MAP_PRIVATE | MAP_ANONYMOUS);
    if (raw == MAP_FAILED) return nullptr;
    return reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(raw) + (2u << 20) - 1) &
                                            ~std::uintptr_t{(2u << 20) - 1});
  }
};

// A private mapping declared memfd: the sampler's windows and the helper's
// moves MADV_DONTNEED memfd RAM, which throws a private mapping's written
// pages away. create() refuses it, whatever `shared` says; the data stays.
TEST_F(GuestRamInput, APrivateMappingDeclaredMemfdIsRefused) {
  auto* priv = static_cast<unsigned char*>(map(kBytes, kRw, MAP_PRIVATE, mfd));  // share=off
  ASSERT_NE(priv, MAP_FAILED);
  std::memset(priv, 0xab, kBytes);
  std::memset(anon, 0xcd, kBytes);
  for (bool shared : {false, true})
    for (void* p : {static_cast<void*>(priv), anon}) {
      const std::vector<GuestRamRegion> rs = {{p, kBytes, 0, RamBacking::memfd, shared}};
      const std::vector<VnodeRam> vs = {{0, 0, kBytes, NodeMask::single(node)}};
      auto r = GuestRam::create(topo, rs, vs);
      ASSERT_FALSE(r.has_value()) << (p == anon ? "private anonymous" : "MAP_PRIVATE memfd") << " shared=" << shared;
      EXPECT_EQ(r.error().code, Errc::invalid_argument);
      EXPECT_NE(std::string(r.error().message.c_str()).find("not a shared mapping"), std::string::npos)
          << r.error().message.c_str();
      EXPECT_EQ(policy_of(p), MPOL_DEFAULT) << "refused input was bound";
    }
  for (std::uint64_t i = 0; i < kBytes; i += 4096) {
    ASSERT_EQ(priv[i], 0xab) << i;
    ASSERT_EQ(static_cast<unsigned char*>(anon)[i], 0xcd) << i;
  }
  // Memory that is not mapped at all, and shared memory declared memfd
  // (MAP_SHARED | MAP_ANONYMOUS is shmem too): refused, accepted.
  void* gone = map(kBytes, kRw, MAP_PRIVATE | MAP_ANONYMOUS);
  ASSERT_NE(gone, MAP_FAILED);
  ASSERT_EQ(munmap(static_cast<char*>(gone) + 4096, 4096), 0);
  const std::vector<GuestRamRegion> holed = {{gone, kBytes, 0, RamBacking::anonymous, false}};
  auto h = GuestRam::create(topo, holed, {});
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, Errc::invalid_argument);
  void* shanon = map(kBytes, kRw, MAP_SHARED | MAP_ANONYMOUS);
  ASSERT_NE(shanon, MAP_FAILED);
  const std::vector<GuestRamRegion> ok = {{shanon, kBytes, 0, RamBacking::memfd, false}};
  auto r = GuestRam::create(topo, ok, {});
  EXPECT_TRUE(r.has_value()) << r.error().message.c_str();
}

// A shared mapping of a file on a disk filesystem declared memfd (or
// anonymous): losing page-table entries would keep its data (the page cache
// has it), but the sampler's userfaultfd modes do not work on such a file,
// so create() says so at once instead of the sampler failing later.
// Nothing is bound or written. A /dev/shm file (tmpfs) is memfd RAM's kind
// and is accepted.
TEST_F(GuestRamInput, ADiskFileIsNotGuestRam) {
  // A directory on a block device: the test's own (the build tree), else
  // /var/tmp; a machine with neither on one cannot run this.
  std::string dir;
  for (const char* d : {NUMAHEAP_BIN_DIR, "/var/tmp", "/tmp"}) {
    struct stat st{};
    if (stat(d, &st) == 0 && major(st.st_dev) != 0) {
      dir = d;
      break;
    }
  }
  if (dir.empty()) GTEST_SKIP() << "no directory on a block-device filesystem";
  std::string path = dir + "/numaheap-disk-ram-XXXXXX";
  const int fd = mkstemp(path.data());
  ASSERT_GE(fd, 0) << path;
  unlink(path.c_str());
  ASSERT_EQ(ftruncate(fd, kBytes), 0);
  auto* disk = static_cast<unsigned char*>(map(kBytes, kRw, MAP_SHARED, fd));
  close(fd);
  ASSERT_NE(disk, MAP_FAILED);
  std::memset(disk, 0x5a, kBytes);
  const std::vector<GuestRamRegion> rs = {{disk, kBytes, 0, RamBacking::memfd, false}};
  const std::vector<VnodeRam> vs = {{0, 0, kBytes, NodeMask::single(node)}};
  auto r = GuestRam::create(topo, rs, vs);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(std::string(r.error().message.c_str()).find("block-device filesystem"), std::string::npos)
      << r.error().message.c_str();
  EXPECT_EQ(policy_of(disk), MPOL_DEFAULT) << "refused input was bound";
  for (std::uint64_t i = 0; i < kBytes; i += 4096) ASSERT_EQ(disk[i], 0x5a) << i;
  // Nor is it anonymous RAM (write-protect faults do not work on it either).
  const std::vector<GuestRamRegion> as_anon = {{disk, kBytes, 0, RamBacking::anonymous, false}};
  auto a = GuestRam::create(topo, as_anon, vs);
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code, Errc::invalid_argument);
  EXPECT_EQ(policy_of(disk), MPOL_DEFAULT) << "refused input was bound";
  for (std::uint64_t i = 0; i < kBytes; i += 4096) ASSERT_EQ(disk[i], 0x5a) << i;
  // A /dev/shm file: tmpfs, accepted as memfd RAM.
  const int sfd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (sfd < 0) return;  // no /dev/shm here: the refusal above is the point
  ASSERT_EQ(ftruncate(sfd, kBytes), 0);
  void* tmpfs = map(kBytes, kRw, MAP_SHARED, sfd);
  close(sfd);
  ASSERT_NE(tmpfs, MAP_FAILED);
  const std::vector<GuestRamRegion> ok = {{tmpfs, kBytes, 0, RamBacking::memfd, false}};
  auto accepted = GuestRam::create(topo, ok, {});
  EXPECT_TRUE(accepted.has_value()) << accepted.error().message.c_str();
}

// A file of a filesystem with no block device (major 0 in /proc/self/maps,
// as tmpfs) that is not tmpfs/shmem or hugetlbfs -- ramfs here; btrfs,
// overlayfs and NFS read the same -- is not guest RAM either: create() asks
// the kernel which filesystem the mapped file is on and refuses it, its
// data untouched; a tmpfs file mounted the same way is accepted. Twice, in
// forked children with their own mount namespace: with the test's
// privileges (the kernel answers through /proc/self/map_files) and in a
// user namespace of their own (map_files is closed to it: the path in
// /proc/self/maps, checked to be the same file, is asked instead).
namespace {
enum ChildExit : int { kFine = 0, kAccepted = 1, kWrongError = 2, kDataChanged = 3, kTmpfsRefused = 4,
                       kNoNamespace = 77, kWrongRoute = 79 };

int other_filesystem_child(const Topology& topo, const std::string& dir, bool own_user_ns) {
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  if (::unshare(own_user_ns ? CLONE_NEWUSER | CLONE_NEWNS : CLONE_NEWNS) != 0) return kNoNamespace;
  if (own_user_ns) {
    auto put = [](const char* file, const std::string& text) {
      std::ofstream f(file);
      f << text;
      f.flush();
      return static_cast<bool>(f);
    };
    if (!put("/proc/self/setgroups", "deny") || !put("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
        !put("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
      return kNoNamespace;
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return kNoNamespace;
  for (const char* fs : {"ramfs", "tmpfs"}) {
    if (::mount("none", dir.c_str(), fs, 0, nullptr) != 0) return kNoNamespace;
    const std::string file = dir + "/ram";
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ::ftruncate(fd, kBytes) != 0) return kNoNamespace;
    auto* ram = static_cast<unsigned char*>(::mmap(nullptr, kBytes, kRw, MAP_SHARED, fd, 0));
    ::close(fd);
    if (ram == MAP_FAILED) return kNoNamespace;
    std::memset(ram, 0x5a, kBytes);
    // Which way the kernel can be asked: the route under test must be the one taken.
    char name[64];
    std::snprintf(name, sizeof name, "/proc/self/map_files/%lx-%lx", reinterpret_cast<unsigned long>(ram),
                  reinterpret_cast<unsigned long>(ram) + kBytes);
    const int direct = ::open(name, O_PATH | O_CLOEXEC);
    if (direct >= 0) ::close(direct);
    if ((direct >= 0) == own_user_ns) return kWrongRoute;
    GuestRamOptions o;
    o.move_helper = false;
    const GuestRamRegion rs[] = {{ram, kBytes, 0, RamBacking::memfd, false}};
    {
      auto r = GuestRam::create(topo, rs, {}, o);
      if (std::strcmp(fs, "ramfs") == 0) {
        if (r) return kAccepted;
        if (r.error().code != Errc::invalid_argument ||
            std::string(r.error().message.c_str()).find("neither tmpfs/shmem nor hugetlbfs") == std::string::npos)
          return kWrongError;
      } else if (!r) {
        return kTmpfsRefused;
      }
    }
    for (std::uint64_t i = 0; i < kBytes; i += 4096)
      if (ram[i] != 0x5a) return kDataChanged;
    ::munmap(ram, kBytes);
    ::unlink(file.c_str());
    if (::umount2(dir.c_str(), MNT_DETACH) != 0) return kNoNamespace;
  }
  return kFine;
}
}  // namespace

TEST_F(GuestRamInput, AFileOfAnotherMemoryFilesystemIsNotGuestRam) {
  std::string dir = "/tmp/numaheap-otherfs-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  int ran = 0;
  for (bool own_user_ns : {false, true}) {
    SCOPED_TRACE(own_user_ns ? "in a user namespace (the path route)" : "with the test's privileges (map_files)");
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::alarm(60);
      ::_exit(other_filesystem_child(topo, dir, own_user_ns));
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    const int code = WEXITSTATUS(status);
    if (code == kNoNamespace || code == kWrongRoute) continue;  // not possible here: the other variant may be
    ++ran;
    EXPECT_EQ(code, kFine) << "1: ramfs accepted; 2: not invalid_argument or the message does not say why; "
                              "3: data changed; 4: the tmpfs file refused";
  }
  ::rmdir(dir.c_str());
  if (ran == 0) GTEST_SKIP() << "no mount namespace (nor user namespace) here";
}

// A read-only or PROT_NONE region is not guest RAM: create() refuses it
// before populating (which writes), instead of dying inside populate.
TEST_F(GuestRamInput, AReadOnlyOrInaccessibleRegionIsRefusedNotWritten) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (int prot : {PROT_READ, PROT_NONE})
    for (bool touch : {false, true}) {
      void* p = map(kBytes, prot, MAP_PRIVATE | MAP_ANONYMOUS);
      ASSERT_NE(p, MAP_FAILED);
      const std::vector<GuestRamRegion> rs = {{p, kBytes, 0, RamBacking::anonymous, false}};
      GuestRamOptions o;
      o.populate_by_touch = touch;
      EXPECT_EXIT(
          {
            auto r = GuestRam::create(topo, rs, {}, o);
            _exit(!r && r.error().code == Errc::invalid_argument ? 0 : 1);
          },
          ::testing::ExitedWithCode(0), "")
          << "prot " << prot << " touch " << touch;
    }
  void* ro = map(kBytes, PROT_READ, MAP_SHARED, mfd);
  ASSERT_NE(ro, MAP_FAILED);
  const std::vector<GuestRamRegion> rs = {{ro, kBytes, 0, RamBacking::memfd, false}};
  auto r = GuestRam::create(topo, rs, {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(std::string(r.error().message.c_str()).find("read and write"), std::string::npos)
      << r.error().message.c_str();
}

// The guest RAM of a memfd region (unshared: no helper) with a migrator
// and a sampler (created, not started).
struct WithSampler {
  std::unique_ptr<GuestRam> ram;
  std::unique_ptr<Migrator> mig;
  std::unique_ptr<UffdSampler> sampler;
  GuestId id = 0;
  std::string skip;
  ~WithSampler() {
    sampler.reset();
    if (mig && ram) {
      EXPECT_TRUE(mig->remove_guest(id).has_value());
    }
  }
};

void with_sampler(WithSampler& w, const Topology& topo, std::span<const GuestRamRegion> rs, SamplerConfig cfg = {},
                  const GuestRamOptions& options = {}) {
  auto r = GuestRam::create(topo, rs, {}, options);
  ASSERT_TRUE(r.has_value()) << r.error().message.c_str();
  w.ram = std::move(*r);
  auto m = Migrator::create(topo);
  ASSERT_TRUE(m.has_value());
  w.mig = std::move(*m);
  auto g = w.mig->add_guest(*w.ram, w.ram->migrate_options(1, false));
  ASSERT_TRUE(g.has_value());
  w.id = *g;
  auto s = UffdSampler::create(*w.ram, *w.mig, w.id, cfg);
  if (!s) {
    w.skip = s.error().message.c_str();
    return;
  }
  w.sampler = std::move(*s);
}

// gfn << 12 wraps for gfn >= 2^52: such a frame is a hole, not an alias
// of a real page (host_address) nor an index far past the sampler's bitmaps.
TEST_F(GuestRamInput, AFrameBeyondTheLargestIsAHoleEverywhere) {
  const std::vector<GuestRamRegion> rs = {{shm, kBytes, 0, RamBacking::memfd, false}};
  WithSampler w;
  ASSERT_NO_FATAL_FAILURE(with_sampler(w, topo, rs));
  if (!w.sampler) GTEST_SKIP() << w.skip;
  const Gfn far = Gfn{1} << 52;
  EXPECT_EQ(w.ram->host_address(far + 5), nullptr);
  EXPECT_EQ(w.ram->host_address(~Gfn{0}), nullptr);
  const std::vector<Gfn> gfns = {far, far + 5, ~Gfn{0}, 1};
  std::vector<MoveOutcome> out(gfns.size(), MoveOutcome::busy);
  auto moved = w.ram->move(gfns, node, MoveGranularity::pages, out);
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(out[0], MoveOutcome::not_present);
  EXPECT_EQ(out[1], MoveOutcome::not_present);
  EXPECT_EQ(out[2], MoveOutcome::not_present);
  EXPECT_EQ(out[3], MoveOutcome::moved);
  std::vector<MoveOutcome> eo(gfns.size(), MoveOutcome::busy);
  MoveRequest q[2];
  q[0] = {gfns, node, MoveGranularity::whole_blocks, eo, Errc::unsupported};
  q[1] = {gfns, node, MoveGranularity::pages, out, Errc::unsupported};
  w.ram->move_each(q);
  ASSERT_TRUE(q[0].result.has_value());
  EXPECT_EQ(eo[0], MoveOutcome::not_present);
  EXPECT_EQ(eo[3], MoveOutcome::moved);
}

// A populate the kernel refuses (a memfd mapped past its end: SIGBUS, so
// EFAULT) is reported, and the ranges bound before it get their default
// policy back, as a refused bind's do.
TEST_F(GuestRamInput, AFailedPopulateLeavesNoRangeBound) {
  const int empty_fd = memfd_create("numaheap-empty", MFD_CLOEXEC);
  ASSERT_GE(empty_fd, 0);
  void* empty = map(kBytes, kRw, MAP_SHARED, empty_fd);  // the file has no bytes
  close(empty_fd);
  ASSERT_NE(empty, MAP_FAILED);
  const std::vector<GuestRamRegion> rs = {{anon, kBytes, 0, RamBacking::anonymous, false},
                                          {empty, kBytes, kBytes, RamBacking::memfd, false}};
  for (std::uint64_t vnode_bytes : {kBytes, 2 * kBytes}) {
    const std::vector<VnodeRam> vs = {{0, 0, vnode_bytes, NodeMask::single(node)}};
    auto r = GuestRam::create(topo, rs, vs);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::no_memory) << r.error().message.c_str();
    EXPECT_EQ(policy_of(anon), MPOL_DEFAULT) << "the bound range kept numaheap's policy";
    EXPECT_EQ(policy_of(empty), MPOL_DEFAULT);
  }
}

// Another process holding the helper's socket (every fork of the VMM
// without exec) must not keep ~GuestRam waiting for the helper's exit.
TEST_F(GuestRamInput, DestroyingTheRamDoesNotWaitForAForkThatInheritedTheHelpersSocket) {
  const std::set<int> before = test::child_pids();
  const std::vector<GuestRamRegion> rs = {{shm, kBytes, 0, RamBacking::memfd, true}};
  auto r = GuestRam::create(topo, rs, {});
  ASSERT_TRUE(r.has_value()) << r.error().message.c_str();
  std::unique_ptr<GuestRam> ram = std::move(*r);
  if (test::child_pids().size() <= before.size()) GTEST_SKIP() << "no move helper forked here";
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(p[1]);
    char c;
    (void)!read(p[0], &c, 1);  // until the test is done
    _exit(0);
  }
  close(p[0]);
  auto done = std::async(std::launch::async, [&] { ram.reset(); });
  // A bound, not a synchronisation: the reset waits for nothing else.
  EXPECT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "~GuestRam waits for the helper while a fork holds its socket";
  close(p[1]);  // the child exits (and with it, today, the helper)
  done.wait();
  int status = 0;
  EXPECT_EQ(waitpid(child, &status, 0), child);
}

// A probe blocking on its first call: a move waits inside it.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, released = false, used = false;
  static bool probe(void* ctx, const void*) {
    auto* g = static_cast<Gate*>(ctx);
    std::unique_lock<std::mutex> lk(g->mu);
    if (g->used) return false;
    g->used = g->entered = true;
    g->cv.notify_all();
    g->cv.wait(lk, [&] { return g->released; });
    return false;
  }
  void wait_entered() {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return entered; });
  }
  void release() {
    std::lock_guard<std::mutex> lk(mu);
    released = true;
    cv.notify_all();
  }
};

// A sampler attached while a move runs (a VMM re-creating its sampler to
// change its config, the migrator moving meanwhile): the move's end must
// not leave it paused for good (or its count negative): it opens windows.
TEST_F(GuestRamInput, ASamplerAttachedDuringAMoveStillOpensWindows) {
  constexpr std::uint64_t kBlockPages = KernelMover::kHugeBlockPages;
  unsigned char* big = map_aligned(kBlockPages * 4096);
  ASSERT_NE(big, nullptr);
  const GuestRamRegion rs[] = {{big, kBlockPages * 4096, 0, RamBacking::anonymous, false}};
  auto r = GuestRam::create(topo, rs, {});
  ASSERT_TRUE(r.has_value()) << r.error().message.c_str();
  std::unique_ptr<GuestRam> ram = std::move(*r);
  auto m = Migrator::create(topo);
  ASSERT_TRUE(m.has_value());
  auto id = (*m)->add_guest(*ram, ram->migrate_options(1, false));
  ASSERT_TRUE(id.has_value());
  for (bool replace : {false, true}) {
    SCOPED_TRACE(replace ? "a sampler replaced during the move" : "a sampler attached during the move");
    std::unique_ptr<UffdSampler> s;
    SamplerConfig cfg;
    cfg.pages_per_second = 0;  // windows on scan() only
    if (replace) {
      auto first = UffdSampler::create(*ram, **m, *id, cfg);
      if (!first) GTEST_SKIP() << first.error().message.c_str();
      s = std::move(*first);
    }
    Gate gate;
    ram->set_huge_probe_for_testing(Gate::probe, &gate);
    std::vector<Gfn> gfns(kBlockPages);
    for (Gfn g = 0; g < kBlockPages; ++g) gfns[g] = g;
    std::vector<MoveOutcome> out(gfns.size());
    std::thread mover([&] { (void)ram->move(gfns, node, MoveGranularity::pages, out); });
    gate.wait_entered();  // paused (or not: no sampler) and moving
    s.reset();
    auto made = UffdSampler::create(*ram, **m, *id, cfg);
    gate.release();
    mover.join();
    if (!made) GTEST_SKIP() << made.error().message.c_str();
    s = std::move(*made);
    ASSERT_TRUE(s->start().has_value());
    auto scanned = s->scan(0, 1);
    EXPECT_TRUE(scanned.has_value()) << "the sampler stays paused after a move that did not pause it";
    EXPECT_EQ(s->stats().windows, scanned ? 1u : 0u);
    s->stop();
    s.reset();
    ram->set_huge_probe_for_testing(nullptr, nullptr);
  }
  EXPECT_TRUE((*m)->remove_guest(*id).has_value());
}

// The layout read while a rehome replaces it: a copy, not a view into
// storage the rehome frees (one thread), and no data race (TSan).
TEST_F(GuestRamInput, TheLayoutIsACopyThatARelayoutDoesNotFree) {
  const std::vector<GuestRamRegion> rs = {{anon, kBytes, 0, RamBacking::anonymous, false}};
  const std::vector<VnodeRam> vs = {{0, 0, kBytes, NodeMask::single(node)}};
  auto r = GuestRam::create(topo, rs, vs);
  ASSERT_TRUE(r.has_value()) << r.error().message.c_str();
  GuestRam& g = **r;
  const auto before = g.layout();
  ASSERT_EQ(before.size(), 1u);
  const std::vector<GuestRange> split = {{0, kPages / 2, node, 0}, {kPages / 2, kPages / 2, node, 0}};
  ASSERT_TRUE(g.relayout(split).has_value());
  EXPECT_EQ(before[0].first, 0u);
  EXPECT_EQ(before[0].pages, kPages) << "the layout read before the relayout was freed by it";
  EXPECT_EQ(g.layout().size(), 2u);
}

TEST_F(GuestRamInput, TheLayoutCanBeReadWhileARelayoutRuns) {
  const std::vector<GuestRamRegion> rs = {{anon, kBytes, 0, RamBacking::anonymous, false}};
  const std::vector<VnodeRam> vs = {{0, 0, kBytes, NodeMask::single(node)}};
  auto r = GuestRam::create(topo, rs, vs);
  ASSERT_TRUE(r.has_value()) << r.error().message.c_str();
  GuestRam& g = **r;
  std::atomic<bool> stop{false};
  std::thread reader([&] {  // a VMM's stats thread
    while (!stop.load(std::memory_order_relaxed)) {
      std::uint64_t pages = 0;
      for (const GuestRange& part : g.layout()) pages += part.pages;
      EXPECT_EQ(pages, kPages);
      const MigrateGuestOptions o = g.migrate_options(1, false);
      EXPECT_GE(o.layout.size(), 1u);
    }
  });
  for (int i = 0; i < 2000; ++i) {  // the migrator rehoming it
    std::vector<GuestRange> l(1 + i % 4);
    for (std::size_t k = 0; k < l.size(); ++k)
      l[k] = GuestRange{k * (kPages / 4), k + 1 == l.size() ? kPages - k * (kPages / 4) : kPages / 4, node, 0};
    ASSERT_TRUE(g.relayout(l).has_value());
  }
  stop.store(true);
  reader.join();
}

// A refused mbind in relayout (here a seccomp filter) is reported and the
// layout is kept; the ranges keep their old binding.
bool refuse_mbind() {
#if defined(__x86_64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr std::uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
  return false;
#endif
  sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mbind, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
}

TEST_F(GuestRamInput, ARefusedRebindIsReportedAndKeepsTheLayout) {
  const std::vector<GuestRamRegion> rs = {{anon, kBytes, 0, RamBacking::anonymous, false}};
  const std::vector<VnodeRam> vs = {{0, 0, kBytes, NodeMask::single(node)}};
  auto r = GuestRam::create(topo, rs, vs);
  ASSERT_TRUE(r.has_value()) << r.error().message.c_str();
  GuestRam& g = **r;
  const std::vector<GuestRange> split = {{0, kPages / 2, node, 0}, {kPages / 2, kPages / 2, node, 0}};
  bool filtered = false;
  Status st;
  std::thread sandboxed([&] {  // the filter dies with this thread
    filtered = refuse_mbind();
    if (filtered) st = g.relayout(split);
  });
  sandboxed.join();
  if (!filtered) GTEST_SKIP() << "seccomp filters unavailable";
  ASSERT_FALSE(st.has_value()) << "relayout reported success with every mbind refused";
  EXPECT_EQ(st.error(), Errc::unsupported);
  EXPECT_EQ(g.layout().size(), 1u) << "the layout changed though nothing was rebound";
  EXPECT_EQ(policy_of(anon), MPOL_BIND);
}

// The C query checks its whole range first (as the C++ one): a range past
// the end writes nothing.
TEST_F(GuestRamInput, TheCQueryChecksTheWholeRangeBeforeWriting) {
  numaheap_topology* ct = nullptr;
  char err[256] = {};
  ASSERT_EQ(numaheap_topology_load_libnuma(&ct, err, sizeof err), NUMAHEAP_OK) << err;
  numaheap_ram_region rs[1] = {{anon, kBytes, 0, NUMAHEAP_RAM_ANONYMOUS, 0}};
  numaheap_vmm_ram* cr = nullptr;
  ASSERT_EQ(numaheap_vmm_ram_create(ct, rs, 1, nullptr, 0, nullptr, &cr, err, sizeof err), NUMAHEAP_OK) << err;
  std::vector<numaheap_page_state> buf(kPages + 1);
  std::memset(buf.data(), 0xee, buf.size() * sizeof buf[0]);
  std::vector<numaheap_page_state> before = buf;
  EXPECT_EQ(numaheap_vmm_ram_query(cr, 0, kPages + 1, buf.data()), NUMAHEAP_E_INVALID_ARGUMENT);
  EXPECT_EQ(std::memcmp(buf.data(), before.data(), buf.size() * sizeof buf[0]), 0) << "a refused query wrote";
  EXPECT_EQ(numaheap_vmm_ram_query(cr, ~std::uint64_t{0} - 3, 8, buf.data()), NUMAHEAP_E_INVALID_ARGUMENT);
  EXPECT_EQ(numaheap_vmm_ram_query(cr, 0, kPages, buf.data()), NUMAHEAP_OK);
  EXPECT_EQ(buf[kPages - 1].node, node);
  EXPECT_EQ(numaheap_vmm_ram_host_address(cr, (std::uint64_t{1} << 52) + 5), nullptr);
  numaheap_vmm_ram_destroy(cr);
  numaheap_topology_free(ct);
}

// A sampler for a guest id the migrator does not have would drop (or
// misfile) every sample: refused.
TEST_F(GuestRamInput, ASamplerForAnUnknownGuestIsRefused) {
  const std::vector<GuestRamRegion> rs = {{anon, kBytes, 0, RamBacking::anonymous, false}};
  WithSampler w;
  ASSERT_NO_FATAL_FAILURE(with_sampler(w, topo, rs));
  if (!w.sampler) GTEST_SKIP() << w.skip;
  w.sampler.reset();
  auto s = UffdSampler::create(*w.ram, *w.mig, w.id + 12345);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, Errc::invalid_argument);
  EXPECT_NE(std::string(s.error().message.c_str()).find("guest"), std::string::npos) << s.error().message.c_str();
  auto again = UffdSampler::create(*w.ram, *w.mig, w.id);
  EXPECT_TRUE(again.has_value()) << again.error().message.c_str();
}

// The forked child's checks for the test below; 0 when all pass, else the
// number of the first that failed (90+: could not set up, the test skips).
int sampler_refused_thread_checks(const Topology& topo, void* shm) {
  auto* p = static_cast<unsigned char*>(shm);
  auto pattern = [](std::uint64_t i) { return static_cast<unsigned char>((i * 7) ^ 0x5a); };
  for (std::uint64_t i = 0; i < kPages; ++i) p[i * 4096] = pattern(i);
  auto intact = [&] {
    for (std::uint64_t i = 0; i < kPages; ++i)
      if (p[i * 4096] != pattern(i)) return false;
    return true;
  };
  const GuestRamRegion rs[] = {{shm, kBytes, 0, RamBacking::memfd, false}};
  auto ram = GuestRam::create(topo, rs, {});
  if (!ram) return 90;
  auto mig = Migrator::create(topo);
  if (!mig) return 91;
  auto id = (*mig)->add_guest(**ram, (*ram)->migrate_options(1, false));
  if (!id) return 92;
  SamplerConfig cfg;  // a budget and follow_advice: the handler and the advice thread
  auto s = UffdSampler::create(**ram, **mig, *id, cfg);
  if (!s) return 93;
  UffdSampler& sm = **s;
  {
    test::NoThreads no_threads;
    if (!no_threads.ok()) return 94;
    const Status st = sm.start();
    if (st) return 1;  // a thread was made after all?
    if (st.error() != Errc::no_memory) return 2;
    if (sm.running()) return 3;
  }
  if (!intact()) return 4;  // nothing armed, nothing lost; still registered pages would hang here
  p[0] = pattern(0);        // and writable
  if (!sm.start()) return 5;  // threads can be made again
  if (!sm.running()) return 6;
  if (!sm.scan(0, kPages)) return 7;
  sm.stop();
  if (!intact()) return 8;
  s->reset();
  if (!(*mig)->remove_guest(*id)) return 95;
  return 0;
}

}  // namespace

// UffdSampler::start when the system refuses a thread (pids.max or
// RLIMIT_NPROC reached, no room for a stack): no_memory, nothing armed or
// registered, every page as it was; the library has no exceptions, so a
// std::thread that throws would have aborted the VMM instead.
TEST_F(GuestRamInput, ASamplerStartThatCannotMakeItsThreadReportsNoMemory) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(60);  // a start() that hangs (a half-made sampler's teardown did) fails too: SIGALRM
    _exit([&]() noexcept { return sampler_refused_thread_checks(topo, shm); }());
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  const bool killed = WIFSIGNALED(status);
  ASSERT_FALSE(killed) << "the child died of signal " << WTERMSIG(status);
  ASSERT_TRUE(WIFEXITED(status));
  const int code = WEXITSTATUS(status);
  if (code >= 90) GTEST_SKIP() << "could not set up (" << code << ")";
  EXPECT_EQ(code, 0) << "check " << code << " of sampler_refused_thread_checks() failed";
}

// ---- the move helper: nothing reachable only through it (audit s16 #8) ----

namespace {
// The helper forked by create() on this thread (its only child here).
pid_t helper_of_this_thread() {
  const std::string children = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/children";
  FILE* f = std::fopen(children.c_str(), "r");
  if (!f) return -1;
  int pid = -1;
  if (std::fscanf(f, "%d", &pid) != 1) pid = -1;
  std::fclose(f);
  return pid;
}
}  // namespace

// Pages that moved through the helper and were not touched since: once the
// helper is gone (killed, or dropped after a refusal) they must still be
// found, queried and moved from the VMM's own mapping. (Before: they stayed
// unmapped in the VMM, so move_pages from it reported them not present for
// ever.)
TEST_F(GuestRamInput, PagesMovedThroughADroppedHelperAreStillFoundAndMoved) {
  for (std::uint64_t i = 0; i < kPages; ++i) static_cast<unsigned char*>(shm)[i * 4096] = static_cast<unsigned char>(i ^ 0x5a);
  const GuestRamRegion rs[] = {{shm, kBytes, 0, RamBacking::memfd, true}};
  auto r = GuestRam::create(topo, rs, {});
  ASSERT_TRUE(r.has_value()) << r.error().message.c_str();
  GuestRam& g = **r;
  const pid_t helper = helper_of_this_thread();
  if (helper <= 0) GTEST_SKIP() << "no helper child seen (no CONFIG_PROC_CHILDREN?)";
  const std::vector<Gfn> gfns = {0, 1, 2, 3, 100, kPages - 1};
  std::vector<MoveOutcome> out(gfns.size());
  ASSERT_TRUE(g.move(gfns, node, MoveGranularity::pages, out).has_value());
  for (std::size_t i = 0; i < gfns.size(); ++i) EXPECT_EQ(out[i], MoveOutcome::moved) << "gfn " << gfns[i];
  ASSERT_EQ(g.stats().moves_via_helper, 1u);
  ASSERT_EQ(::kill(helper, SIGKILL), 0);
  // The move that finds the helper gone drops it (its pages: busy) ...
  const std::vector<Gfn> other = {10, 11};
  std::vector<MoveOutcome> other_out(other.size());
  ASSERT_TRUE(g.move(other, node, MoveGranularity::pages, other_out).has_value());
  // ... and what moved through it before is still there for this process.
  ASSERT_TRUE(g.move(gfns, node, MoveGranularity::pages, out).has_value());
  for (std::size_t i = 0; i < gfns.size(); ++i) EXPECT_EQ(out[i], MoveOutcome::moved) << "gfn " << gfns[i];
  std::vector<PageState> st(kPages);
  ASSERT_TRUE(g.query(0, st).has_value());
  for (std::uint64_t i = 0; i < kPages; ++i) EXPECT_EQ(st[i].node, node) << "gfn " << i;
  for (std::uint64_t i = 0; i < kPages; ++i)
    ASSERT_EQ(static_cast<unsigned char*>(shm)[i * 4096], static_cast<unsigned char>(i ^ 0x5a)) << "gfn " << i;
}

// Two threads moving through the same GuestRam (a VMM calling the C move
// while the migrator's thread steps): Mover calls are serialised, so the
// helper's socket pairs each request with its own answer and no zap or
// map-back runs under another move. Thread A is held inside its move (in
// the huge-block probe, its helper request answered, its pages zapped);
// thread B's move must wait outside, not run into the mover beside it.
// (Before: nothing serialised them: B's request could take A's answer and
// zap pages the helper had not mapped yet.) Deterministic: B is seen either
// inside the probe (fails) or blocked on a futex that is not the probe's.
struct CountingGate {
  std::mutex mu;
  std::condition_variable cv;
  int inside = 0, max_inside = 0;
  bool released = false;
  static bool probe(void* ctx, const void*) {
    auto* g = static_cast<CountingGate*>(ctx);
    std::unique_lock<std::mutex> lk(g->mu);
    g->max_inside = std::max(g->max_inside, ++g->inside);
    g->cv.notify_all();
    g->cv.wait(lk, [&] { return g->released; });
    --g->inside;
    return false;
  }
};

TEST_F(GuestRamInput, ConcurrentMovesAreSerialised) {
  constexpr std::uint64_t kBlock = KernelMover::kHugeBlockPages * 4096;
  const int fd = memfd_create("numaheap-serialised", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, kBlock), 0);
  unsigned char* at = map_aligned(kBlock);  // an aligned hole for the memfd
  ASSERT_NE(at, nullptr);
  ASSERT_EQ(mmap(at, kBlock, kRw, MAP_SHARED | MAP_FIXED, fd, 0), at);
  close(fd);
  for (std::uint64_t i = 0; i < kBlock / 4096; ++i) at[i * 4096] = static_cast<unsigned char>(i + 1);
  const GuestRamRegion rs[] = {{at, kBlock, 0, RamBacking::memfd, true}};
  auto r = GuestRam::create(topo, rs, {});
  ASSERT_TRUE(r.has_value()) << r.error().message.c_str();
  GuestRam& g = **r;
  CountingGate gate;
  g.set_huge_probe_for_testing(CountingGate::probe, &gate);
  const Gfn ga[] = {0}, gb[] = {1};
  MoveOutcome oa[1], ob[1];
  std::thread a([&] { (void)g.move(ga, node, MoveGranularity::whole_blocks, oa); });
  {
    std::unique_lock<std::mutex> lk(gate.mu);
    ASSERT_TRUE(gate.cv.wait_for(lk, std::chrono::seconds(30), [&] { return gate.inside == 1; }));
  }
  std::atomic<long> b_tid{0};
  std::thread b([&] {
    b_tid.store(::syscall(SYS_gettid));
    (void)g.move(gb, node, MoveGranularity::whole_blocks, ob);
  });
  while (b_tid.load() == 0) std::this_thread::yield();
  const std::string sys = "/proc/self/task/" + std::to_string(b_tid.load()) + "/syscall";
  const auto gate_lo = reinterpret_cast<std::uintptr_t>(&gate), gate_hi = gate_lo + sizeof gate;
  bool blocked_outside = false, ran_beside = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!blocked_outside && !ran_beside && std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lk(gate.mu);
      ran_beside = gate.inside > 1;
    }
    long nr = -1;
    unsigned long uaddr = 0;
    if (FILE* f = std::fopen(sys.c_str(), "r")) {
      if (std::fscanf(f, "%ld %lx", &nr, &uaddr) != 2) nr = -1;
      std::fclose(f);
    }
    blocked_outside = !ran_beside && nr == SYS_futex && (uaddr < gate_lo || uaddr >= gate_hi);
    std::this_thread::yield();
  }
  {
    std::lock_guard<std::mutex> lk(gate.mu);
    gate.released = true;
    gate.cv.notify_all();
  }
  a.join();
  b.join();
  EXPECT_FALSE(ran_beside) << "a second move ran inside the mover while another was there";
  EXPECT_TRUE(blocked_outside || ran_beside) << "the second move was never seen waiting";
  EXPECT_EQ(gate.max_inside, 1);
  g.set_huge_probe_for_testing(nullptr, nullptr);
  EXPECT_EQ(oa[0], MoveOutcome::moved);
  EXPECT_EQ(ob[0], MoveOutcome::moved);
  for (std::uint64_t i = 0; i < kBlock / 4096; ++i) ASSERT_EQ(at[i * 4096], static_cast<unsigned char>(i + 1)) << i;
}

// ---- layout: parts split at 2 MiB guest-physical boundaries (audit s16 #10b) ----

// A vnode that starts mid-granule, over two nodes: its split point is a
// 2 MiB boundary of guest-physical space (a hugetlb region there starts at
// one, so its huge pages are never split). Before: 2 MiB counted from the
// vnode's start (gpa 0x201000 here).
TEST_F(GuestRamInput, VnodePartsSplitAtGuestPhysicalHugePageBoundaries) {
  auto two = parse_numactl_text(
      "available: 2 nodes (0-1)\nnode 0 cpus: 0 1\nnode 0 size: 1024 MB\nnode 0 free: 512 MB\n"
      "node 1 cpus: 2 3\nnode 1 size: 1024 MB\nnode 1 free: 512 MB\nnode distances:\nnode   0   1 \n"
      "  0:  10  21 \n  1:  21  10 \n");
  ASSERT_TRUE(two.has_value());
  constexpr std::uint64_t kMiB = 1u << 20;
  unsigned char* big = map_aligned(8 * kMiB);
  ASSERT_NE(big, nullptr);
  const GuestRamRegion rs[] = {{big, 8 * kMiB, 0, RamBacking::anonymous, false}};
  NodeMask both;
  both.set(0);
  both.set(1);
  for (const std::uint64_t start : {std::uint64_t{4096}, std::uint64_t{1 * kMiB}, std::uint64_t{2 * kMiB - 4096}}) {
    for (const std::uint64_t bytes : {4 * kMiB, 4 * kMiB + 8192, 5 * kMiB + 4096}) {
      SCOPED_TRACE(testing::Message() << "vnode at " << start << ", " << bytes << " bytes");
      const std::vector<GuestRange> l = layout_of(*two, rs, {0, start, bytes, both});
      ASSERT_EQ(l.size(), 2u);
      EXPECT_EQ(l[0].first, start >> 12);
      EXPECT_EQ(l[0].first + l[0].pages, l[1].first);
      EXPECT_EQ(l[1].first + l[1].pages, (start + bytes) >> 12);
      EXPECT_EQ(l[1].first % 512, 0u) << "split inside a 2 MiB granule of guest-physical space";
      // The boundary nearest the even split: each part within half a
      // granule of half the vnode (before: rounded up, 1023 and 3 pages
      // for 4 MiB + 8 KiB at gpa 0x1000).
      EXPECT_LE(l[0].pages > l[1].pages ? l[0].pages - l[1].pages : l[1].pages - l[0].pages, 512u)
          << "parts far from even: " << l[0].pages << " and " << l[1].pages;
    }
  }
}

// The same over three and four nodes: every split point a 2 MiB boundary,
// every part within a granule of its even share (its two ends each within
// half a granule of theirs), every node given a part.
TEST_F(GuestRamInput, VnodePartsOverManyNodesAreEvenToAGranule) {
  auto four = parse_numactl_text(
      "available: 4 nodes (0-3)\nnode 0 cpus: 0\nnode 0 size: 1024 MB\nnode 0 free: 512 MB\n"
      "node 1 cpus: 1\nnode 1 size: 1024 MB\nnode 1 free: 512 MB\nnode 2 cpus: 2\nnode 2 size: 1024 MB\n"
      "node 2 free: 512 MB\nnode 3 cpus: 3\nnode 3 size: 1024 MB\nnode 3 free: 512 MB\nnode distances:\n"
      "node   0   1   2   3 \n  0:  10  21  21  21 \n  1:  21  10  21  21 \n  2:  21  21  10  21 \n"
      "  3:  21  21  21  10 \n");
  ASSERT_TRUE(four.has_value()) << four.error().message.c_str();
  constexpr std::uint64_t kMiB = 1u << 20;
  unsigned char* big = map_aligned(32 * kMiB);
  ASSERT_NE(big, nullptr);
  const GuestRamRegion rs[] = {{big, 32 * kMiB, 0, RamBacking::anonymous, false}};
  for (const unsigned k : {3u, 4u}) {
    NodeMask nodes;
    for (unsigned n = 0; n < k; ++n) nodes.set(n);
    for (const std::uint64_t start : {std::uint64_t{0}, std::uint64_t{4096}, std::uint64_t{3 * kMiB + 8192}}) {
      for (const std::uint64_t bytes : {12 * kMiB, 13 * kMiB + 4096, 20 * kMiB - 8192, 9 * kMiB}) {
        SCOPED_TRACE(testing::Message() << k << " nodes, vnode at " << start << ", " << bytes << " bytes");
        const std::vector<GuestRange> l = layout_of(*four, rs, {0, start, bytes, nodes});
        ASSERT_EQ(l.size(), k);
        const std::uint64_t pages = bytes >> 12;
        Gfn at = start >> 12;
        for (unsigned i = 0; i < k; ++i) {
          EXPECT_EQ(l[i].first, at) << "part " << i;
          EXPECT_EQ(l[i].pnode, i);
          if (i > 0) {
            EXPECT_EQ(l[i].first % 512, 0u) << "part " << i << " starts inside a 2 MiB granule";
          }
          const std::uint64_t even = pages / k;
          EXPECT_LE(l[i].pages > even ? l[i].pages - even : even - l[i].pages, 512u + 1)
              << "part " << i << ": " << l[i].pages << " pages, even share " << even;
          at += l[i].pages;
        }
        EXPECT_EQ(at, (start + bytes) >> 12);
      }
    }
  }
}

// ---- /proc unreadable (audit s16, minor) ----

// Where /proc/self/maps cannot be read (a jail without /proc), nothing can
// be checked: create() refuses (unsupported, saying how to vouch) rather
// than take a private mapping declared memfd, whose data the windows and
// moves would drop; with trust_mappings it proceeds. In a forked child with
// /proc hidden under an empty tmpfs (its own mount namespace).
TEST_F(GuestRamInput, WithoutProcTheMappingsAreNotTakenOnTrust) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::alarm(60);
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("none", "/proc", "tmpfs", 0, nullptr) != 0)
      ::_exit(77);  // cannot hide /proc here
    if (::access("/proc/self/maps", R_OK) == 0) ::_exit(78);
    static_cast<unsigned char*>(anon)[0] = 0x42;
    const GuestRamRegion rs[] = {{anon, kBytes, 0, RamBacking::memfd, true}};  // private, declared memfd
    GuestRamOptions o;
    o.move_helper = false;
    auto refused = GuestRam::create(topo, rs, {}, o);
    if (refused || refused.error().code != Errc::unsupported) ::_exit(1);
    if (std::string(refused.error().message.c_str()).find("trust_mappings") == std::string::npos) ::_exit(2);
    if (static_cast<unsigned char*>(anon)[0] != 0x42) ::_exit(3);
    o.trust_mappings = true;
    const GuestRamRegion ok[] = {{shm, kBytes, 0, RamBacking::memfd, true}};
    if (!GuestRam::create(topo, ok, {}, o)) ::_exit(4);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot make a mount namespace here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: accepted or not unsupported; 2: the message does not say how to vouch; "
                                       "3: data changed; 4: trust_mappings refused; 78: /proc still readable";
}

// ---- another userfaultfd on the same RAM (audit s16, lower-confidence hazard) ----

namespace {
// The VmFlags of the mapping that holds `addr` (/proc/self/smaps), or "".
std::string vm_flags_of(const void* addr) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  while (std::getline(in, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) inside = a >= lo && a < hi;  // a mapping's header
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return "";
}
}  // namespace

// A region the VMM's own userfaultfd holds (post-copy live migration
// registers guest RAM in missing mode): the sampler cannot register it
// (EBUSY) and start() fails -- and must leave that registration alone.
// UFFDIO_UNREGISTER does not ask whose a range is, so the sampler undoes
// only what it registered itself. (Before: it unregistered every region,
// the VMM's too, and the guest would fault in zero pages where copied
// pages belong.)
TEST_F(GuestRamInput, AFailedSamplerStartLeavesTheVmmsOwnUserfaultfdAlone) {
  const int vmm_uffd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (vmm_uffd < 0) GTEST_SKIP() << "no userfaultfd here";
  uffdio_api api{};
  api.api = UFFD_API;
  ASSERT_EQ(::ioctl(vmm_uffd, UFFDIO_API, &api), 0);
  // The VMM's post-copy registration of the anonymous region (after the
  // memfd region in guest-physical order, so the sampler registers the
  // memfd first and then meets the refusal).
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<std::uintptr_t>(anon);
  reg.range.len = kBytes;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  ASSERT_EQ(::ioctl(vmm_uffd, UFFDIO_REGISTER, &reg), 0) << std::strerror(errno);
  ASSERT_NE(vm_flags_of(anon).find(" um"), std::string::npos) << vm_flags_of(anon);
  {
    const std::vector<GuestRamRegion> rs = {{shm, kBytes, 0, RamBacking::memfd, true},
                                            {anon, kBytes, kBytes, RamBacking::anonymous, false}};
    WithSampler w;
    GuestRamOptions o;
    o.populate = false;  // the anonymous region is the VMM's post-copy target: untouched
    ASSERT_NO_FATAL_FAILURE(with_sampler(w, topo, rs, {}, o));
    if (!w.sampler) GTEST_SKIP() << w.skip;
    const Status started = w.sampler->start();
    EXPECT_FALSE(started.has_value()) << "registered a range another userfaultfd holds";
    EXPECT_NE(vm_flags_of(anon).find(" um"), std::string::npos)
        << "the VMM's own registration was stripped: " << vm_flags_of(anon);
    EXPECT_EQ(vm_flags_of(shm).find(" ui"), std::string::npos) << "the sampler's own registration was left";
  }
  EXPECT_NE(vm_flags_of(anon).find(" um"), std::string::npos) << vm_flags_of(anon);
  uffdio_range all{reinterpret_cast<std::uintptr_t>(anon), kBytes};
  EXPECT_EQ(::ioctl(vmm_uffd, UFFDIO_UNREGISTER, &all), 0);
  ::close(vmm_uffd);
}

}  // namespace numaheap
