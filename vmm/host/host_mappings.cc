// Guest RAM mappings as the kernel lists them (host_mappings.h).
#include "vmm/host/host_mappings.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace numaheap::detail {

namespace {

// One line of /proc/self/maps: "start-end perms ...".
struct MapsLine {
  std::uint64_t start = 0, end = 0;
  char perms[4] = {};
};

bool parse(const char* line, MapsLine& out) noexcept {
  char* p = nullptr;
  out.start = std::strtoull(line, &p, 16);
  if (*p != '-') return false;
  out.end = std::strtoull(p + 1, &p, 16);
  if (*p != ' ') return false;
  ++p;
  for (int i = 0; i < 4; ++i) {
    if (!p[i] || p[i] == ' ') return false;
    out.perms[i] = p[i];
  }
  return out.start < out.end;
}

}  // namespace

MappingProblem check_guest_mapping(const void* addr, std::uint64_t bytes, bool need_shared) noexcept {
  const int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return MappingProblem::unknown;  // no /proc (a jail without it): nothing to check against
  const auto lo = reinterpret_cast<std::uintptr_t>(addr);
  const std::uint64_t hi = lo + bytes;
  std::uint64_t covered = lo;  // [lo, covered) seen mapped and fine
  MappingProblem found = MappingProblem::none;
  char buf[16384];  // a line is at most PATH_MAX and ~100 bytes more
  std::size_t have = 0;
  bool eof = false, done = false;
  while (!done) {
    if (!eof && have < sizeof buf - 1) {
      const ssize_t n = ::read(fd, buf + have, sizeof buf - 1 - have);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) eof = true;
      else have += static_cast<std::size_t>(n);
    }
    buf[have] = '\0';
    char* nl = static_cast<char*>(std::memchr(buf, '\n', have));
    if (!nl) {
      if (eof || have == sizeof buf - 1) break;  // the end (or a line no /proc writes)
      continue;
    }
    *nl = '\0';
    MapsLine m;
    const bool parsed = parse(buf, m);
    if (parsed && m.start >= hi) {
      done = true;  // lines are sorted: past the range
    } else if (parsed && m.end > covered) {
      if (m.start > covered) {
        found = MappingProblem::unmapped;
        done = true;
      } else if (m.perms[0] != 'r' || m.perms[1] != 'w') {
        found = MappingProblem::not_read_write;
        done = true;
      } else if (need_shared && m.perms[3] != 's') {
        found = MappingProblem::not_shared;
        done = true;
      } else {
        covered = m.end;
        done = covered >= hi;
      }
    }
    const std::size_t used = static_cast<std::size_t>(nl - buf) + 1;
    std::memmove(buf, buf + used, have - used);
    have -= used;
  }
  ::close(fd);
  if (found == MappingProblem::none && covered < hi) found = MappingProblem::unmapped;
  return found;
}

const char* mapping_problem_text(MappingProblem p) noexcept {
  switch (p) {
    case MappingProblem::none: return "fine";
    case MappingProblem::unknown:
      return "/proc/self/maps cannot be read, so the mapping cannot be checked (set trust_mappings if it is "
             "read-write and, for memfd, MAP_SHARED)";
    case MappingProblem::unmapped: return "not all of it is mapped";
    case MappingProblem::not_read_write: return "not mapped for read and write";
    case MappingProblem::not_shared:
      return "not a shared mapping (MAP_PRIVATE: dropping its page-table entries would lose the guest's writes)";
  }
  return "unknown";
}

}  // namespace numaheap::detail
