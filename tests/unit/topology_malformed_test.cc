// Malformed `numactl -H` texts and sysfs trees: every one must give an Error
// whose message says where (source, file, line) and what is wrong, and none
// may crash or be accepted.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "numaheap/topology_io.h"
#include "temp_sysfs_tree.h"

using namespace numaheap;
namespace fs = std::filesystem;

namespace {

// The seed machine, one line per entry, so cases can edit single lines.
//  1 available      2-4 node 0     5-7 node 1     8-10 node 2    11-13 node 3
// 14 node distances: 15 header     16-19 rows for nodes 0..3
std::vector<std::string> seed_lines() {
  return {"available: 4 nodes (0-3)",
          "node 0 cpus: 0 1 2 3",
          "node 0 size: 2007 MB",
          "node 0 free: 1931 MB",
          "node 1 cpus: 4 5 6 7",
          "node 1 size: 1951 MB",
          "node 1 free: 1902 MB",
          "node 2 cpus: 8 9 10 11",
          "node 2 size: 1998 MB",
          "node 2 free: 1910 MB",
          "node 3 cpus: 12 13 14 15",
          "node 3 size: 2015 MB",
          "node 3 free: 1907 MB",
          "node distances:",
          "node   0   1   2   3 ",
          "  0:  10  21  31  21 ",
          "  1:  21  10  21  31 ",
          "  2:  31  21  10  21 ",
          "  3:  21  31  21  10 "};
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// Seed text with line `no` (1-based) replaced; an empty replacement with
// `erase` removes the line.
std::string with_line(int no, const std::string& text) {
  auto l = seed_lines();
  l[static_cast<std::size_t>(no - 1)] = text;
  return join(l);
}
std::string without_lines(int first, int last) {
  auto l = seed_lines();
  l.erase(l.begin() + (first - 1), l.begin() + last);
  return join(l);
}

struct TextCase {
  const char* name;
  std::string text;
  int line;  // expected line number in the message
  std::vector<std::string> words;
};

std::vector<TextCase> text_cases() {
  auto l = seed_lines();
  std::vector<TextCase> c;
  c.push_back({"wrong count in available", with_line(1, "available: 5 nodes (0-3)"), 1,
               {"available", "5 nodes", "(0-3)", "has 4"}});
  c.push_back({"zero nodes", with_line(1, "available: 0 nodes ()"), 1, {"no nodes"}});
  c.push_back({"available not first", join({l.begin() + 1, l.end()}), 1, {"available:"}});
  c.push_back({"available list garbage", with_line(1, "available: 4 nodes (0-x)"), 1,
               {"available", "node list"}});
  c.push_back({"available list misses a node", with_line(1, "available: 4 nodes (0-2,4)"), 11,
               {"node 3", "not in the available list", "0-2,4"}});
  c.push_back({"more nodes than announced", with_line(1, "available: 3 nodes (0-2)"), 11,
               {"node 3", "not in the available list", "3 nodes"}});
  c.push_back({"fewer nodes than announced", with_line(1, "available: 5 nodes (0-4)"), 14,
               {"node 4 cpus", "5 nodes", "node distances:"}});
  {
    auto s = seed_lines();
    std::swap(s[4], s[7]);
    std::swap(s[5], s[8]);
    std::swap(s[6], s[9]);
    c.push_back({"node ids out of order", join(s), 5, {"node 2", "out of order", "node 1"}});
  }
  {
    auto s = seed_lines();
    s[7] = s[4];
    s[8] = s[5];
    s[9] = s[6];
    c.push_back({"node id duplicated", join(s), 8, {"node 1", "listed twice"}});
  }
  c.push_back({"node id not a number", with_line(5, "node one cpus: 4 5 6 7"), 5,
               {"node id", "'one'", "not a number"}});
  c.push_back({"size not a number", with_line(12, "node 3 size: lots"), 12,
               {"node 3 size", "expected '<n> MB' or '<not available>'", "'lots'"}});
  c.push_back({"size without unit", with_line(12, "node 3 size: 2015"), 12,
               {"node 3 size", "'2015'"}});
  c.push_back({"size in GB", with_line(12, "node 3 size: 2 GB"), 12, {"node 3 size", "'2 GB'"}});
  c.push_back({"size negative", with_line(12, "node 3 size: -5 MB"), 12, {"node 3 size", "-5"}});
  c.push_back({"missing free line (last node)", without_lines(13, 13), 13,
               {"node 3 free", "node distances:"}});
  c.push_back(
      {"missing free line (middle)", without_lines(7, 7), 7, {"node 1 free", "node 2 cpus"}});
  c.push_back({"missing size line", without_lines(6, 6), 6, {"node 1 size", "node 1 free"}});
  c.push_back({"size line for another node", with_line(9, "node 3 size: 1998 MB"), 9,
               {"node 2 size", "node 3"}});
  c.push_back({"free above size", with_line(4, "node 0 free: 5000 MB"), 4,
               {"node 0 free", "5000 MB", "exceeds", "2007 MB"}});
  c.push_back({"cpu listed twice in one node", with_line(2, "node 0 cpus: 0 1 1 2"), 2,
               {"node 0 cpus", "cpu 1", "listed twice"}});
  c.push_back({"cpu listed in two nodes", with_line(5, "node 1 cpus: 3 4 5 6 7"), 5,
               {"cpu 3", "node 0", "line 2"}});
  c.push_back({"cpu not a number", with_line(2, "node 0 cpus: 0 1 two 3"), 2,
               {"node 0 cpus", "'two'", "not a cpu number"}});
  c.push_back({"distance row too short", with_line(18, "  2:  31  21  10"), 18,
               {"distance row", "node 2", "3 values", "expected 4"}});
  c.push_back({"distance row too long", with_line(18, "  2:  31  21  10  21  21"), 18,
               {"node 2", "5 values", "expected 4"}});
  c.push_back({"distance row missing", without_lines(19, 19), 19,
               {"distance row", "node 3", "missing", "end of input"}});
  c.push_back({"distance row for wrong node", with_line(19, "  4:  21  31  21  10"), 19,
               {"distance row", "'3:"}});
  c.push_back({"header ids mismatch", with_line(15, "node   0   1   3   2"), 15,
               {"distance header", "node 0 1 2 3"}});
  c.push_back({"header too short", with_line(15, "node   0   1   2"), 15, {"distance header"}});
  c.push_back({"distance 0", with_line(17, "  1:  0  10  21  31"), 17,
               {"distance from node 1 to node 0", "is 0", "outside 1..255"}});
  c.push_back({"distance 300", with_line(17, "  1:  300  10  21  31"), 17,
               {"distance from node 1 to node 0", "300", "outside 1..255"}});
  c.push_back({"distance not a number", with_line(17, "  1:  21  10  x  31"), 17,
               {"node 1 to node 2", "'x'", "not a number"}});
  c.push_back({"self distance larger than remote", with_line(16, "  0:  30  21  31  21"), 16,
               {"node 0", "distance to itself (30)", "node 1 (21)"}});
  c.push_back({"no distance section", without_lines(14, 19), 14,
               {"expected 'node distances:'", "No distance information available.",
                "end of input"}});
  c.push_back({"distance title misspelt", with_line(14, "node distance:"), 14,
               {"expected 'node distances:'", "'node distance:'"}});
  c.push_back({"text after the table", join(seed_lines()) + "hello\n", 20,
               {"unexpected text", "'hello'"}});
  c.push_back({"rows after no-distance line",
               join({l.begin(), l.begin() + 13}) + "No distance information available.\n" +
                   "  0:  10\n",
               15, {"unexpected text"}});
  c.push_back({"blank line inside", join({l.begin(), l.begin() + 4}) + "\n" +
                                        join({l.begin() + 4, l.end()}),
               5, {"unexpected blank line"}});
  c.push_back({"empty input", "", 1, {"empty input", "available:"}});
  c.push_back({"only blank lines", "\n  \r\n\n", 1, {"empty input"}});
  c.push_back({"binary garbage", std::string("\x7f" "ELF\x02\x01\x01\0\0\0\xff\xfe\n\x01", 15), 1,
               {"expected 'available: <n> nodes (<list>)'", "?ELF"}});
  c.push_back({"huge node count", with_line(1, "available: 99999999999999999999999 nodes (0-3)"),
               1, {"node count", "too large"}});
  c.push_back({"huge node id", with_line(11, "node 18446744073709551616 cpus: 12"), 11,
               {"node id", "out of range 0..1023"}});
  c.push_back({"node id above 1023", with_line(1, "available: 4 nodes (0-2,1024)"), 1,
               {"available", "out of range"}});
  c.push_back({"huge cpu", with_line(2, "node 0 cpus: 0 1 2 99999999999999999999999"), 2,
               {"cpu", "out of range 0..65535"}});
  c.push_back({"cpu above 65535", with_line(2, "node 0 cpus: 0 1 2 65536"), 2,
               {"cpu", "'65536'", "out of range"}});
  c.push_back({"huge size digits", with_line(3, "node 0 size: 999999999999999999999999 MB"), 3,
               {"node 0 size", "too large"}});
  c.push_back({"size overflowing bytes", with_line(3, "node 0 size: 17592186044416 MB"), 3,
               {"node 0 size", "17592186044416", "too large"}});
  c.push_back({"huge distance", with_line(16, "  0:  10  99999999999999999999999  31  21"), 16,
               {"distance from node 0 to node 1", "outside 1..255"}});
  {
    std::string list;
    for (int i = 0; i < 5000; ++i) list += "0,";
    c.push_back({"very long available list", with_line(1, "available: 4 nodes (" + list + "3)"), 1,
                 {"available", "says 4 nodes", "has 2"}});
    c.push_back({"very long garbage token",
                 with_line(2, "node 0 cpus: 0 1 2 " + std::string(100000, 'x')), 2,
                 {"node 0 cpus", "'xxxx", "...'", "not a cpu number"}});
    c.push_back({"very long distance",
                 with_line(16, "  0:  10  " + std::string(5000, '7') + "  31  21"),
                 16,
                 {"distance from node 0 to node 1", "outside 1..255"}});
  }
  return c;
}

// ------------------------------------------------------------ sysfs trees

class TempTree : public test::TempSysfsTree {
 public:
  TempTree() : TempSysfsTree("numaheap-bad") {}
  // A healthy two-node machine to break.
  void two_nodes() const {
    write("node0/cpumap", "00000003\n");
    write("node0/meminfo", "Node 0 MemTotal: 1048576 kB\nNode 0 MemFree: 1000 kB\n");
    write("node0/distance", "10 20\n");
    write("node1/cpumap", "0000000c\n");
    write("node1/meminfo", "Node 1 MemTotal: 1048576 kB\nNode 1 MemFree: 1000 kB\n");
    write("node1/distance", "20 10\n");
  }
};

struct TreeCase {
  const char* name;
  std::function<void(const TempTree&)> make;
  std::vector<std::string> words;
};

std::vector<TreeCase> tree_cases() {
  std::vector<TreeCase> c;
  c.push_back({"no node directories", [](const TempTree&) {}, {"no node<N> directories"}});
  c.push_back({"only non-node entries",
               [](const TempTree& t) {
                 t.write("online", "0\n");
                 t.mkdir("nodeX");
               },
               {"no node<N> directories"}});
  c.push_back({"garbage cpumap",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node1/cpumap", "zzzz\n");
               },
               {"node1/cpumap", "'zzzz'", "not hexadecimal"}});
  c.push_back({"binary cpumap",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node0/cpumap", std::string("\x01\x02\xff\0ab", 6));
               },
               {"node0/cpumap", "not hexadecimal"}});
  c.push_back({"cpumap word too wide",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node0/cpumap", "123456789\n");
               },
               {"node0/cpumap", "longer than 8 hex digits"}});
  c.push_back({"cpumap empty word",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node0/cpumap", "00000001,,00000000\n");
               },
               {"node0/cpumap", "empty word"}});
  c.push_back({"cpumap cpu above 65535",
               [](const TempTree& t) {
                 t.two_nodes();
                 std::string map = "00000001";
                 for (int i = 0; i < 2048; ++i) map += ",00000000";
                 t.write("node0/cpumap", map + "\n");
               },
               {"node0/cpumap", "cpu 65536", "maximum"}});
  c.push_back({"garbage cpulist",
               [](const TempTree& t) {
                 t.two_nodes();
                 fs::remove(fs::path(t.node_dir()) / "node0/cpumap");
                 t.write("node0/cpulist", "0-x\n");
               },
               {"node0/cpulist", "'0-x'"}});
  c.push_back({"backwards cpulist",
               [](const TempTree& t) {
                 t.two_nodes();
                 fs::remove(fs::path(t.node_dir()) / "node0/cpulist");
                 fs::remove(fs::path(t.node_dir()) / "node0/cpumap");
                 t.write("node0/cpulist", "7-3\n");
               },
               {"node0/cpulist", "below its start"}});
  c.push_back({"cpumap is a directory",
               [](const TempTree& t) {
                 t.two_nodes();
                 fs::remove(fs::path(t.node_dir()) / "node0/cpumap");
                 t.mkdir("node0/cpumap");
               },
               {"cannot read", "node0/cpumap"}});
  c.push_back({"cpu in two nodes",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node1/cpumap", "00000006\n");
               },
               {"sysfs:", "cpu 1", "node 0", "node 1"}});
  c.push_back({"garbage distance",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node1/distance", "20 ten\n");
               },
               {"node1/distance:1", "'ten'", "not a number"}});
  c.push_back({"negative distance",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node1/distance", "-20 10\n");
               },
               {"node1/distance:1", "'-20'"}});
  c.push_back({"distance 300",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node0/distance", "10 300\n");
               },
               {"node0/distance:1", "'300'", "out of range 1..255"}});
  c.push_back({"huge distance",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node0/distance", "10 99999999999999999999999999\n");
               },
               {"node0/distance:1", "out of range 1..255"}});
  c.push_back({"self distance not the minimum",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node1/distance", "20 40\n");
               },
               {"node1/distance", "distance to itself (40)", "node 0 (20)"}});
  c.push_back({"self distance above the default remote",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node1/distance", "0 30\n");
               },
               {"node1/distance", "distance to itself (30)"}});
  c.push_back({"node id 1024",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.mkdir("node1024");
               },
               {"'node1024'", "out of range 0..1023"}});
  c.push_back({"node id overflowing",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.mkdir("node99999999999999999999999");
               },
               {"out of range 0..1023"}});
  c.push_back({"same node twice",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.mkdir("node01");
               },
               {"'node01'", "'node1'", "both node 1"}});
  c.push_back({"meminfo number too large",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node1/meminfo", "Node 1 MemTotal: 99999999999999999999999 kB\n");
               },
               {"node1/meminfo:1", "too large"}});
  c.push_back({"meminfo bytes overflow",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node1/meminfo", "Node 1 MemTotal: 18014398509481984 kB\n");
               },
               {"node1/meminfo:1", "too large"}});
  c.push_back({"MemFree above MemTotal",
               [](const TempTree& t) {
                 t.two_nodes();
                 t.write("node1/meminfo", "Node 1 MemTotal: 1000 kB\nNode 1 MemFree: 2000 kB\n");
               },
               {"node1/meminfo", "MemFree", "exceeds MemTotal"}});
  return c;
}

}  // namespace

TEST(TopologyMalformedText, EveryCaseIsAnErrorWithLineAndReason) {
  for (const auto& tc : text_cases()) {
    SCOPED_TRACE(tc.name);
    auto r = parse_numactl_text(tc.text, "ticket.txt");
    ASSERT_FALSE(r.has_value()) << "accepted:\n" << tc.text;
    const std::string& msg = r.error().message;
    EXPECT_EQ(r.error().code, Errc::parse_error) << msg;
    const std::string where = "ticket.txt:" + std::to_string(tc.line) + ": ";
    EXPECT_EQ(msg.rfind(where, 0), 0u) << "message: " << msg << "\nexpected prefix: " << where;
    for (const auto& w : tc.words)
      EXPECT_NE(msg.find(w), std::string::npos) << msg << "\nmissing: " << w;
    // Messages stay printable and short even for garbage input.
    for (char ch : msg) EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << msg;
    EXPECT_LT(msg.size(), 400u) << msg;
  }
}

TEST(TopologyMalformedText, SizeLineExampleFromTheDocs) {
  auto r = parse_numactl_text(with_line(12, "node 3 size: lots"), "ticket.txt");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message,
            "ticket.txt:12: node 3 size: expected '<n> MB' or '<not available>', got 'lots'");
}

TEST(TopologyMalformedText, FileLoaderNamesThePath) {
  std::string tmpl = (fs::temp_directory_path() / "numaheap-ticket-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string path = tmpl + "/ticket.txt";
  {
    std::ofstream out(path, std::ios::binary);
    out << with_line(18, "  2:  31  21  10");
  }
  auto r = load_topology_numactl_file(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.rfind(path + ":18: ", 0), 0u) << r.error().message;
  auto missing = load_topology_numactl_file(tmpl + "/nope.txt");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Errc::io_error);
  EXPECT_NE(missing.error().message.find("nope.txt"), std::string::npos);
  fs::remove_all(tmpl);
}

TEST(TopologyMalformedText, EveryPrefixOfAValidTextIsHandled) {
  // Truncated pastes: never a crash; a prefix either fails with a located
  // message or is a consistent machine that renders and re-parses stably
  // (e.g. the last row cut to "... 1" still is a valid row).
  const std::string full = join(seed_lines());
  int accepted = 0;
  for (std::size_t n = 0; n < full.size(); ++n) {
    auto r = parse_numactl_text(full.substr(0, n), "cut");
    if (r) {
      ++accepted;
      const std::string text = render_numactl(*r);
      auto again = parse_numactl_text(text, "again");
      ASSERT_TRUE(again.has_value()) << again.error().message;
      EXPECT_EQ(render_numactl(*again), text);
    } else {
      EXPECT_EQ(r.error().message.rfind("cut:", 0), 0u) << r.error().message;
    }
  }
  EXPECT_LE(accepted, 4);
}

TEST(TopologyMalformedSysfs, EveryCaseIsAnErrorNamingTheFile) {
  for (const auto& tc : tree_cases()) {
    SCOPED_TRACE(tc.name);
    TempTree tree;
    tc.make(tree);
    auto r = load_topology_sysfs(tree.root());
    ASSERT_FALSE(r.has_value()) << "accepted";
    const std::string& msg = r.error().message;
    EXPECT_EQ(msg.rfind("sysfs:" + tree.root() + ": ", 0), 0u) << msg;
    for (const auto& w : tc.words)
      EXPECT_NE(msg.find(w), std::string::npos) << msg << "\nmissing: " << w;
    for (char ch : msg) EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << msg;
  }
}

TEST(TopologyMalformedSysfs, MissingOrWrongRoot) {
  auto r = load_topology_sysfs("/nonexistent/numaheap-root");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::io_error);
  EXPECT_NE(r.error().message.find("sysfs:/nonexistent/numaheap-root"), std::string::npos);
  EXPECT_NE(r.error().message.find("No such file"), std::string::npos) << r.error().message;

  auto e = load_topology_sysfs("");
  ASSERT_FALSE(e.has_value());

  TempTree tree;
  tree.write("notadir", "x");
  auto f = load_topology_sysfs(tree.node_dir() + "/notadir");
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().message.find("not a directory"), std::string::npos) << f.error().message;
}
