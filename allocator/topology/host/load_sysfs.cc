// Topology from a sysfs node directory (the live /sys or a snapshot).
//
// What is read, per node, mirrors what numactl -H shows for the same tree:
//   node set   every entry named "node<digits>" in the node directory (the
//              `online`/`possible`/`has_*` files are ignored: old kernels
//              do not have them, and numactl does not read them either);
//   cpus       `cpumap`: comma-separated 32-bit hex words, most significant
//              first, any number of words. Only when a node has no cpumap
//              file at all is `cpulist` (list syntax) used instead; an empty
//              cpumap means "no CPUs", as numactl shows it;
//   memory     `meminfo`: in a line containing "kB", the digits right before
//              "kB"; the line mentioning MemTotal gives the size, MemFree
//              the free memory. A missing file or line, or a line without a
//              number there, leaves it unknown;
//   distances  `distance`: first line, decimal numbers, the k-th is the
//              distance to the k-th node in id order. Missing file, fewer
//              numbers, or a 0 leave entries "not given"; extra are ignored.
//              An empty (zero-byte) distance file ends libnuma's scan of the
//              table, which we reproduce: that node's row and every later
//              one are not given, and unless some id below it was absent (a
//              gap in the ids, or a node without a distance file) libnuma
//              drops the whole table, so then nothing is given at all.
// Files may end in "\n", stray NUL bytes or blanks; all of that is trimmed.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "numaheap/topology_io.h"
#include "text_util.h"

namespace numaheap {
namespace {

using detail::NumberStatus;

struct SysfsContext {
  std::string source;    // "sysfs:<root>"
  std::string node_dir;  // absolute or relative path of the node directory

  Error fail(std::string_view file, std::string_view what) const {
    return Error{Errc::parse_error, source + ": " + std::string(file) + ": " + std::string(what)};
  }
};

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// True when `path` does not exist (as opposed to existing but unreadable).
bool is_missing(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return false;
  return errno == ENOENT || errno == ENOTDIR;
}

// "node<digits>" → id; returns false for anything else (non-digit suffixes).
enum class NodeName { not_a_node, ok, out_of_range };
NodeName node_id_of(std::string_view name, NodeId& id) {
  if (name.size() <= 4 || name.substr(0, 4) != "node") return NodeName::not_a_node;
  std::uint64_t v = 0;
  switch (detail::parse_decimal(name.substr(4), v)) {
    case NumberStatus::not_a_number: return NodeName::not_a_node;
    case NumberStatus::too_large: return NodeName::out_of_range;
    case NumberStatus::ok: break;
  }
  if (v >= kMaxNodes) return NodeName::out_of_range;
  id = static_cast<NodeId>(v);
  return NodeName::ok;
}

struct NodeEntry {
  NodeId id;
  std::string name;  // as found, e.g. "node12"
};

// Lists node entries of `dir`, by id. Returns an error text (empty on success).
std::string scan_nodes(const std::string& dir, std::vector<NodeEntry>& nodes) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return dir + ": " + std::strerror(errno);
  std::string err;
  while (const dirent* de = ::readdir(d)) {
    NodeId id = 0;
    switch (node_id_of(de->d_name, id)) {
      case NodeName::not_a_node: break;
      case NodeName::ok: nodes.push_back({id, de->d_name}); break;
      case NodeName::out_of_range:
        if (err.empty())
          err = dir + ": entry " + detail::quoted(de->d_name) +
                ": node id out of range 0.." + std::to_string(kMaxNodes - 1);
        break;
    }
  }
  ::closedir(d);
  std::sort(nodes.begin(), nodes.end(),
            [](const NodeEntry& a, const NodeEntry& b) { return a.id < b.id; });
  return err;
}

// Reads an optional file: `missing` is set when it does not exist.
Result<std::string, Error> read_optional(const SysfsContext& ctx, const std::string& path,
                                         bool& missing) {
  missing = false;
  if (is_missing(path)) {
    missing = true;
    return std::string();
  }
  auto r = read_text_file(path);
  if (!r) return Error{Errc::io_error, ctx.source + ": cannot read " + r.error().message};
  return r;
}

// cpumap: "0000ffff,ffffffff\n" → CPUs. Error text empty on success.
std::string parse_cpumap(std::string_view text, std::vector<CpuId>& cpus) {
  std::string_view body = detail::trim(detail::first_line(text));
  if (body.empty()) return {};  // an empty cpumap: no CPUs, as numactl shows it
  std::vector<std::string_view> words;
  for (std::size_t pos = 0;;) {
    std::size_t comma = body.find(',', pos);
    if (comma == std::string_view::npos) {
      words.push_back(body.substr(pos));
      break;
    }
    words.push_back(body.substr(pos, comma - pos));
    pos = comma + 1;
  }
  // The last word holds CPUs 0..31, the one before it 32..63, and so on.
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string_view word = words[words.size() - 1 - i];
    if (word.empty()) return "empty word in bitmap " + detail::quoted(body);
    if (word.size() > 8)
      return "word " + detail::quoted(word) + " is longer than 8 hex digits (32 bits)";
    std::uint32_t bits = 0;
    auto r = std::from_chars(word.data(), word.data() + word.size(), bits, 16);
    if (r.ec != std::errc() || r.ptr != word.data() + word.size())
      return "word " + detail::quoted(word) + " is not hexadecimal";
    for (unsigned b = 0; b < 32; ++b) {
      if (!((bits >> b) & 1u)) continue;
      std::uint64_t cpu = std::uint64_t{i} * 32 + b;
      if (cpu >= kMaxCpus)
        return "cpu " + std::to_string(cpu) + " is above the supported maximum " +
               std::to_string(kMaxCpus - 1);
      cpus.push_back(static_cast<CpuId>(cpu));
    }
  }
  return {};
}

// cpulist: "0-3,8-11\n" → CPUs. Error text empty on success.
std::string parse_cpulist(std::string_view text, std::vector<CpuId>& cpus) {
  std::string_view body = detail::trim(detail::first_line(text));
  if (body.empty()) return {};
  std::size_t pos = 0;
  while (pos <= body.size()) {
    std::size_t comma = body.find(',', pos);
    std::string_view item =
        body.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    std::size_t dash = item.find('-');
    std::string_view lo_s = item.substr(0, dash);
    std::string_view hi_s = dash == std::string_view::npos ? lo_s : item.substr(dash + 1);
    std::uint64_t lo = 0, hi = 0;
    auto a = detail::parse_decimal(lo_s, lo);
    auto b = detail::parse_decimal(hi_s, hi);
    if (a == NumberStatus::not_a_number || b == NumberStatus::not_a_number)
      return "item " + detail::quoted(item) + " is not a cpu number or range";
    if (a == NumberStatus::too_large || b == NumberStatus::too_large || hi >= kMaxCpus ||
        lo >= kMaxCpus)
      return "item " + detail::quoted(item) + " is above the supported maximum cpu " +
             std::to_string(kMaxCpus - 1);
    if (hi < lo) return "range " + detail::quoted(item) + " ends below its start";
    for (std::uint64_t c = lo; c <= hi; ++c) cpus.push_back(static_cast<CpuId>(c));
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return {};
}

// meminfo → MemTotal / MemFree in bytes (kUnknownBytes when absent).
// As libnuma reads it: a line counts when it contains "kB" (any case); the
// number is the run of digits right before it (blanks skipped), and it must
// stand alone (start the line or follow a blank), else the value is
// unknown. The last line mentioning MemTotal (MemFree) decides.
// Error text empty on success; `bad_line` is then the offending line.
std::string parse_meminfo(std::string_view text, std::uint64_t& total, std::uint64_t& free,
                          std::size_t& bad_line) {
  total = kUnknownBytes;
  free = kUnknownBytes;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    ++line_no;
    std::size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    // A C reader stops at a NUL byte; so do we.
    if (std::size_t z = line.find('\0'); z != std::string_view::npos) line = line.substr(0, z);
    std::size_t kb = std::string_view::npos;
    for (std::size_t i = 0; i + 1 < line.size(); ++i)
      if ((line[i] == 'k' || line[i] == 'K') && (line[i + 1] == 'b' || line[i + 1] == 'B')) {
        kb = i;
        break;
      }
    if (kb == std::string_view::npos) continue;
    const bool is_total = line.find("MemTotal") != std::string_view::npos;
    const bool is_free = line.find("MemFree") != std::string_view::npos;
    if (!is_total && !is_free) continue;
    std::size_t e = kb;
    while (e > 0 && detail::is_space(line[e - 1])) --e;
    std::size_t b = e;
    while (b > 0 && detail::is_digit(line[b - 1])) --b;
    std::uint64_t bytes = kUnknownBytes;
    if (b < e && (b == 0 || detail::is_space(line[b - 1]))) {
      std::string_view digits = line.substr(b, e - b);
      std::uint64_t kib = 0;
      if (detail::parse_decimal(digits, kib) != NumberStatus::ok ||
          kib > (kUnknownBytes >> 10) - 1) {
        bad_line = line_no;
        return "number " + detail::quoted(digits) + " kB is too large";
      }
      bytes = kib << 10;
    }
    if (is_total) total = bytes;
    if (is_free) free = bytes;
  }
  return {};
}

// distance: first line, k-th number → k-th node (in id order).
std::string parse_distance(std::string_view text, std::size_t node_count,
                           std::vector<std::uint32_t>& row) {
  row.assign(node_count, 0);
  std::string_view line = detail::first_line(text);
  if (std::size_t z = line.find('\0'); z != std::string_view::npos) line = line.substr(0, z);
  std::size_t k = 0;
  std::size_t pos = 0;
  while (k < node_count) {
    while (pos < line.size() && detail::is_space(line[pos])) ++pos;
    if (pos >= line.size()) break;  // fewer numbers than nodes: the rest is not given
    std::size_t b = pos;
    while (pos < line.size() && !detail::is_space(line[pos])) ++pos;
    std::string_view tok = line.substr(b, pos - b);
    std::uint64_t v = 0;
    const std::string where = "entry " + std::to_string(k + 1) + " ";
    switch (detail::parse_decimal(tok, v)) {
      case NumberStatus::not_a_number: return where + detail::quoted(tok) + " is not a number";
      case NumberStatus::too_large: return where + detail::quoted(tok) + " is out of range 1..255";
      case NumberStatus::ok: break;
    }
    if (v > kMaxDistance)
      return where + detail::quoted(tok) + " is out of range 1..255";
    row[k++] = static_cast<std::uint32_t>(v);
  }
  return {};
}

// Picks the node directory for `root`: root/sys/devices/system/node, then
// root/devices/system/node (root = a /sys), then root itself.
Result<std::string, Error> find_node_dir(const SysfsContext& ctx, const std::string& root) {
  std::string base = root;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  if (base.empty()) return Error{Errc::io_error, ctx.source + ": empty path"};
  std::string prefix = base == "/" ? "" : base;
  for (const char* sub : {"/sys/devices/system/node", "/devices/system/node"}) {
    std::string p = prefix + sub;
    if (is_directory(p)) return p;
  }
  if (!is_directory(base)) {
    int err = errno;
    struct stat st;
    if (::stat(base.c_str(), &st) == 0)
      return Error{Errc::io_error, ctx.source + ": " + base + ": not a directory"};
    return Error{Errc::io_error, ctx.source + ": " + base + ": " + std::strerror(err)};
  }
  return base;
}

}  // namespace

Result<Topology, Error> load_topology_sysfs(std::string_view root) {
  SysfsContext ctx;
  ctx.source = "sysfs:" + std::string(root);
  auto dir = find_node_dir(ctx, std::string(root));
  if (!dir) return dir.error();
  ctx.node_dir = *dir;

  std::vector<NodeEntry> nodes;
  if (std::string err = scan_nodes(ctx.node_dir, nodes); !err.empty())
    return Error{Errc::parse_error, ctx.source + ": " + err};
  if (nodes.empty())
    return Error{Errc::parse_error,
                 ctx.source + ": " + ctx.node_dir +
                     ": no node<N> directories (expected a sysfs node directory or a root "
                     "holding sys/devices/system/node)"};
  for (std::size_t i = 1; i < nodes.size(); ++i)
    if (nodes[i].id == nodes[i - 1].id)
      return Error{Errc::parse_error, ctx.source + ": " + ctx.node_dir + ": entries " +
                                          detail::quoted(nodes[i - 1].name) + " and " +
                                          detail::quoted(nodes[i].name) + " are both node " +
                                          std::to_string(nodes[i].id)};
  std::vector<NodeId> ids;
  for (const auto& n : nodes) ids.push_back(n.id);

  TopologyBuilder builder(ctx.source);
  std::vector<std::vector<std::uint32_t>> rows(ids.size());
  std::vector<bool> row_given(ids.size(), false);
  bool distance_scan_open = true;  // libnuma still reading distance files
  bool absent_before = false;      // it met a missing id or file (ENOENT)
  bool drop_all_distances = false;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const NodeId id = ids[i];
    const std::string node_path = ctx.node_dir + "/" + nodes[i].name;

    // CPUs: cpumap, as numactl; cpulist only when there is no cpumap at all.
    std::vector<CpuId> cpus;
    bool missing = false;
    const std::string cpumap_path = node_path + "/cpumap";
    auto cpumap = read_optional(ctx, cpumap_path, missing);
    if (!cpumap) return cpumap.error();
    if (!missing) {
      if (std::string err = parse_cpumap(*cpumap, cpus); !err.empty())
        return ctx.fail(cpumap_path, err);
    } else {
      const std::string cpulist_path = node_path + "/cpulist";
      auto cpulist = read_optional(ctx, cpulist_path, missing);
      if (!cpulist) return cpulist.error();
      if (!missing)
        if (std::string err = parse_cpulist(*cpulist, cpus); !err.empty())
          return ctx.fail(cpulist_path, err);
    }
    std::sort(cpus.begin(), cpus.end());

    // Memory.
    std::uint64_t total = kUnknownBytes, free = kUnknownBytes;
    const std::string meminfo_path = node_path + "/meminfo";
    auto meminfo = read_optional(ctx, meminfo_path, missing);
    if (!meminfo) return meminfo.error();
    if (!missing) {
      std::size_t line = 0;
      if (std::string err = parse_meminfo(*meminfo, total, free, line); !err.empty())
        return ctx.fail(meminfo_path + ":" + std::to_string(line), err);
    }
    if (total != kUnknownBytes && free != kUnknownBytes && free > total)
      return ctx.fail(meminfo_path, "MemFree (" + std::to_string(free >> 10) +
                                        " kB) exceeds MemTotal (" + std::to_string(total >> 10) +
                                        " kB)");
    builder.add_node(id, std::move(cpus), total, free);

    // Distances (applied once every node is known).
    if (!distance_scan_open) continue;
    if (ids[i] != i) absent_before = true;  // a gap among the ids below this one
    const std::string distance_path = node_path + "/distance";
    auto distance = read_optional(ctx, distance_path, missing);
    if (!distance) return distance.error();
    if (missing) {
      absent_before = true;
    } else if (distance->empty()) {
      distance_scan_open = false;
      drop_all_distances = !absent_before;
    } else {
      if (std::string err = parse_distance(*distance, ids.size(), rows[i]); !err.empty())
        return ctx.fail(distance_path + ":1", err);
      row_given[i] = true;
      // Self distance must be the row minimum (entries not given count as
      // 10 local / 20 remote, as Topology::distance answers them).
      auto effective = [&](std::size_t k) -> std::uint32_t {
        std::uint32_t d = rows[i][k];
        return d != 0 ? d : (k == i ? kLocalDistance : kRemoteDistance);
      };
      for (std::size_t k = 0; k < ids.size(); ++k)
        if (effective(k) < effective(i))
          return ctx.fail(distance_path + ":1",
                          "node " + std::to_string(id) + ": distance to itself (" +
                              std::to_string(effective(i)) + ") exceeds its distance to node " +
                              std::to_string(ids[k]) + " (" + std::to_string(effective(k)) +
                              ")");
    }
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (!row_given[i] || drop_all_distances) continue;
    for (std::size_t k = 0; k < ids.size(); ++k)
      if (rows[i][k] != 0) builder.set_distance(ids[i], ids[k], rows[i][k]);
  }
  return builder.build();
}

}  // namespace numaheap
