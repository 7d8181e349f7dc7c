// The kernel's per-node MemFree / MemTotal (sysfs), for the watermark.
#include "migrate/host/node_meminfo.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "numaheap/frame.h"

namespace numaheap::host {

namespace {

// The kB figure after `key` ("Node 0 MemFree:     123 kB"), or false.
bool field_kb(const char* text, const char* key, std::uint64_t& kb) {
  const char* at = std::strstr(text, key);
  if (!at) return false;
  at += std::strlen(key);
  while (*at == ' ' || *at == '\t') ++at;
  if (*at < '0' || *at > '9') return false;
  std::uint64_t v = 0;
  for (; *at >= '0' && *at <= '9'; ++at) v = v * 10 + static_cast<std::uint64_t>(*at - '0');
  kb = v;
  return true;
}

}  // namespace

bool node_meminfo_frames(NodeId node, std::uint64_t& free, std::uint64_t& total) noexcept {
  if (node >= kMaxNodes) return false;
  char path[64];
  std::snprintf(path, sizeof path, "/sys/devices/system/node/node%u/meminfo", static_cast<unsigned>(node));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char text[4096];
  std::size_t len = 0;
  for (;;) {
    const ssize_t n = ::read(fd, text + len, sizeof text - 1 - len);
    if (n <= 0) break;
    len += static_cast<std::size_t>(n);
    if (len == sizeof text - 1) break;
  }
  ::close(fd);
  text[len] = '\0';
  std::uint64_t free_kb = 0, total_kb = 0;
  if (!field_kb(text, "MemFree:", free_kb) || !field_kb(text, "MemTotal:", total_kb)) return false;
  free = free_kb * 1024 / kFrameSize;
  total = total_kb * 1024 / kFrameSize;
  return true;
}

}  // namespace numaheap::host
