// `numaheap place --emit libvirt`: every guest's fragment is well-formed XML
// (parsed back with pugixml) whose cells, memory, vcpupins and memnodes say
// what the placement decided.
#include <gtest/gtest.h>
#include <pugixml.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "numaheap/topology_io.h"

namespace {

std::string run(const std::string& cmd, int& status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    status = -1;
    return out;
  }
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  status = pclose(p);
  return out;
}

// Splits the output at each "<!-- numaheap place: NAME -->" line.
std::map<std::string, std::string> by_guest(const std::string& out) {
  std::map<std::string, std::string> docs;
  std::istringstream in(out);
  std::string line, name;
  const std::string tag = "<!-- numaheap place: ";
  while (std::getline(in, line)) {
    if (line.rfind(tag, 0) == 0) {
      name = line.substr(tag.size(), line.size() - tag.size() - 4);
      continue;
    }
    docs[name] += line + "\n";
  }
  return docs;
}

// "0-3,8" -> {0,1,2,3,8}
std::set<unsigned> ids(const std::string& list) {
  std::set<unsigned> out;
  std::istringstream in(list);
  std::string part;
  while (std::getline(in, part, ',')) {
    auto dash = part.find('-');
    unsigned a = std::stoul(part.substr(0, dash));
    unsigned b = dash == std::string::npos ? a : std::stoul(part.substr(dash + 1));
    for (unsigned i = a; i <= b; ++i) out.insert(i);
  }
  return out;
}

}  // namespace

TEST(PlaceEmit, LibvirtFragmentsParseBackWithTheirCellsMemoryAndCpus) {
  const std::string dir = ::testing::TempDir();
  const std::string guests = dir + "/emit_guests.json";
  std::ofstream(guests) << R"({"guests":[
    {"name":"four","memory_mb":2000,"vcpus":16,"vnodes":[
      {"memory_mb":500,"vcpus":"0-3"},{"memory_mb":500,"vcpus":"4-7"},
      {"memory_mb":500,"vcpus":"8-11"},{"memory_mb":500,"vcpus":"12-15"}]},
    {"name":"a&b","memory_mb":3000,"vcpus":6}]})";
  const std::string topo_path = std::string(NUMAHEAP_TEST_DATA) + "/topologies/seed-4node-libvirt/numactl-H.txt";
  int status = 0;
  const std::string out = run(std::string(NUMAHEAP_BIN_DIR) + "/numaheap place --topology " + topo_path +
                                  " --guests " + guests + " --emit libvirt",
                              status);
  ASSERT_EQ(status, 0) << out;
  auto topo = numaheap::load_topology_numactl_file(topo_path);
  ASSERT_TRUE(topo.has_value());
  auto docs = by_guest(out);
  ASSERT_EQ(docs.size(), 2u) << out;
  for (const auto& [name, text] : docs) {
    SCOPED_TRACE(name);
    pugi::xml_document doc;
    auto r = doc.load_string(text.c_str());
    ASSERT_TRUE(r) << r.description() << "\n" << text;
    pugi::xml_node dom = doc.child("domain");
    EXPECT_EQ(std::string(dom.child_value("name")), name == "a&amp;b" ? "a&b" : name);  // escaped once
    const unsigned long long mem_kib = std::stoull(dom.child_value("memory"));
    const unsigned vcpus = static_cast<unsigned>(std::stoul(dom.child_value("vcpu")));
    // Cells: ids 0.., memory summing to the domain's, every vCPU in one cell,
    // a sibling per cell with 10 to itself.
    unsigned long long cell_sum = 0;
    std::set<unsigned> cell_vcpus;
    std::map<unsigned, unsigned long long> cell_mem;
    unsigned cells = 0;
    for (pugi::xml_node cell : dom.child("cpu").child("numa").children("cell")) {
      EXPECT_EQ(cell.attribute("id").as_uint(), cells);
      EXPECT_STREQ(cell.attribute("unit").value(), "KiB");
      cell_mem[cells] = cell.attribute("memory").as_ullong();
      cell_sum += cell_mem[cells];
      for (unsigned v : ids(cell.attribute("cpus").value())) EXPECT_TRUE(cell_vcpus.insert(v).second) << v;
      unsigned siblings = 0;
      for (pugi::xml_node s : cell.child("distances").children("sibling")) {
        if (s.attribute("id").as_uint() == cells) {
          EXPECT_EQ(s.attribute("value").as_uint(), 10u);
        }
        ++siblings;
      }
      ++cells;
      EXPECT_GT(siblings, 0u);
    }
    EXPECT_EQ(cell_sum, mem_kib);
    EXPECT_EQ(cell_vcpus.size(), vcpus);
    // One memnode per cell; the cells' host nodes are within the nodeset.
    pugi::xml_node tune = dom.child("numatune");
    const std::set<unsigned> nodeset = ids(tune.child("memory").attribute("nodeset").value());
    std::map<unsigned, unsigned> cell_node;
    for (pugi::xml_node mn : tune.children("memnode")) {
      EXPECT_STREQ(mn.attribute("mode").value(), "strict");
      const unsigned node = static_cast<unsigned>(std::stoul(mn.attribute("nodeset").value()));
      EXPECT_TRUE(nodeset.count(node)) << node;
      cell_node[mn.attribute("cellid").as_uint()] = node;
    }
    EXPECT_EQ(cell_node.size(), cells);
    // Each vCPU pinned to exactly the CPUs of its cell's host node.
    std::map<unsigned, unsigned> vcpu_cell;
    unsigned c = 0;
    for (pugi::xml_node cell : dom.child("cpu").child("numa").children("cell")) {
      for (unsigned v : ids(cell.attribute("cpus").value())) vcpu_cell[v] = c;
      ++c;
    }
    unsigned pins = 0;
    for (pugi::xml_node pin : dom.child("cputune").children("vcpupin")) {
      const unsigned v = pin.attribute("vcpu").as_uint();
      const numaheap::NodeInfo* n = topo->find(cell_node[vcpu_cell[v]]);
      ASSERT_NE(n, nullptr);
      std::set<unsigned> want(n->cpus.begin(), n->cpus.end());
      EXPECT_EQ(ids(pin.attribute("cpuset").value()), want) << "vcpu " << v;
      ++pins;
    }
    EXPECT_EQ(pins, vcpus);
    if (name == "four") {
      EXPECT_EQ(cells, 4u);
      EXPECT_EQ(nodeset.size(), 4u);  // one vnode per node
      for (const auto& [id, kib] : cell_mem) EXPECT_EQ(kib, 500ull * 1024) << id;
    }
  }
}
