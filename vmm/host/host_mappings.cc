// Guest RAM mappings as the kernel lists them (host_mappings.h).
#include "vmm/host/host_mappings.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace numaheap::detail {

namespace {

// One line of /proc/self/maps: "start-end perms offset major:minor inode path".
struct MapsLine {
  std::uint64_t start = 0, end = 0;
  char perms[4] = {};
  // The device of the mapped file (hex in the line); 0 for anonymous memory
  // and for filesystems without a block device (tmpfs/shmem, hugetlbfs...).
  // ~0: the field could not be read.
  std::uint64_t dev_major = ~std::uint64_t{0};
  std::uint64_t dev_minor = 0;
  std::uint64_t inode = 0;     // 0: no file (anonymous memory), or unread
  const char* path = nullptr;  // the rest of the line (may be ""), or null
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
  // The offset, then "major:minor" (smaps' field lines never get here:
  // they do not start with "start-end ").
  p += 4;
  if (*p == ' ') {
    std::strtoull(p + 1, &p, 16);
    char* q = nullptr;
    const std::uint64_t major = std::strtoull(p, &q, 16);
    if (q != p && *q == ':') {
      out.dev_major = major;
      out.dev_minor = std::strtoull(q + 1, &p, 16);
      if (*p == ' ') {
        out.inode = std::strtoull(p + 1, &q, 10);
        if (q != p + 1) {
          while (*q == ' ') ++q;
          out.path = q;
        } else {
          out.inode = 0;
        }
      }
    }
  }
  return out.start < out.end;
}

// Calls line(text) for each line of a /proc file (NUL-terminated, without
// its newline) until it returns false or the file ends; false if the file
// could not be opened.
template <class Line>
bool for_each_line(const char* path, Line line) noexcept {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[16384];  // a line is at most PATH_MAX and ~100 bytes more
  std::size_t have = 0;
  bool eof = false;
  for (;;) {
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
    if (!line(buf)) break;
    const std::size_t used = static_cast<std::size_t>(nl - buf) + 1;
    std::memmove(buf, buf + used, have - used);
    have -= used;
  }
  ::close(fd);
  return true;
}

// What kind of file a file-backed mapping (no block device: major 0) is.
enum class FileKind : std::uint8_t { ram_fs, other_fs, unknown };

FileKind kind_of(std::uint32_t fs_type) noexcept {
  // memfd_create and MAP_SHARED|MAP_ANONYMOUS files are shmem, which reads
  // as tmpfs; MFD_HUGETLB memfds and hugetlbfs files as hugetlbfs.
  return fs_type == TMPFS_MAGIC || fs_type == HUGETLBFS_MAGIC ? FileKind::ram_fs : FileKind::other_fs;
}

// Asks the kernel which filesystem holds the file a mapping maps, two ways:
//  - /proc/self/map_files/<start>-<end>, the mapping's own file, opened
//    O_PATH (no driver open): exact, but the kernel allows it only with
//    CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (EPERM otherwise);
//  - else the path /proc/self/maps prints, trusted only if that path still
//    names the same file (device and inode as the line says): a file that
//    was deleted or renamed since it was mapped cannot be asked about.
// Only regular files are judged: a device (a private /dev/zero mapping is
// anonymous memory) is unknown here.
FileKind file_kind(const MapsLine& m) noexcept {
  char name[64];
  std::snprintf(name, sizeof name, "/proc/self/map_files/%llx-%llx", static_cast<unsigned long long>(m.start),
                static_cast<unsigned long long>(m.end));
  if (const int fd = ::open(name, O_PATH | O_CLOEXEC); fd >= 0) {
    struct stat st {};
    struct statfs fs {};
    const bool ok = ::fstat(fd, &st) == 0 && ::fstatfs(fd, &fs) == 0;
    ::close(fd);
    if (!ok || !S_ISREG(st.st_mode)) return FileKind::unknown;
    return kind_of(static_cast<std::uint32_t>(fs.f_type));
  }
  if (!m.path || m.path[0] != '/') return FileKind::unknown;
  const std::size_t len = std::strlen(m.path);
  constexpr char kDeleted[] = " (deleted)";
  if (len >= sizeof kDeleted - 1 && std::strcmp(m.path + len - (sizeof kDeleted - 1), kDeleted) == 0)
    return FileKind::unknown;
  struct stat st {};
  if (::stat(m.path, &st) != 0 || !S_ISREG(st.st_mode) || major(st.st_dev) != m.dev_major ||
      minor(st.st_dev) != m.dev_minor || st.st_ino != m.inode)
    return FileKind::unknown;  // another file by that name now (or none)
  struct statfs fs {};
  if (::statfs(m.path, &fs) != 0) return FileKind::unknown;
  return kind_of(static_cast<std::uint32_t>(fs.f_type));
}

}  // namespace

MappingProblem check_guest_mapping(const void* addr, std::uint64_t bytes, bool need_shared) noexcept {
  const auto lo = reinterpret_cast<std::uintptr_t>(addr);
  const std::uint64_t hi = lo + bytes;
  std::uint64_t covered = lo;  // [lo, covered) seen mapped and fine
  MappingProblem found = MappingProblem::none;
  const bool read = for_each_line("/proc/self/maps", [&](const char* text) {
    MapsLine m;
    const bool parsed = parse(text, m);
    if (parsed && m.start >= hi) return false;  // lines are sorted: past the range
    if (parsed && m.end > covered) {
      if (m.start > covered) {
        found = MappingProblem::unmapped;
        return false;
      }
      if (m.perms[0] != 'r' || m.perms[1] != 'w') {
        found = MappingProblem::not_read_write;
        return false;
      }
      if (need_shared && m.perms[3] != 's') {
        found = MappingProblem::not_shared;
        return false;
      }
      // Anonymous memory, memfd/shmem and hugetlbfs sit on no block
      // device; a file of a disk filesystem does. None of the backings is
      // such a file, and the sampler's userfaultfd modes (minor faults,
      // write-protect) do not work on one. Filesystems without a block
      // device (btrfs, overlayfs, NFS, ramfs) read as major 0 too, like
      // tmpfs: for a file there the kernel is asked which filesystem it
      // is on (file_kind); one it cannot be asked about is left to the
      // sampler, which fails when it registers.
      if (m.dev_major != 0 && m.dev_major != ~std::uint64_t{0}) {
        found = MappingProblem::disk_file;
        return false;
      }
      if (m.dev_major == 0 && m.inode != 0 && file_kind(m) == FileKind::other_fs) {
        found = MappingProblem::other_file;
        return false;
      }
      covered = m.end;
      return covered < hi;
    }
    return true;
  });
  if (!read) return MappingProblem::unknown;  // no /proc (a jail without it): nothing to check against
  if (found == MappingProblem::none && covered < hi) found = MappingProblem::unmapped;
  return found;
}

bool guest_mapping_locked_parts(const void* addr, std::uint64_t bytes, std::vector<ByteRange>& parts) {
  parts.clear();
  const auto lo = reinterpret_cast<std::uintptr_t>(addr);
  const std::uint64_t hi = lo + bytes;
  MapsLine cur;          // the mapping of the last header line
  bool inside = false;   // it overlaps the range
  bool seen = false;     // a VmFlags line of an overlapping mapping was read
  const bool read = for_each_line("/proc/self/smaps", [&](const char* text) {
    if (MapsLine m; parse(text, m)) {  // a mapping's header line; its fields follow
      if (m.start >= hi) return false;  // sorted: past the range
      cur = m;
      inside = m.end > lo;
      return true;
    }
    if (!inside || std::strncmp(text, "VmFlags:", 8) != 0) return true;
    seen = true;
    for (const char* p = text + 8; *p;) {  // two-letter flags separated by spaces
      while (*p == ' ') ++p;
      if (p[0] == 'l' && p[1] == 'o' && (p[2] == ' ' || p[2] == '\0')) {
        const ByteRange part{std::max<std::uint64_t>(cur.start, lo) - lo, std::min<std::uint64_t>(cur.end, hi) - lo};
        if (!parts.empty() && parts.back().end == part.first) parts.back().end = part.end;
        else parts.push_back(part);
        break;
      }
      while (*p && *p != ' ') ++p;
    }
    return true;
  });
  if (!read || !seen) {
    parts.clear();
    return false;
  }
  return true;
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
    case MappingProblem::disk_file:
      return "a file on a block-device filesystem: guest RAM is anonymous memory, memfd/shmem (memfd_create, "
             "/dev/shm, MAP_SHARED|MAP_ANONYMOUS) or hugetlbfs, which the sampler's userfaultfd modes need";
    case MappingProblem::other_file:
      return "a file on a filesystem that is neither tmpfs/shmem nor hugetlbfs (btrfs, overlayfs, NFS, ramfs...): "
             "guest RAM is anonymous memory, memfd/shmem (memfd_create, /dev/shm, MAP_SHARED|MAP_ANONYMOUS) or "
             "hugetlbfs, which the sampler's userfaultfd modes need";
  }
  return "unknown";
}

}  // namespace numaheap::detail
