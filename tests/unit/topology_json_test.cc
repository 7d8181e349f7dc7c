// JSON form of a topology: the documented shape, and a round trip through
// parse for every real machine (rendering back to the same numactl text).
#include <gtest/gtest.h>

#include <filesystem>

#include "numaheap/topology_io.h"
#include "topology_json.h"

using namespace numaheap;

TEST(TopologyJson, DocumentedShape) {
  Topology t = builtin_default_topology();
  auto j = tools::topology_to_json(t);
  ASSERT_EQ(j["nodes"].size(), 4u);
  EXPECT_EQ(j["nodes"][0]["id"], 0);
  EXPECT_EQ(j["nodes"][0]["cpus"], nlohmann::ordered_json({0, 1, 2, 3}));
  EXPECT_EQ(j["nodes"][0]["memory_mb"], 2007);
  EXPECT_EQ(j["nodes"][0]["free_mb"], 1931);
  EXPECT_EQ(j["distances"][0], nlohmann::ordered_json({10, 21, 31, 21}));
  // The built-in machine says nothing about huge pages.
  EXPECT_TRUE(j["nodes"][0]["hugepages"].is_null());
}

// The keys come out in the order README.md and topology_json.h show.
TEST(TopologyJson, KeyOrderIsTheDocumentedOne) {
  std::string json = tools::render_topology_json(builtin_default_topology());
  EXPECT_EQ(json.rfind("{\"nodes\":[{\"id\":0,\"cpus\":[0,1,2,3],\"memory_mb\":2007,\"free_mb\":1931,"
                       "\"hugepages\":null},", 0),
            0u)
      << json;
  EXPECT_NE(json.find("],\"distances\":[[10,21,31,21],"), std::string::npos) << json;
}

// Sparse ids: "nodes" sorted by id and the matrix in that order, whatever
// order the input listed them in.
TEST(TopologyJson, DistanceMatrixFollowsNodeIdOrder) {
  auto t = load_topology_numactl_file(std::string(NUMAHEAP_TEST_DATA) +
                                      "/topologies/power7-ibm-9179-8n-sparse/numactl-H.txt");
  ASSERT_TRUE(t.has_value());
  auto j = tools::topology_to_json(*t);
  std::vector<NodeId> ids;
  for (const auto& n : j["nodes"]) ids.push_back(n["id"].get<NodeId>());
  EXPECT_EQ(ids, (std::vector<NodeId>{0, 1, 4, 5, 8, 9, 12, 13}));
  for (std::size_t r = 0; r < ids.size(); ++r)
    for (std::size_t c = 0; c < ids.size(); ++c)
      EXPECT_EQ(j["distances"][r][c].get<std::uint32_t>(), t->raw_distance(ids[r], ids[c]));

  // Input listing node 4 before node 0, asymmetric: row 0 of the input is node 4.
  auto back = tools::parse_topology_json(
      R"({"nodes":[{"id":4,"cpus":[1]},{"id":0,"cpus":[0]}],"distances":[[10,30],[20,10]]})", "in");
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->raw_distance(4, 0), 30u);
  EXPECT_EQ(back->raw_distance(0, 4), 20u);
  EXPECT_EQ(tools::render_topology_json(*back),
            R"({"nodes":[{"id":0,"cpus":[0],"memory_mb":null,"free_mb":null,"hugepages":null},)"
            R"({"id":4,"cpus":[1],"memory_mb":null,"free_mb":null,"hugepages":null}],)"
            R"("distances":[[10,20],[30,10]]})");
}

// Huge page pools come from sysfs, ascending by size (numerically: 64 kB
// before 2048 kB), and survive a JSON round trip.
TEST(TopologyJson, HugePagesFromSysfs) {
  const std::string arm = std::string(NUMAHEAP_TEST_DATA) + "/topologies/arm-kunpeng920-4n";
  tools::HugePageMap hp;
  auto t = tools::load_topology_path(arm, &hp);
  ASSERT_TRUE(t.has_value()) << t.error().message;
  ASSERT_EQ(hp.size(), 4u);
  std::vector<std::uint64_t> sizes;
  for (const auto& p : hp[0]) sizes.push_back(p.size_kb);
  EXPECT_EQ(sizes, (std::vector<std::uint64_t>{64, 2048, 32768, 1048576}));

  const std::string rec = std::string(NUMAHEAP_TEST_DATA) + "/proc/kvm-4vcpu-3node";
  tools::HugePageMap hp3;
  auto t3 = tools::load_topology_path(rec, &hp3);
  ASSERT_TRUE(t3.has_value()) << t3.error().message;
  EXPECT_EQ(hp3[0], (std::vector<tools::HugePagePool>{{2048, 512, 212}, {1048576, 0, 0}}));
  EXPECT_EQ(hp3[1], (std::vector<tools::HugePagePool>{{2048, 256, 256}, {1048576, 2, 2}}));
  std::string json = tools::render_topology_json(*t3, -1, &hp3);
  EXPECT_NE(json.find(R"("hugepages":[{"size_kb":2048,"total":512,"free":212},{"size_kb":1048576,"total":0,"free":0}])"),
            std::string::npos)
      << json;
  tools::HugePageMap back_hp;
  auto back = tools::parse_topology_json(json, "rt", &back_hp);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back_hp, hp3);
  EXPECT_EQ(tools::render_topology_json(*back, -1, &back_hp), json);

  // A tree without hugepages directories: no pools, not unknown.
  tools::HugePageMap none;
  auto p7 = tools::load_topology_path(std::string(NUMAHEAP_TEST_DATA) + "/topologies/power7-ibm-9179-8n-sparse", &none);
  ASSERT_TRUE(p7.has_value());
  ASSERT_EQ(none.size(), 8u);
  EXPECT_TRUE(none[12].empty());
}

TEST(TopologyJson, RoundTripOnEveryRealMachine) {
  int machines = 0;
  for (const auto& dir : std::filesystem::directory_iterator(std::string(NUMAHEAP_TEST_DATA) + "/topologies")) {
    if (!dir.is_directory()) continue;
    auto t = load_topology_numactl_file((dir.path() / "numactl-H.txt").string());
    ASSERT_TRUE(t.has_value()) << dir.path();
    std::string json = tools::render_topology_json(*t);
    auto back = tools::parse_topology_json(json, "rt");
    ASSERT_TRUE(back.has_value()) << back.error().message;
    EXPECT_EQ(render_numactl(*back), render_numactl(*t)) << dir.path();
    EXPECT_EQ(tools::render_topology_json(*back), json);
    ++machines;
  }
  EXPECT_GE(machines, 6);
}

TEST(TopologyJson, MalformedJsonNamesThePath) {
  struct Case {
    const char* text;
    const char* what;
  } cases[] = {
      {"", "not valid JSON"},
      {"[]", "expected an object"},
      {"{}", "$.nodes"},
      {"{\"nodes\":[{\"id\":-1}]}", "$.nodes[0].id"},
      {"{\"nodes\":[{\"id\":1,\"cpus\":\"0-3\"}]}", "$.nodes[0].cpus"},
      {"{\"nodes\":[{\"id\":1,\"memory_mb\":\"big\"}]}", "$.nodes[0].memory_mb"},
      {"{\"nodes\":[{\"id\":0},{\"id\":1}],\"distances\":[[10,20]]}", "one row per node"},
      {"{\"nodes\":[{\"id\":0}],\"distances\":[[300]]}", "0..255"},
      {"{\"nodes\":[{\"id\":0},{\"id\":0}]}", "listed twice"},
      {"{\"nodes\":[{\"id\":0,\"hugepages\":{}}]}", "$.nodes[0].hugepages"},
      {"{\"nodes\":[{\"id\":0,\"hugepages\":[{\"size_kb\":2048,\"total\":1,\"free\":2}]}]}",
       "$.nodes[0].hugepages"},
      {"{\"nodes\":[{\"id\":0,\"hugepages\":[{\"size_kb\":0,\"total\":1,\"free\":0}]}]}",
       "$.nodes[0].hugepages"},
  };
  for (const auto& c : cases) {
    auto r = tools::parse_topology_json(c.text, "in.json");
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_NE(r.error().message.find(c.what), std::string::npos) << c.text << " -> " << r.error().message;
  }
}
