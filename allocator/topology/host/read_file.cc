// Whole-file reads for the loaders.
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "numaheap/topology_io.h"

namespace numaheap {

Result<std::string, Error> read_text_file(std::string_view path) {
  std::string p(path);
  std::FILE* f = std::fopen(p.c_str(), "rb");
  if (!f) return Error{Errc::io_error, p + ": " + std::strerror(errno)};
  std::string out;
  char buf[8192];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    out.append(buf, n);
    if (out.size() > (64u << 20)) {
      std::fclose(f);
      return Error{Errc::io_error, p + ": file larger than 64 MiB"};
    }
  }
  bool failed = std::ferror(f) != 0;
  int err = errno;
  std::fclose(f);
  if (failed) return Error{Errc::io_error, p + ": " + std::strerror(err)};
  return out;
}

}  // namespace numaheap
