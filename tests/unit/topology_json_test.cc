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
  EXPECT_EQ(j["nodes"][0]["cpus"], nlohmann::json({0, 1, 2, 3}));
  EXPECT_EQ(j["nodes"][0]["memory_mb"], 2007);
  EXPECT_EQ(j["nodes"][0]["free_mb"], 1931);
  EXPECT_EQ(j["distances"][0], nlohmann::json({10, 21, 31, 21}));
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
  };
  for (const auto& c : cases) {
    auto r = tools::parse_topology_json(c.text, "in.json");
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_NE(r.error().message.find(c.what), std::string::npos) << c.text << " -> " << r.error().message;
  }
}
