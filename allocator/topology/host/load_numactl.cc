// Topology from the text `numactl -H` prints (what admins paste into tickets).
//
// Accepted: exactly what render_numactl produces (numactl 2.0.16's layout),
// with CRLF line ends, trailing blanks, any run of blanks between fields, and
// blank lines before or after the text. Checked for consistency: the
// `available:` count and list match the node sections, which come in id
// order, each as cpus / size / free lines; the distance header lists the
// same ids in the same order, and every row has one value in 1..255 per node
// with the self distance its minimum. Errors read "<source>:<line>: <what>".
#include <algorithm>
#include <string>
#include <vector>

#include "numaheap/topology_io.h"
#include "text_util.h"

namespace numaheap {
namespace {

using detail::NumberStatus;
using detail::quoted;

struct Line {
  std::string_view text;  // without line end and trailing blanks
  std::size_t no = 0;     // 1-based
};

constexpr std::string_view kNoDistance = "No distance information available.";
constexpr std::string_view kDistanceTitle = "node distances:";

std::vector<Line> split_lines(std::string_view text) {
  std::vector<Line> lines;
  std::size_t pos = 0, no = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view l =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    while (!l.empty() && (l.back() == '\r' || l.back() == ' ' || l.back() == '\t'))
      l.remove_suffix(1);
    lines.push_back({l, ++no});
  }
  return lines;
}

// Long generated text (id lists) cut for messages.
std::string capped(std::string s, std::size_t max_chars = 64) {
  if (s.size() > max_chars) {
    s.resize(max_chars);
    s += "...";
  }
  return s;
}

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

class NumactlParser {
 public:
  NumactlParser(std::string_view text, std::string_view error_prefix, std::string topo_source)
      : lines_(split_lines(text)), prefix_(error_prefix), topo_source_(std::move(topo_source)) {}

  Result<Topology, Error> run();

 private:
  struct Node {
    NodeId id = 0;
    std::vector<CpuId> cpus;
    std::uint64_t size = kUnknownBytes;
    std::uint64_t free = kUnknownBytes;
  };

  Error fail(std::size_t line_no, const std::string& what) const {
    return Error{Errc::parse_error,
                 std::string(prefix_) + ":" + std::to_string(line_no) + ": " + what};
  }
  bool at_end() const { return cur_ >= end_; }
  const Line& line() const { return lines_[cur_]; }
  std::size_t end_line_no() const { return end_ > 0 ? lines_[end_ - 1].no + 1 : 1; }
  std::string got() const { return at_end() ? "end of input" : quoted(trim_blanks(line().text)); }

  // A node id token: decimal, 0..1023.
  Result<NodeId, Error> node_id(std::string_view tok, std::size_t no) const;
  Result<void, Error> parse_available();
  Result<void, Error> parse_node(NodeId expected);
  Result<void, Error> parse_memory(const Node& node, std::string_view field, std::uint64_t& out);
  Result<void, Error> parse_distances();

  std::vector<Line> lines_;
  std::string_view prefix_;
  std::string topo_source_;
  std::size_t cur_ = 0, end_ = 0;

  std::uint64_t announced_ = 0;
  NodeMask listed_;
  std::string list_text_;
  std::vector<Node> nodes_;
  std::vector<NodeId> cpu_owner_;         // cpu → node id, kNoNode when free
  std::vector<std::size_t> cpu_line_;     // cpu → line that listed it
  std::vector<std::vector<std::uint32_t>> dist_;  // empty: not given
};

Result<NodeId, Error> NumactlParser::node_id(std::string_view tok, std::size_t no) const {
  std::uint64_t v = 0;
  switch (detail::parse_decimal(tok, v)) {
    case NumberStatus::not_a_number: return fail(no, "node id " + quoted(tok) + " is not a number");
    case NumberStatus::too_large: break;
    case NumberStatus::ok:
      if (v < kMaxNodes) return static_cast<NodeId>(v);
      break;
  }
  return fail(no, "node id " + quoted(tok) + " out of range 0.." + std::to_string(kMaxNodes - 1));
}

Result<void, Error> NumactlParser::parse_available() {
  const std::string expect = "expected 'available: <n> nodes (<list>)', got ";
  if (at_end()) return fail(end_line_no(), "empty input: " + expect + "end of input");
  auto tok = detail::split_blanks(line().text);
  const std::size_t no = line().no;
  if (tok.size() != 4 || tok[0] != "available:" || (tok[2] != "nodes" && tok[2] != "node") ||
      tok[3].size() < 2 || tok[3].front() != '(' || tok[3].back() != ')')
    return fail(no, expect + got());
  switch (detail::parse_decimal(tok[1], announced_)) {
    case NumberStatus::not_a_number:
      return fail(no, "available: node count " + quoted(tok[1]) + " is not a number");
    case NumberStatus::too_large:
      return fail(no, "available: node count " + quoted(tok[1]) + " is too large");
    case NumberStatus::ok: break;
  }
  std::string_view list = tok[3].substr(1, tok[3].size() - 2);
  auto mask = NodeMask::parse(list);
  if (!mask) return fail(no, "available: " + mask.error().message);
  listed_ = *mask;
  list_text_ = capped(std::string(list));
  if (listed_.empty()) return fail(no, "available: no nodes listed");
  if (listed_.count() != announced_)
    return fail(no, "available: says " + std::to_string(announced_) + " nodes but the list (" +
                        list_text_ + ") has " + std::to_string(listed_.count()));
  ++cur_;
  return {};
}

Result<void, Error> NumactlParser::parse_memory(const Node& node, std::string_view field,
                                                std::uint64_t& out) {
  const std::string what = "node " + std::to_string(node.id) + " " + std::string(field);
  if (at_end()) return fail(end_line_no(), "expected '" + what + ": ...', got end of input");
  auto tok = detail::split_blanks(line().text);
  const std::size_t no = line().no;
  if (tok.size() < 3 || tok[0] != "node" || tok[2] != std::string(field) + ":")
    return fail(no, "expected '" + what + ": ...', got " + got());
  auto id = node_id(tok[1], no);
  if (!id) return id.error();
  if (*id != node.id)
    return fail(no, "expected '" + what + ": ...', got a line for node " + std::to_string(*id));
  std::string_view value = line().text.substr(line().text.find(':') + 1);
  value = trim_blanks(value);
  const std::string expect = what + ": expected '<n> MB' or '<not available>', got ";
  if (value == "<not available>") {
    out = kUnknownBytes;
  } else {
    if (tok.size() != 5 || tok[4] != "MB") return fail(no, expect + quoted(value));
    std::uint64_t mb = 0;
    switch (detail::parse_decimal(tok[3], mb)) {
      case NumberStatus::not_a_number: return fail(no, expect + quoted(value));
      case NumberStatus::too_large:
        return fail(no, what + ": " + quoted(tok[3]) + " MB is too large");
      case NumberStatus::ok: break;
    }
    if (mb > (kUnknownBytes >> 20))
      return fail(no, what + ": " + quoted(tok[3]) + " MB is too large");
    out = mb << 20;
  }
  ++cur_;
  return {};
}

Result<void, Error> NumactlParser::parse_node(NodeId expected) {
  const std::string want = "expected 'node " + std::to_string(expected) + " cpus: ...'";
  if (at_end())
    return fail(end_line_no(), want + " (available: announced " + std::to_string(announced_) +
                                   " nodes), got end of input");
  auto tok = detail::split_blanks(line().text);
  const std::size_t no = line().no;
  if (tok.size() < 3 || tok[0] != "node" || tok[2] != "cpus:") {
    if (tok.size() >= 3 && tok[0] == "node" && (tok[2] == "size:" || tok[2] == "free:"))
      return fail(no, want + " before its size and free lines, got " + got());
    return fail(no, want + " (available: announced " + std::to_string(announced_) +
                        " nodes), got " + got());
  }
  auto id = node_id(tok[1], no);
  if (!id) return id.error();
  if (*id != expected) {
    bool seen =
        std::any_of(nodes_.begin(), nodes_.end(), [&](const Node& n) { return n.id == *id; });
    if (seen) return fail(no, "node " + std::to_string(*id) + " listed twice");
    if (!listed_.test(*id))
      return fail(no, "node " + std::to_string(*id) + " is not in the available list (" +
                          list_text_ + ")");
    return fail(no, "node " + std::to_string(*id) + " out of order: expected node " +
                        std::to_string(expected) + " next (ids ascend)");
  }
  Node node;
  node.id = *id;
  for (std::size_t i = 3; i < tok.size(); ++i) {
    std::uint64_t v = 0;
    auto st = detail::parse_decimal(tok[i], v);
    if (st == NumberStatus::not_a_number)
      return fail(no, "node " + std::to_string(node.id) + " cpus: " + quoted(tok[i]) +
                          " is not a cpu number");
    if (st == NumberStatus::too_large || v >= kMaxCpus)
      return fail(no, "node " + std::to_string(node.id) + " cpus: cpu " + quoted(tok[i]) +
                          " out of range 0.." + std::to_string(kMaxCpus - 1));
    const auto cpu = static_cast<CpuId>(v);
    if (cpu >= cpu_owner_.size()) {
      cpu_owner_.resize(cpu + 1, kNoNode);
      cpu_line_.resize(cpu + 1, 0);
    }
    if (cpu_owner_[cpu] != kNoNode) {
      if (cpu_owner_[cpu] == node.id)
        return fail(no, "node " + std::to_string(node.id) + " cpus: cpu " + std::to_string(cpu) +
                            " listed twice");
      return fail(no, "node " + std::to_string(node.id) + " cpus: cpu " + std::to_string(cpu) +
                          " already belongs to node " + std::to_string(cpu_owner_[cpu]) +
                          " (line " + std::to_string(cpu_line_[cpu]) + ")");
    }
    cpu_owner_[cpu] = node.id;
    cpu_line_[cpu] = no;
    node.cpus.push_back(cpu);
  }
  ++cur_;
  if (auto r = parse_memory(node, "size", node.size); !r) return r.error();
  if (auto r = parse_memory(node, "free", node.free); !r) return r.error();
  if (node.size != kUnknownBytes && node.free != kUnknownBytes && node.free > node.size)
    return fail(lines_[cur_ - 1].no, "node " + std::to_string(node.id) + " free: " +
                                         std::to_string(node.free >> 20) +
                                         " MB exceeds its size " +
                                         std::to_string(node.size >> 20) + " MB");
  nodes_.push_back(std::move(node));
  return {};
}

Result<void, Error> NumactlParser::parse_distances() {
  const std::size_t n = nodes_.size();
  if (at_end())
    return fail(end_line_no(), "expected 'node distances:' or '" + std::string(kNoDistance) +
                                   "', got end of input");
  std::string_view first = trim_blanks(line().text);
  if (first == kNoDistance) {
    ++cur_;
    return {};
  }
  if (first != kDistanceTitle) {
    auto tok = detail::split_blanks(line().text);
    if (tok.size() >= 3 && tok[0] == "node" && tok[2] == "cpus:") {
      auto id = node_id(tok[1], line().no);
      if (!id) return id.error();
      bool seen =
          std::any_of(nodes_.begin(), nodes_.end(), [&](const Node& nd) { return nd.id == *id; });
      if (seen) return fail(line().no, "node " + std::to_string(*id) + " listed twice");
      return fail(line().no, "node " + std::to_string(*id) + " is not in the available list (" +
                                 list_text_ + "), which announced " +
                                 std::to_string(announced_) + " nodes");
    }
    if (tok.size() >= 3 && tok[0] == "node" && tok[2] == "size:")
      return fail(line().no, "node " + quoted(tok[1]) +
                                 " size: line repeated (expected 'node distances:')");
    return fail(line().no, "expected 'node distances:' or '" + std::string(kNoDistance) +
                               "', got " + got());
  }
  ++cur_;

  std::string ids_text;
  for (const auto& nd : nodes_) ids_text += (ids_text.empty() ? "" : " ") + std::to_string(nd.id);
  ids_text = capped(std::move(ids_text));
  if (at_end())
    return fail(end_line_no(), "distance header: expected 'node " + ids_text +
                                   "', got end of input");
  {
    auto tok = detail::split_blanks(line().text);
    bool ok = tok.size() == n + 1 && tok[0] == "node";
    for (std::size_t k = 0; ok && k < n; ++k) {
      std::uint64_t v = 0;
      ok = detail::parse_decimal(tok[k + 1], v) == NumberStatus::ok && v == nodes_[k].id;
    }
    if (!ok)
      return fail(line().no, "distance header: node ids must be 'node " + ids_text +
                                 "' (the nodes above, in order), got " + got());
    ++cur_;
  }

  dist_.assign(n, {});
  for (std::size_t i = 0; i < n; ++i) {
    const std::string id = std::to_string(nodes_[i].id);
    if (at_end())
      return fail(end_line_no(), "distance row for node " + id + " missing, got end of input");
    auto tok = detail::split_blanks(line().text);
    const std::size_t no = line().no;
    if (tok.empty() || tok[0] != id + ":")
      return fail(no, "distance row: expected '" + id + ": <" + std::to_string(n) +
                          " distances>', got " + got());
    if (tok.size() != n + 1)
      return fail(no, "distance row for node " + id + " has " + std::to_string(tok.size() - 1) +
                          " values, expected " + std::to_string(n) + " (one per node)");
    auto& row = dist_[i];
    row.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
      std::uint64_t v = 0;
      auto st = detail::parse_decimal(tok[k + 1], v);
      if (st == NumberStatus::not_a_number)
        return fail(no, "distance from node " + id + " to node " + std::to_string(nodes_[k].id) +
                            ": " + quoted(tok[k + 1]) + " is not a number");
      if (st == NumberStatus::too_large || v == 0 || v > kMaxDistance)
        return fail(no, "distance from node " + id + " to node " + std::to_string(nodes_[k].id) +
                            " is " + capped(std::string(tok[k + 1]), 24) +
                            ", outside 1.." + std::to_string(kMaxDistance));
      row[k] = static_cast<std::uint32_t>(v);
    }
    for (std::size_t k = 0; k < n; ++k)
      if (row[k] < row[i])
        return fail(no, "node " + id + ": distance to itself (" + std::to_string(row[i]) +
                            ") exceeds its distance to node " + std::to_string(nodes_[k].id) +
                            " (" + std::to_string(row[k]) + ")");
    ++cur_;
  }
  return {};
}

Result<Topology, Error> NumactlParser::run() {
  // Blank lines before and after the text are fine; inside it they are not.
  end_ = lines_.size();
  while (end_ > 0 && lines_[end_ - 1].text.empty()) --end_;
  while (cur_ < end_ && line().text.empty()) ++cur_;
  for (std::size_t i = cur_; i < end_; ++i)
    if (trim_blanks(lines_[i].text).empty())
      return fail(lines_[i].no, "unexpected blank line");

  if (auto r = parse_available(); !r) return r.error();
  for (NodeId id : listed_)
    if (auto r = parse_node(id); !r) return r.error();
  if (auto r = parse_distances(); !r) return r.error();
  if (!at_end()) return fail(line().no, "unexpected text after the distances: " + got());

  TopologyBuilder builder(topo_source_);
  for (auto& nd : nodes_) builder.add_node(nd.id, std::move(nd.cpus), nd.size, nd.free);
  for (std::size_t i = 0; i < dist_.size(); ++i)
    for (std::size_t k = 0; k < dist_[i].size(); ++k)
      builder.set_distance(nodes_[i].id, nodes_[k].id, dist_[i][k]);
  auto topo = builder.build();
  if (!topo) {
    // The builder names its own source; errors here name the text's.
    std::string msg = topo.error().message;
    const std::string own = topo_source_ + ": ";
    if (msg.compare(0, own.size(), own) == 0) msg.erase(0, own.size());
    return Error{topo.error().code, std::string(prefix_) + ": " + msg};
  }
  return topo;
}

}  // namespace

Result<Topology, Error> parse_numactl_text(std::string_view text, std::string_view source_name) {
  return NumactlParser(text, source_name, std::string(source_name)).run();
}

Result<Topology, Error> load_topology_numactl_file(std::string_view path) {
  auto text = read_text_file(path);
  if (!text) return text.error();
  return NumactlParser(*text, path, "numactl:" + std::string(path)).run();
}

}  // namespace numaheap
