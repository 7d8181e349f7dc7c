// numaheap-vm-move-cost: what one move_pages(MPOL_MF_MOVE_ALL) of a memfd
// page costs in the guest, and why (docs/vm-tests.md, "Results, session 9").
//
//   numaheap-vm-move-cost PAGES SPINNERS VIEW BATCH THROUGH_CHILD
//
// A memfd of PAGES pages is mapped shared, bound to node 0 and written;
// VIEW 1 maps it a second time read-only and populates that too. SPINNERS
// threads of this process spin on CPUs 1.. (as running vCPUs do), the
// mover runs on CPU 0, and every page moves to node 1 in move_pages calls
// of BATCH pages. THROUGH_CHILD 1 moves them through a forked child that
// maps the pages while this process's mapping is zapped (GuestRam's move
// helper). Prints one line "MV ... us/page". Needs two memory nodes and
// CAP_SYS_NICE (run as root in the guest).
#include <numaif.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

namespace {

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)sched_setaffinity(0, sizeof set, &set);
}

long arg(char** argv, int i) {
  char* end = nullptr;
  const long v = std::strtol(argv[i], &end, 10);
  if (!end || *end || v < 0) {
    std::fprintf(stderr, "numaheap-vm-move-cost: argument %d is not a count: %s\n", i, argv[i]);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: numaheap-vm-move-cost PAGES SPINNERS VIEW BATCH THROUGH_CHILD\n");
    return 2;
  }
  const long pages = arg(argv, 1), spinners = arg(argv, 2), view = arg(argv, 3), batch = arg(argv, 4),
             through_child = arg(argv, 5);
  if (pages == 0 || batch == 0) return 2;
  const std::size_t bytes = static_cast<std::size_t>(pages) * 4096;
  const int fd = memfd_create("move-cost", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) return 1;
  auto* ram = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  char* second = view ? static_cast<char*>(mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0)) : nullptr;
  if (ram == MAP_FAILED || second == MAP_FAILED) return 1;
  unsigned long node0 = 1;
  if (mbind(ram, bytes, MPOL_BIND, &node0, 8, 0) != 0) std::perror("mbind");
  std::memset(ram, 1, bytes);
  if (second) (void)madvise(second, bytes, MADV_POPULATE_READ);
  std::atomic<bool> stop{false};
  std::vector<std::thread> spin;
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  for (long s = 0; s < spinners; ++s)
    spin.emplace_back([&, s] {
      pin(static_cast<int>((1 + s) % cpus));
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  pin(0);
  int sv[2] = {-1, -1};
  pid_t child = 0;
  if (through_child) {
    if (pipe(sv) != 0) return 1;
    child = fork();
    if (child == 0) {  // maps the pages when asked, then waits to be killed
      (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
      char c;
      if (read(sv[0], &c, 1) == 1) (void)madvise(ram, bytes, MADV_POPULATE_READ);
      for (;;) pause();
    }
  }
  std::vector<void*> addrs(static_cast<std::size_t>(pages));
  std::vector<int> nodes(addrs.size(), 1), status(addrs.size(), -1);
  for (std::size_t i = 0; i < addrs.size(); ++i) addrs[i] = ram + i * 4096;
  const auto t0 = std::chrono::steady_clock::now();
  if (child > 0) {
    (void)madvise(ram, bytes, MADV_DONTNEED);
    if (second) (void)madvise(second, bytes, MADV_DONTNEED);
    const char go = 1;
    if (write(sv[1], &go, 1) != 1) return 1;
    // The child maps the pages: wait until move_pages sees them there.
    for (;;) {
      int st = -1;
      if (move_pages(child, 1, &addrs.back(), nullptr, &st, 0) == 0 && st >= 0) break;
      sched_yield();
    }
  }
  long moved = 0;
  for (std::size_t at = 0; at < addrs.size(); at += static_cast<std::size_t>(batch)) {
    const std::size_t n = std::min(static_cast<std::size_t>(batch), addrs.size() - at);
    if (move_pages(child, n, &addrs[at], &nodes[at], &status[at], MPOL_MF_MOVE_ALL) < 0) {
      std::perror("move_pages");
      break;
    }
    for (std::size_t i = at; i < at + n; ++i) moved += status[i] == 1;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stop = true;
  for (auto& t : spin) t.join();
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
  }
  std::printf("MV child=%ld pages=%ld spinners=%ld view=%ld batch=%ld moved=%ld %.3f s %.1f us/page\n", through_child,
              pages, spinners, view, batch, moved, s, 1e6 * s / static_cast<double>(pages));
  return moved == pages ? 0 : 1;
}
